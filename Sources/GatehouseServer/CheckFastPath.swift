import Foundation
import GatehouseCore
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// Gatehouse's HTTP/1.1 server: Hummingbird's, with one channel handler added to each connection
/// that answers gate checks on the event loop.
///
/// A check is the request Flagger makes every interval for every canary, and almost every one
/// changes nothing: the gate is as it was at the last check. Such checks are answered from memory
/// by `CheckFastPath` in the channel pipeline, without the task, request context and middleware
/// chain Hummingbird's router gives every request (which cost several times what the check itself
/// does). Everything else — every other route, and any check that changes a gate, is malformed, or
/// meets failing storage — reaches the router unchanged.
func gatehouseHTTPServer(idleTimeout: TimeAmount?, checks: InMemoryChecks) -> HTTPServerBuilder {
    HTTPServerBuilder { responder in
        // CheckFastPath keeps the idle timeout: Hummingbird's own would not see the checks it answers.
        CheckingHTTP1Channel(
            base: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: nil)), checks: checks,
            idleTimeout: idleTimeout)
    }
}

/// Hummingbird's HTTP/1.1 child channel with `CheckFastPath` right after NIO's HTTP/1.1 decoder,
/// before the conversion to HTTP types and Hummingbird's connection state handler (both cost more
/// per request than answering a check does).
struct CheckingHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let checks: InMemoryChecks
    let idleTimeout: TimeAmount?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { [checks, idleTimeout] value in
            let pipeline = channel.pipeline.syncOperations
            let codec = try pipeline.handler(type: HTTP1ToHTTPServerCodec.self)
            try pipeline.addHandler(CheckFastPath(checks: checks, idleTimeout: idleTimeout), position: .before(codec))
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
    private let routes: [String: ServedRoute]

    /// A check route with the metric series of its two answers, found once rather than per request.
    struct ServedRoute: Sendable {
        let route: CheckRoute
        let approved: GatehouseMetrics.RequestSeries
        let refused: GatehouseMetrics.RequestSeries
    }

    init(checker: GateChecker, accessGuard: AccessGuard, secret: FlaggerSecret, logger: Logger, serverName: String?) {
        self.checker = checker
        self.accessGuard = accessGuard
        self.secret = secret
        self.logger = logger
        self.serverName = serverName
        routes = Dictionary(
            uniqueKeysWithValues: CheckRoute.all.map { route in
                let series = { (status: HTTPResponse.Status) in
                    checker.metrics.requestSeries(.init(route: route.path, method: "POST", status: Int(status.code)))
                }
                return (route.path, ServedRoute(route: route, approved: series(.ok), refused: series(.forbidden)))
            })
    }

    /// The check route a request targets, if it is one the fast path may answer: not one asking to
    /// close the connection (Hummingbird closes it after answering) or to be told to continue.
    func route(for head: HTTPRequestHead) -> ServedRoute? {
        guard head.method == .POST, head.isKeepAlive, !head.headers.contains(name: "expect") else { return nil }
        return routes[head.uri]
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
/// A check request is held until its end, then either answered here or passed on whole. Requests
/// are answered in order: while a request passed on has not been answered, the following ones are
/// passed on too. Since Hummingbird's connection state handler, further down the pipeline, does
/// not see the checks answered here, this handler keeps the connection's idle timeout, and holds
/// back a graceful-shutdown request until the check it holds is answered.
final class CheckFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Between requests.
        case idle
        /// Holding a check request until its end.
        case holding(InMemoryChecks.ServedRoute, HTTPRequestHead, body: ByteBuffer?, started: ContinuousClock.Instant)
        /// Passing the current request on to the router.
        case passing
    }

    private let checks: InMemoryChecks
    private let idleTimeout: TimeAmount?
    private var state = State.idle
    /// Requests passed on whose response has not ended yet.
    private var unanswered = 0
    /// When a request last started or an answer last ended.
    private var lastActivity = NIODeadline.now()
    private var idleCheck: Scheduled<Void>?
    /// Graceful shutdown was asked for: everything goes to the router, which closes the connection.
    private var isQuiescing = false
    private var date = HTTPDate()

    init(checks: InMemoryChecks, idleTimeout: TimeAmount?) {
        self.checks = checks
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { scheduleIdleCheck(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        scheduleIdleCheck(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleCheck?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (state, part) {
        case (.idle, .head(let head)):
            lastActivity = .now()
            if !isQuiescing, unanswered == 0, let route = checks.route(for: head) {
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
            if let answer = checks.answer(route.route, body: body ?? ByteBuffer(), requestID: requestID) {
                respond(answer, to: head, requestID: requestID, context: context)
                (answer.decision.isApproved ? route.approved : route.refused).record(ContinuousClock.now - started)
            } else {
                pass(.head(head), context: context)
                if let body { pass(.body(body), context: context) }
                pass(.end(trailers), context: context)
            }
            if isQuiescing { context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
        default:
            pass(part, context: context)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // An answer the router writes on its own (a 400 for a request it could not parse) was never passed on.
        if case .end = unwrapOutboundIn(data) {
            lastActivity = .now()
            if unanswered > 0 { unanswered -= 1 }
        }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        isQuiescing = true
        // Hummingbird closes a connection with no request in progress at once: the check held here
        // is answered first, and the event passed on then (see channelRead).
        if case .holding = state { return }
        context.fireUserInboundEventTriggered(event)
    }

    private func pass(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
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

    private func respond(
        _ answer: GateAnswer, to request: HTTPRequestHead, requestID: String, context: ChannelHandlerContext
    ) {
        let body = context.channel.allocator.buffer(string: answer.text)
        var headers = HTTPHeaders()
        headers.reserveCapacity(5)
        headers.add(name: "Content-Type", value: GateAnswer.contentType)
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: MetricsMiddleware<GatehouseRequestContext>.requestIDHeader.rawName, value: requestID)
        headers.add(name: "Date", value: date.now())
        if let serverName = checks.serverName { headers.add(name: "Server", value: serverName) }
        let status = HTTPResponseStatus(statusCode: Int(answer.status.code))
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
            promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        lastActivity = .now()
    }

    /// Closes the connection once it has been idle for `idleTimeout` with no request in progress,
    /// as Hummingbird's own idle timeout does.
    private func scheduleIdleCheck(context: ChannelHandlerContext) {
        guard let idleTimeout, idleCheck == nil else { return }
        let loop = context.eventLoop.assumeIsolated()
        func arm(at deadline: NIODeadline) {
            idleCheck = loop.scheduleTask(deadline: deadline) {
                let inProgress = self.unanswered > 0 || { if case .idle = self.state { false } else { true } }()
                let due = self.lastActivity + idleTimeout
                if !inProgress && due <= .now() {
                    context.close(promise: nil)
                } else {
                    arm(at: inProgress ? .now() + idleTimeout : due)
                }
            }
        }
        arm(at: .now() + idleTimeout)
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
