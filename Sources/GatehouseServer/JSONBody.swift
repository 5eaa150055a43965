import Foundation
import GatehouseCore
import Hummingbird
import NIOCore

/// Reads JSON request bodies and explains in one sentence what is wrong with a bad one.
enum JSONBody {
    /// Decodes a required JSON object body.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext) async throws
        -> T
    {
        try decode(type, from: try await request.body.collect(upTo: context.maxUploadSize))
    }

    /// Decodes an optional JSON object body; an empty body gives nil.
    static func decodeIfPresent<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext)
        async throws -> T?
    {
        try decodeIfPresent(type, from: try await request.body.collect(upTo: context.maxUploadSize))
    }

    /// Decodes a required JSON object body already read.
    static func decode<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer, numbers: StrictJSON.Numbers = .whole)
        throws -> T
    {
        guard let value = try decodeIfPresent(type, from: buffer, numbers: numbers) else {
            throw GatehouseError.badRequest("the request body is empty; send a JSON object")
        }
        return value
    }

    /// Decodes an optional JSON object body already read; an empty body gives nil. The body must
    /// be strict JSON (`StrictJSON`): no trailing comma, no repeated key, and, unless `numbers`
    /// says otherwise, whole numbers written as such.
    static func decodeIfPresent<T: Decodable>(
        _ type: T.Type, from buffer: ByteBuffer, numbers: StrictJSON.Numbers = .whole
    ) throws -> T? {
        guard buffer.readableBytes > 0 else { return nil }
        do {
            try StrictJSON.validate(buffer.readableBytesView, numbers: numbers)
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw GatehouseError.badRequest(describe(error))
        } catch let error as InvalidInput {
            throw GatehouseError.badRequest(error.message)
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func field(_ path: [any CodingKey]) -> String {
            path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing field '\(field(context.codingPath + [key]))'"
        case .typeMismatch(_, let context) where context.codingPath.isEmpty:
            return "the request body must be a JSON object"
        case .typeMismatch(let type, let context):
            return "field '\(field(context.codingPath))' must be \(kind(of: type))"
        case .valueNotFound(let type, let context):
            return "field '\(field(context.codingPath))' must be \(kind(of: type)), not null"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "the request body is not valid JSON" }
            return "field '\(field(context.codingPath))' has an invalid value"
        @unknown default:
            return "the request body could not be read"
        }
    }

    private static func kind(of type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type: "a whole number"
        case is Bool.Type: "true or false"
        case is [String: String].Type: "an object of string values"
        case is Double.Type: "a number"
        default: "of another type"
        }
    }
}

/// A coding key for reading whatever keys a JSON object has.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// Refuses keys outside `allowed`, so a typo such as `tll` is an error rather than silently ignored.
    func rejectUnknownKeys(allowed: [String]) throws {
        let container = try self.container(keyedBy: AnyCodingKey.self)
        if let unknown = container.allKeys.first(where: { !allowed.contains($0.stringValue) }) {
            throw InvalidInput(
                "unknown field '\(unknown.stringValue.prefix(40))'; expected one of: \(allowed.joined(separator: ", "))"
            )
        }
    }
}
