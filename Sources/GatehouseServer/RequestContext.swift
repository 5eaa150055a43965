import Foundation
import GatehouseCore
import Hummingbird
import Logging
import NIOCore

/// The largest request body any route accepts; larger bodies get 413 before they are decoded.
public let maximumRequestBodyBytes = 64 * 1024

/// The request context of every route: Hummingbird's core storage plus the Flagger call, once decoded.
public struct GatehouseRequestContext: RequestContext, CallerContext, MutableCallerContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The decoded and validated Flagger payload, set by `FlaggerPayloadMiddleware`.
    public var flaggerCall: FlaggerCall?
    /// Who is calling, set by `BearerAuthMiddleware` on routes that need it.
    public var caller: Caller?
    /// The dashboard's view of this request (its session, how the viewer signed in), set by `DashboardSignIn`.
    var visit: DashboardVisit?
    /// The peer's address, which decides whether a proxy's user header is trusted.
    public let remoteAddress: SocketAddress?
    /// The connection the request came on, whose client a write waits for (`ClientPresenceMiddleware`).
    let connection: ObjectIdentifier

    /// Creates the context for one request.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        connection = ObjectIdentifier(source.channel)
    }

    /// Bodies over this size are refused with 413.
    public var maxUploadSize: Int { maximumRequestBodyBytes }

    /// Responses encode dates as RFC 3339 and keys in a stable order, and end with a newline.
    public var responseEncoder: AnswerJSON { AnswerJSON() }
}

/// The context of Flagger-facing routes: the payload is known to be present and valid.
public struct FlaggerRequestContext: ChildRequestContext, CallerContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The Flagger call this request carries.
    public let call: FlaggerCall
    /// Who is calling, when the route checks it.
    public let caller: Caller?

    /// Unwraps the payload the middleware decoded; a route group without that middleware is a programming error.
    public init(context: GatehouseRequestContext) throws {
        guard let call = context.flaggerCall else {
            throw GatehouseError.badRequest("the request carries no Flagger payload")
        }
        self.coreContext = context.coreContext
        self.call = call
        self.caller = context.caller
    }

    /// Bodies over this size are refused with 413.
    public var maxUploadSize: Int { maximumRequestBodyBytes }
}

/// A Flagger webhook payload with its canary identity validated.
public struct FlaggerCall: Sendable {
    /// The payload as Flagger sent it.
    public var payload: FlaggerPayload
    /// The canary it names.
    public var canary: CanaryID
}

extension JSONEncoder {
    /// The encoder of every JSON document Gatehouse writes: RFC 3339 dates, sorted keys, slashes
    /// as they are (`/v1/canaries/…`, not `\/v1\/canaries\/…`).
    static var gatehouse: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

/// The JSON answers of the native API: `JSONEncoder.gatehouse`, and a newline at the end, so that
/// a shell's prompt after `curl` starts on its own line.
public struct AnswerJSON: ResponseEncoder {
    /// The bytes of one answer.
    static func bytes(of value: some Encodable) throws -> ByteBuffer {
        var buffer = ByteBuffer(bytes: try JSONEncoder.gatehouse.encode(value))
        buffer.writeInteger(UInt8(ascii: "\n"))
        return buffer
    }

    public func encode(_ value: some Encodable, from request: Request, context: some RequestContext) throws -> Response
    {
        Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: try Self.bytes(of: value)))
    }
}

extension Response {
    /// A plain-text answer of the native API, ended by a newline. (The loadtester's endpoints
    /// answer its exact bodies instead, without one.)
    static func text(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text.hasSuffix("\n") ? text : text + "\n")))
    }
}
