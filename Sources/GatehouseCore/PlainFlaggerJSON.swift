extension FlaggerPayload {
    /// Reads a payload of the plain shape Flagger sends, without JSONDecoder: one JSON object whose
    /// values are strings, plus a `metadata` object of strings, all in ASCII without escapes.
    ///
    /// Checks arrive every interval for every canary and decoding them with JSONDecoder costs more
    /// than deciding them, so this reads the common case directly. It returns nil for anything
    /// else — another type of value, an escape, a non-ASCII byte, a repeated key, `name` or
    /// `namespace` missing — and the caller falls back to JSONDecoder, which reads it or explains
    /// what is wrong. Whatever it returns is what JSONDecoder returns for the same bytes.
    public init?(plainJSON bytes: UnsafeRawBufferPointer) {
        var reader = PlainJSONReader(bytes: bytes)
        var name: String?
        var namespace: String?
        var phase: String?
        var checksum: Revision?
        var metadata: [String: String]?
        var keys: [String] = []
        let read = reader.object { reader, key in
            guard !keys.contains(key) else { return false }
            keys.append(key)
            guard key == "metadata" else {
                guard let value = reader.string() else { return false }
                switch key {
                case "name": name = value
                case "namespace": namespace = value
                case "phase": phase = value
                case "checksum": checksum = Revision(value)
                default: break  // Flagger adds fields over time; unknown ones are ignored.
                }
                return true
            }
            var values: [String: String] = [:]
            let read = reader.object { reader, key in
                guard values[key] == nil, let value = reader.string() else { return false }
                values[key] = value
                return true
            }
            metadata = values
            return read
        }
        guard read, reader.isAtEnd, let name, let namespace else { return nil }
        self.init(
            name: name, namespace: namespace, phase: phase.map(CanaryPhase.init(rawValue:)), checksum: checksum,
            metadata: metadata)
    }
}

/// Reads JSON objects of plain strings; every method says false or nil at the first thing it does not expect.
private struct PlainJSONReader {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    var isAtEnd: Bool {
        mutating get {
            skipSpace()
            return index == bytes.count
        }
    }

    /// An object, calling `value` after each key to read that key's value.
    mutating func object(_ value: (inout PlainJSONReader, String) -> Bool) -> Bool {
        guard take(UInt8(ascii: "{")) else { return false }
        if take(UInt8(ascii: "}")) { return true }
        repeat {
            guard let key = string(), take(UInt8(ascii: ":")), value(&self, key) else { return false }
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "}"))
    }

    /// A string of printable ASCII without escapes.
    mutating func string() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = index
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                defer { index += 1 }
                return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            }
            guard byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\\") else { return nil }
            index += 1
        }
        return nil
    }

    private mutating func take(_ expected: UInt8) -> Bool {
        skipSpace()
        guard index < bytes.count, bytes[index] == expected else { return false }
        index += 1
        return true
    }

    private mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): index += 1
            default: return
            }
        }
    }
}
