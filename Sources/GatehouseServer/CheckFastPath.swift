import Foundation
import GatehouseCore
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// Gatehouse's HTTP/1.1 server: Hummingbird's, with one channel handler added to each connection
/// that answers gate checks on the event loop.
///
/// A check is the request Flagger makes every interval for every canary, and almost every one
/// changes nothing: the gate is as it was at the last check. Such checks are answered from memory
/// by `CheckFastPath` in the channel pipeline, without the task, request context and middleware
/// chain Hummingbird's router gives every request (which cost several times what the check itself
/// does). Everything else — every other route, and any check that changes a gate, is malformed, or
/// meets failing storage — reaches the router unchanged.
func gatehouseHTTPServer(configuration: HTTP1Channel.Configuration, checks: InMemoryChecks) -> HTTPServerBuilder {
    HTTPServerBuilder { responder in
        CheckingHTTP1Channel(base: HTTP1Channel(responder: responder, configuration: configuration), checks: checks)
    }
}

/// Hummingbird's HTTP/1.1 child channel with `CheckFastPath` just before the router's end of the
/// pipeline: after Hummingbird's connection state handler, which so sees every request and every
/// answer, and keeps its idle timeout and graceful shutdown for checks answered here too.
struct CheckingHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let checks: InMemoryChecks

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { [checks] value in
            let pipeline = channel.pipeline.syncOperations
            let connectionState = try pipeline.handler(type: HTTPConnectionStateHandler.self)
            try pipeline.addHandler(CheckFastPath(checks: checks), position: .after(connectionState))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// What the fast path needs to answer a check exactly as the router's check routes would.
struct InMemoryChecks: Sendable {
    let checker: GateChecker
    let accessGuard: AccessGuard
    let secret: FlaggerSecret
    let logger: Logger
    let serverName: String?
    private let routes: [String: CheckRoute]

    init(checker: GateChecker, accessGuard: AccessGuard, secret: FlaggerSecret, logger: Logger, serverName: String?) {
        self.checker = checker
        self.accessGuard = accessGuard
        self.secret = secret
        self.logger = logger
        self.serverName = serverName
        routes = Dictionary(uniqueKeysWithValues: CheckRoute.all.map { ($0.path, $0) })
    }

    /// The check route a request targets, if it is one the fast path may answer: not one asking to
    /// close the connection (Hummingbird closes it after answering) or to be told to continue.
    func route(for head: HTTPRequest) -> CheckRoute? {
        guard head.method == .post, head.headerFields[.connection] != "close", head.headerFields[.expect] == nil,
            let path = head.path
        else { return nil }
        return routes[path]
    }

    /// The answer to a check, or nil when the router must answer it: the body does not decode or
    /// validate, the secret is wrong, the check changes the gate, or storage is failing.
    func answer(_ route: CheckRoute, body: ByteBuffer, requestID: String) -> GateAnswer? {
        guard let call = try? FlaggerCall(body: body, accessGuard: accessGuard),
            (try? secret.verify(call.payload)) != nil
        else { return nil }
        let check = Check(
            canary: call.canary, gate: route.gate, checksum: call.payload.checksum ?? "", phase: call.payload.phase)
        var logger = logger
        if logger.logLevel <= .debug { logger[metadataKey: "hb.request.id"] = .string(requestID) }
        return checker.checkInMemory(check, logger: logger, route: route.path).map {
            GateAnswer(decision: $0, style: route.style)
        }
    }
}

/// Answers the checks that change nothing on the event loop; passes every other request on.
///
/// A check request is held until its end, then either answered here or passed on whole. Requests are answered in order: while a
/// request passed on has not been answered, the following ones are passed on too.
final class CheckFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        /// Between requests.
        case idle
        /// Holding a check request until its end.
        case holding(CheckRoute, HTTPRequest, body: ByteBuffer?, started: ContinuousClock.Instant)
        /// Passing the current request on to the router.
        case passing
    }

    private let checks: InMemoryChecks
    private var state = State.idle
    /// Requests passed on whose response has not ended yet.
    private var unanswered = 0
    private var date = HTTPDate()

    init(checks: InMemoryChecks) {
        self.checks = checks
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (state, part) {
        case (.idle, .head(let head)):
            if unanswered == 0, let route = checks.route(for: head) {
                state = .holding(route, head, body: nil, started: .now)
            } else {
                pass(.head(head), context: context)
            }
        case (.holding(let route, let head, let body, let started), .body(let more)):
            var collected = body ?? more
            if body != nil { collected.writeImmutableBuffer(more) }
            if collected.readableBytes > maximumRequestBodyBytes {
                // Too large to be a check: the router refuses it with 413.
                pass(.head(head), context: context)
                pass(.body(collected), context: context)
            } else {
                state = .holding(route, head, body: collected, started: started)
            }
        case (.holding(let route, let head, let body, let started), .end(let trailers)):
            state = .idle
            let requestID = RequestID().description
            if let answer = checks.answer(route, body: body ?? ByteBuffer(), requestID: requestID) {
                respond(answer, requestID: requestID, context: context)
                checks.checker.metrics.recordRequest(
                    route: route.path, method: "POST", status: Int(answer.status.code),
                    duration: ContinuousClock.now - started)
            } else {
                pass(.head(head), context: context)
                if let body { pass(.body(body), context: context) }
                pass(.end(trailers), context: context)
            }
        default:
            pass(part, context: context)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // An answer the router writes on its own (a 400 for a request it could not parse) was never passed on.
        if case .end = unwrapOutboundIn(data), unanswered > 0 { unanswered -= 1 }
        context.write(data, promise: promise)
    }

    private func pass(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head:
            unanswered += 1
            state = .passing
        case .body:
            state = .passing
        case .end:
            state = .idle
        }
        context.fireChannelRead(wrapInboundOut(part))
    }

    private func respond(_ answer: GateAnswer, requestID: String, context: ChannelHandlerContext) {
        let body = context.channel.allocator.buffer(string: answer.text)
        var response = HTTPResponse(status: answer.status)
        response.headerFields.reserveCapacity(5)
        response.headerFields[.contentType] = GateAnswer.contentType
        response.headerFields[.contentLength] = String(body.readableBytes)
        response.headerFields[MetricsMiddleware<GatehouseRequestContext>.requestIDHeader] = requestID
        response.headerFields[.date] = date.now()
        if let serverName = checks.serverName { response.headerFields[.server] = serverName }
        context.write(wrapOutboundOut(.head(response)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// The `Date` header's value (RFC 9110's IMF-fixdate), formatted at most once a second.
struct HTTPDate {
    private var second = 0
    private var text = ""

    mutating func now() -> String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        if time.tv_sec != second || text.isEmpty {
            second = time.tv_sec
            text = Self.format(Date(timeIntervalSince1970: TimeInterval(second)))
        }
        return text
    }

    /// Formats a date as `Sun, 06 Nov 1994 08:49:37 GMT`, without locale data.
    static func format(_ date: Date) -> String {
        let parts = calendar.dateComponents([.weekday, .day, .month, .year, .hour, .minute, .second], from: date)
        func two(_ value: Int?) -> String {
            let value = value ?? 0
            return value < 10 ? "0\(value)" : "\(value)"
        }
        let weekday = weekdays[((parts.weekday ?? 1) - 1) % 7]
        let month = months[((parts.month ?? 1) - 1) % 12]
        return
            "\(weekday), \(two(parts.day)) \(month) \(parts.year ?? 1970) \(two(parts.hour)):\(two(parts.minute)):\(two(parts.second)) GMT"
    }

    private static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    private static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        return calendar
    }()
}
