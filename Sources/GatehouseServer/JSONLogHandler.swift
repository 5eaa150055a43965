import Foundation
import Logging

/// Writes one JSON object a line to a `LogOutput` (standard output unless told): time, level,
/// message, label and metadata.
public struct JSONLogHandler: LogHandler {
    /// The logger's label, written as `logger`.
    public let label: String
    /// Where lines go.
    public let output: LogOutput
    /// The lowest level written.
    public var logLevel: Logger.Level = .info
    /// Metadata added to every line.
    public var metadata: Logger.Metadata = [:]

    /// Creates a handler for one logger.
    public init(label: String, output: LogOutput = .standardOutput) {
        self.label = label
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object: [String: LogValue] = [
            "time": .string(Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))),
            "level": .string(event.level.rawValue),
            "message": .string("\(event.message)"),
            "logger": .string(label),
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            object[key] = LogValue(value)
        }
        guard let data = try? Self.encoder.encode(object) else { return }
        output.append(String(decoding: data, as: UTF8.self) + "\n")
    }

    /// Sorted keys make lines easy to compare; JSONEncoder does it without ICU's collation data,
    /// which JSONSerialization loads.
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

/// A metadata value as JSON, keeping its type: numbers and booleans given as such
/// (`.stringConvertible(42)`) are written as JSON numbers and booleans, arrays and dictionaries
/// as arrays and objects, everything else as a string.
private enum LogValue: Encodable {
    case string(String)
    case integer(Int64)
    case number(Double)
    case boolean(Bool)
    case array([LogValue])
    case object([String: LogValue])

    init(_ value: Logger.MetadataValue) {
        switch value {
        case .string(let string): self = .string(string)
        case .stringConvertible(let convertible as Bool): self = .boolean(convertible)
        case .stringConvertible(let convertible as any BinaryInteger):
            self = Int64(exactly: convertible).map(LogValue.integer) ?? .string("\(convertible)")
        case .stringConvertible(let convertible as any BinaryFloatingPoint):
            let number = Double(convertible)
            self = number.isFinite ? .number(number) : .string("\(convertible)")
        case .stringConvertible(let convertible): self = .string("\(convertible)")
        case .array(let values): self = .array(values.map(LogValue.init))
        case .dictionary(let dictionary): self = .object(dictionary.mapValues(LogValue.init))
        }
    }

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .string(let string): try string.encode(to: encoder)
        case .integer(let integer): try integer.encode(to: encoder)
        case .number(let number): try number.encode(to: encoder)
        case .boolean(let boolean): try boolean.encode(to: encoder)
        case .array(let values): try values.encode(to: encoder)
        case .object(let object): try object.encode(to: encoder)
        }
    }
}
