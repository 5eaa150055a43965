import Foundation
import GatehouseCore
import GatehouseStore
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1

/// Every error a client can see, with its status and one sentence; rendered in one place.
public struct GatehouseError: Error, Sendable, Equatable {
    /// The HTTP status.
    public var status: HTTPResponse.Status
    /// A short machine-readable code.
    public var code: String
    /// One sentence saying what is wrong.
    public var message: String
    /// Extra headers, such as `Allow` on a 405.
    public var headers: HTTPFields = [:]

    /// The request is malformed or breaks a rule.
    public static func badRequest(_ message: String) -> GatehouseError {
        GatehouseError(status: .badRequest, code: "bad_request", message: message)
    }

    /// No credentials, or credentials nobody knows.
    public static func unauthorized(_ message: String) -> GatehouseError {
        GatehouseError(
            status: .unauthorized, code: "unauthorized", message: message,
            headers: [.wwwAuthenticate: #"Bearer realm="gatehouse""#])
    }

    /// Known credentials that do not allow this, or a namespace not served here.
    public static func forbidden(_ message: String) -> GatehouseError {
        GatehouseError(status: .forbidden, code: "forbidden", message: message)
    }

    /// The thing named does not exist.
    public static func notFound(_ message: String) -> GatehouseError {
        GatehouseError(status: .notFound, code: "not_found", message: message)
    }

    /// The request contradicts the current state.
    public static func conflict(_ message: String) -> GatehouseError {
        GatehouseError(status: .conflict, code: "conflict", message: message)
    }

    /// Storage cannot answer; Flagger will retry and nothing was decided.
    public static func unavailable(_ message: String) -> GatehouseError {
        GatehouseError(status: .serviceUnavailable, code: "unavailable", message: message)
    }

    /// The path exists but not for this method.
    public static func methodNotAllowed(_ method: HTTPRequest.Method, allowed: [HTTPRequest.Method]) -> GatehouseError {
        let list = allowed.map(\.rawValue).sorted().joined(separator: ", ")
        return GatehouseError(
            status: .methodNotAllowed, code: "method_not_allowed",
            message: "\(method.rawValue) is not allowed here; use \(list)", headers: [.allow: list])
    }

    /// Maps any error a handler throws to what the client sees.
    static func from(_ error: any Error, request: Request?) -> GatehouseError {
        switch error {
        case let error as GatehouseError:
            return error
        case let error as InvalidInput:
            return .badRequest(error.message)
        case let error as StoreError:
            switch error {
            case .unavailable(let message): return .unavailable(message)
            case .conflict(let message): return .conflict(message)
            case .notFound(let message): return .notFound(message)
            case .full(let message):
                return GatehouseError(status: .tooManyRequests, code: "too_many_canaries", message: message)
            case .gone(let message):
                return GatehouseError(status: .gone, code: "gone", message: message)
            case .rejected(let message):
                return GatehouseError(status: .internalServerError, code: "internal", message: message)
            case .forbidden(let message): return .forbidden(message)
            }
        case is HTTPParserError:
            return .badRequest("the request could not be read: it is not well-formed HTTP or it ended early")
        case let error as any HTTPResponseError:
            switch error.status {
            case .notFound:
                let what = request.map { "\($0.method.rawValue) \($0.uri.path)" } ?? "such resource"
                return .notFound("there is no \(what); see /openapi.yaml for the API")
            case .contentTooLarge:
                return GatehouseError(
                    status: .contentTooLarge, code: "too_large",
                    message: "the request body is larger than \(maximumRequestBodyBytes / 1024) KiB")
            default:
                return GatehouseError(
                    status: error.status, code: "http_\(error.status.code)",
                    message: error.status.reasonPhrase.isEmpty ? "request failed" : error.status.reasonPhrase)
            }
        default:
            return GatehouseError(
                status: .internalServerError, code: "internal",
                message: "an unexpected error occurred; see the server log")
        }
    }

    /// The response: plain text for Flagger-facing routes (Flagger shows it in its events), JSON elsewhere.
    func response(asText: Bool) -> Response {
        var response: Response
        if asText {
            response = .text(message, status: status)
        } else {
            let body = (try? AnswerJSON.bytes(of: ["error": code, "message": message])) ?? ByteBuffer()
            response = Response(
                status: status, headers: [.contentType: "application/json; charset=utf-8"],
                body: .init(byteBuffer: body))
        }
        for field in headers { response.headers.append(field) }
        return response
    }
}
