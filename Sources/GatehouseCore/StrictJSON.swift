/// Checks that bytes are one JSON value exactly as RFC 8259 writes it, before a decoder reads them.
///
/// Foundation's decoder is lenient where a request should not be: it accepts a trailing comma,
/// resolves a repeated key silently, and reads `1.0` or `1e0` where a whole number belongs. A
/// request that is not strict JSON is refused with a sentence saying where it goes wrong.
public enum StrictJSON {
    /// Which numbers are allowed.
    public enum Numbers: Sendable {
        /// Any number RFC 8259 allows.
        case any
        /// Integers only, written without a fraction or exponent (Gatehouse's own request bodies
        /// have no fractional field).
        case whole
    }

    /// Throws a `InvalidInput` saying what is wrong with `bytes`, if anything.
    public static func validate(_ bytes: some Collection<UInt8>, numbers: Numbers = .whole) throws(InvalidInput) {
        var reader = Reader(bytes: Array(bytes), numbers: numbers)
        try reader.value(depth: 0)
        reader.skipSpace()
        guard reader.index == reader.bytes.count else { throw reader.error("unexpected text after the JSON value") }
    }

    /// Objects and arrays deeper than this are refused (a guard against stack exhaustion).
    static let maximumDepth = 64

    private struct Reader {
        let bytes: [UInt8]
        let numbers: Numbers
        var index = 0

        func error(_ what: String) -> InvalidInput {
            InvalidInput("the request body is not valid JSON: \(what) at byte \(index + 1)")
        }

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        mutating func value(depth: Int) throws(InvalidInput) {
            skipSpace()
            guard index < bytes.count else { throw error("the body ends where a value belongs") }
            switch bytes[index] {
            case UInt8(ascii: "{"): try object(depth: depth + 1)
            case UInt8(ascii: "["): try array(depth: depth + 1)
            case UInt8(ascii: "\""): _ = try string()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            default: throw error("unexpected character")
            }
        }

        mutating func object(depth: Int) throws(InvalidInput) {
            guard depth <= StrictJSON.maximumDepth else { throw error("nested too deeply") }
            index += 1
            if take(UInt8(ascii: "}")) { return }
            var keys: Set<String> = []
            repeat {
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                    throw error("a field name in double quotes expected (a trailing comma?)")
                }
                let key = try string()
                guard keys.insert(key).inserted else {
                    throw InvalidInput(
                        "the request body is not valid JSON: the field '\(key.prefix(40))' appears twice")
                }
                guard take(UInt8(ascii: ":")) else { throw error("':' expected after a field name") }
                try value(depth: depth)
            } while take(UInt8(ascii: ","))
            guard take(UInt8(ascii: "}")) else { throw error("',' or '}' expected") }
        }

        mutating func array(depth: Int) throws(InvalidInput) {
            guard depth <= StrictJSON.maximumDepth else { throw error("nested too deeply") }
            index += 1
            if take(UInt8(ascii: "]")) { return }
            repeat {
                skipSpace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                    throw error("a value expected (a trailing comma?)")
                }
                try value(depth: depth)
            } while take(UInt8(ascii: ","))
            guard take(UInt8(ascii: "]")) else { throw error("',' or ']' expected") }
        }

        mutating func literal(_ word: String) throws(InvalidInput) {
            let expected = Array(word.utf8)
            guard bytes.count - index >= expected.count, Array(bytes[index..<index + expected.count]) == expected else {
                throw error("unexpected character")
            }
            index += expected.count
        }

        mutating func number() throws(InvalidInput) {
            let start = index
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, isDigit(bytes[index]) else { throw error("a digit expected") }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
                if index < bytes.count, isDigit(bytes[index]) { throw error("a number with a leading zero") }
            } else {
                while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            }
            var isWhole = true
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                isWhole = false
                index += 1
                guard index < bytes.count, isDigit(bytes[index]) else { throw error("a digit expected after '.'") }
                while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                isWhole = false
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                guard index < bytes.count, isDigit(bytes[index]) else { throw error("a digit expected in an exponent") }
                while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            }
            if numbers == .whole && !isWhole {
                index = start
                throw InvalidInput(
                    "a number must be whole and written without a fraction or exponent (byte \(start + 1))")
            }
        }

        /// A string, with its escapes decoded.
        mutating func string() throws(InvalidInput) -> String {
            index += 1
            var scalars = String.UnicodeScalarView()
            var start = index
            func flush() {
                scalars.append(contentsOf: String(decoding: bytes[start..<index], as: UTF8.self).unicodeScalars)
            }
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    flush()
                    index += 1
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    flush()
                    index += 1
                    guard index < bytes.count else { throw error("the body ends inside a string") }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"): scalars.append(try unicodeEscape())
                    default: throw error("an unknown escape")
                    }
                    start = index
                case 0..<0x20:
                    throw error("a control character inside a string")
                default:
                    index += 1
                }
            }
            throw error("the body ends inside a string")
        }

        /// The scalar of a `\uXXXX` escape (a surrogate pair takes two); a lone surrogate is refused.
        mutating func unicodeEscape() throws(InvalidInput) -> Unicode.Scalar {
            let first = try hex4()
            if (0xD800..<0xDC00).contains(first) {
                guard bytes.count - index >= 2, bytes[index] == UInt8(ascii: "\\"),
                    bytes[index + 1] == UInt8(ascii: "u")
                else { throw error("a lone surrogate in a \\u escape") }
                index += 2
                let second = try hex4()
                guard (0xDC00..<0xE000).contains(second),
                    let scalar = Unicode.Scalar(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
                else { throw error("a lone surrogate in a \\u escape") }
                return scalar
            }
            guard let scalar = Unicode.Scalar(first) else { throw error("a lone surrogate in a \\u escape") }
            return scalar
        }

        mutating func hex4() throws(InvalidInput) -> UInt32 {
            guard bytes.count - index >= 4 else { throw error("a \\u escape needs four hex digits") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw error("a \\u escape needs four hex digits")
                }
                value = value << 4 | UInt32(digit)
                index += 1
            }
            return value
        }

        func isDigit(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
    }
}
