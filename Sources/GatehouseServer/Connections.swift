import CoreMetrics
import GatehouseStore
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Gatehouse's HTTP/1.1 server: Hummingbird's, with a deadline on each request and a cap on
/// connections, so that clients who open connections and never finish a request cannot take the
/// descriptors Flagger's checks need.
///
/// A request's head is bounded by the idle timeout (Hummingbird closes a connection that has sent
/// no complete head for that long); its body by `requestTimeout`, counted from its head.
func gatehouseHTTPServer(idleTimeout: TimeAmount, requestTimeout: TimeAmount, connections: ConnectionLimit)
    -> HTTPServerBuilder
{
    .http1(
        configuration: .init(
            additionalChannelHandlers: connections.handlers(requestTimeout: requestTimeout), idleTimeout: idleTimeout))
}

/// The process's file-descriptor limit, and what it leaves for connections.
public enum DescriptorLimit {
    /// Descriptors kept for everything but client connections: the database and its journal, the
    /// storage probe, outbound notifications, the access file, /proc and the runtime's own.
    public static let reserved = 128

    /// Raises the soft limit to the hard one (as servers commonly do), and returns it.
    @discardableResult
    public static func raise() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
    }

    /// The most connections the limit allows serving, with room kept for refusing a few more.
    public static func connectionsAllowed(by limit: Int) -> Int {
        max(limit - reserved, 1)
    }
}

/// The connections open now against the cap: up to `served` are served; beyond that a few more are
/// accepted only to be refused with 503 (so a client learns why), and beyond those none are
/// accepted until one closes (they wait in the kernel's listen queue), so the process never runs
/// out of descriptors.
public final class ConnectionLimit: Sendable {
    /// Connections served at once.
    let served: Int
    /// Connections accepted at once, refused ones included.
    let accepted: Int
    private let open = Atomic<Int>(0)
    /// Whether each open connection's client still sends (has not closed its side), by channel.
    private let clients = Mutex<[ObjectIdentifier: ClientPresence]>([:])
    private let openGauge: CoreMetrics.Gauge
    private let refused: CoreMetrics.Counter
    /// Requests whose connection was closed for not completing in time.
    let timedOut: CoreMetrics.Counter

    init(served: Int, metrics: GatehouseMetrics) {
        self.served = served
        accepted = served + 32
        openGauge = metrics.gauge("gatehouse_connections")
        refused = metrics.counter("gatehouse_connections_refused_total")
        timedOut = metrics.counter("gatehouse_requests_timed_out_total")
    }

    /// The handlers of a connection just accepted: counted while it is open; served with a
    /// deadline on each request when within the cap, refused otherwise.
    func handlers(requestTimeout: TimeAmount) -> [any RemovableChannelHandler] {
        let counted = OpenConnection(limit: self)
        guard counted.count <= served else {
            refused.increment()
            return [counted, ConnectionRefusal(limit: served)]
        }
        return [
            counted, RequestDeadline(timeout: requestTimeout, timedOut: timedOut), MalformedRequestAnswer(),
            HTTP10ConnectionClose.Installer(),
        ]
    }

    /// The presence of the client of `channel`, for a request it sent: it leaves when the client closes
    /// its side of the connection (Flagger does when its webhook times out) or the connection closes.
    func presence(of channel: ObjectIdentifier) -> Presence {
        // Looked up only when a write asks, not for every request; a connection no longer listed
        // has closed (it is listed from its setup, before its first request).
        Presence { [self] in clients.withLock { $0[channel] }?.isWaiting ?? false }
    }

    /// Hummingbird's hook on the listening socket: it counts connections as they are accepted
    /// (before their setup, which `handlers` counts) and stops accepting while `accepted` are open.
    var acceptance: Acceptance { Acceptance(limit: self) }

    /// Connections accepted and not yet closed, as the listening socket counts them.
    private let acceptedNow = Atomic<Int>(0)

    struct Acceptance: AvailableConnectionsDelegate {
        let limit: ConnectionLimit

        func connectionOpened() { limit.acceptedNow.add(1, ordering: .relaxed) }
        func connectionClosed() { limit.acceptedNow.subtract(1, ordering: .relaxed) }

        func isAcceptingNewConnections() -> Bool {
            limit.acceptedNow.load(ordering: .relaxed) < limit.accepted
        }
    }

    /// Counts one connection from its setup until its pipeline is torn down (when it closes), and
    /// tells its requests' writes whether the client is still there.
    final class OpenConnection: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPRequestPart

        private let limit: ConnectionLimit
        /// How many were open with this one.
        let count: Int
        private var isCounted = true
        private let client = ClientPresence()

        init(limit: ConnectionLimit) {
            self.limit = limit
            count = limit.open.add(1, ordering: .relaxed).newValue
            limit.openGauge.record(count)
        }

        func handlerAdded(context: ChannelHandlerContext) {
            let client = client
            limit.clients.withLock { $0[ObjectIdentifier(context.channel)] = client }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            // Half-closure is allowed (Hummingbird's setting): a client that closed its side is gone.
            if let event = event as? ChannelEvent, event == .inputClosed { client.leave() }
            context.fireUserInboundEventTriggered(event)
        }

        func channelInactive(context: ChannelHandlerContext) {
            client.leave()
            context.fireChannelInactive()
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            client.leave()
            _ = limit.clients.withLock { $0.removeValue(forKey: ObjectIdentifier(context.channel)) }
            guard isCounted else { return }
            isCounted = false
            limit.openGauge.record(limit.open.subtract(1, ordering: .relaxed).newValue)
        }
    }

    /// Whether a connection's client is still there to read an answer.
    final class ClientPresence: Sendable {
        private let left = Atomic<Bool>(false)

        var isWaiting: Bool { !left.load(ordering: .acquiring) }

        func leave() { left.store(true, ordering: .releasing) }
    }
}

/// Closes a connection whose request has not arrived whole within `timeout` of its head (a body
/// trickled in, or never sent). A response not yet begun is a 408 first, as RFC 9110 asks.
final class RequestDeadline: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private let timedOut: CoreMetrics.Counter?
    private var deadline: Scheduled<Void>?
    /// When the head of the request still being read arrived; nil once its end has.
    private var headArrived: NIODeadline?
    /// Whether the response to the request being read has begun.
    private var isResponding = false

    init(timeout: TimeAmount, timedOut: CoreMetrics.Counter? = nil) {
        self.timeout = timeout
        self.timedOut = timedOut
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            isResponding = false
            deadline?.cancel()
            deadline = nil
            headArrived = context.eventLoop.now
        case .body:
            break
        case .end:
            deadline?.cancel()
            deadline = nil
            headArrived = nil
        }
        context.fireChannelRead(data)
    }

    /// The deadline is set only for a request not read whole by the end of a read (most arrive in
    /// one): its timer then counts from the head's arrival.
    func channelReadComplete(context: ChannelHandlerContext) {
        if let headArrived, deadline == nil {
            let loop = context.eventLoop.assumeIsolated()
            deadline = loop.scheduleTask(deadline: headArrived + timeout) { self.expire(context: context) }
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .head = unwrapOutboundIn(data) { isResponding = true }
        context.write(data, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    private func expire(context: ChannelHandlerContext) {
        deadline = nil
        timedOut?.increment()
        guard !isResponding else {
            context.close(promise: nil)
            return
        }
        let answer = PlainAnswer(
            status: .requestTimeout,
            text: "The request did not arrive whole within \(Self.describe(timeout)) of its head; send it again.")
        answer.write(context: context, wrap: wrapOutboundOut)
    }

    private static func describe(_ amount: TimeAmount) -> String {
        let milliseconds = amount.nanoseconds / 1_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
    }
}

/// Answers the first request of a connection accepted beyond the cap with 503, then closes it.
final class ConnectionRefusal: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    private let limit: Int
    private var answered = false

    init(limit: Int) {
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head = unwrapInboundIn(data), !answered else { return }
        answered = true
        let answer = PlainAnswer(
            status: .serviceUnavailable,
            text: "Gatehouse is serving \(limit) connections, its limit (--max-connections); try again shortly.",
            retryAfter: "1")
        answer.write(context: context, wrap: wrapOutboundOut)
    }
}

/// Answers a request HTTP's parser refused with a status that says what was wrong and one sentence,
/// then closes the connection (without this, the client got a bare 400): too large a request line or
/// too many or too large headers get 431; framing that could be read two ways (two Content-Lengths,
/// Content-Length with Transfer-Encoding, a bare LF, a folded header line) gets 400.
final class MalformedRequestAnswer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Requests read whose answers have not ended yet (pipelined ones are answered in order).
    private var unanswered = 0
    /// The answer to a refused request, written once the requests before it are answered.
    private var pending: PlainAnswer?
    private var answered = false
    /// Whether a request's head has been read and its end not yet.
    private var inBody = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            unanswered += 1
            inBody = true
        case .body: break
        case .end: inBody = false
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let isEnd = if case .end = unwrapOutboundIn(data) { true } else { false }
        context.write(data, promise: promise)
        guard isEnd else { return }
        unanswered = max(unanswered - 1, 0)
        if unanswered == 0, let pending {
            self.pending = nil
            pending.write(context: context, wrap: wrapOutboundOut)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        // A body that breaks off malformed is the router's to refuse: it is reading it.
        guard !inBody else {
            context.fireErrorCaught(error)
            return
        }
        // More bytes after a request that asked to close: the connection closes after its answer.
        guard parserError != .closedConnection, !answered else { return }
        answered = true
        let answer = Self.answer(to: parserError)
        if unanswered == 0 {
            answer.write(context: context, wrap: wrapOutboundOut)
        } else {
            pending = answer
        }
    }

    /// The status and the sentence for what the parser refused.
    static func answer(to error: HTTPParserError) -> PlainAnswer {
        switch error {
        case .headerOverflow:
            PlainAnswer(
                status: .requestHeaderFieldsTooLarge,
                text:
                    "The request line or its headers are larger than Gatehouse reads (at most 80 KB in all, 100 header fields); send a shorter request."
            )
        case .unexpectedContentLength, .invalidContentLength:
            PlainAnswer(
                status: .badRequest,
                text:
                    "The request's length is unclear (Content-Length given twice or with Transfer-Encoding, or not a number); send one Content-Length or chunked encoding."
            )
        case .lfExpected:
            PlainAnswer(status: .badRequest, text: "The request's lines must end with CRLF.")
        case .invalidHeaderToken:
            PlainAnswer(
                status: .badRequest,
                text: "A header of the request is malformed (an invalid name, or a line folded onto the next).")
        case .invalidURL, .invalidPath, .invalidQueryString, .invalidFragment, .invalidHost, .invalidPort:
            PlainAnswer(status: .badRequest, text: "The request's target is not a valid URL path.")
        case .invalidMethod:
            PlainAnswer(status: .badRequest, text: "The request's method is not a valid HTTP method.")
        case .invalidVersion:
            PlainAnswer(
                status: .badRequest,
                text:
                    "The request line must be METHOD TARGET HTTP/1.1 (or HTTP/1.0) ending in CRLF; a bare LF or another version is not read."
            )
        default:
            PlainAnswer(status: .badRequest, text: "The request is not valid HTTP/1.1 (\(error)).")
        }
    }
}

/// Closes an HTTP/1.0 connection after its answer unless the request asked to keep it alive, as
/// HTTP/1.0 says. The version is lost where HTTP/1 parts become HTTP types, so this handler sits
/// before that conversion and says it the way the router understands: `Connection: close`.
final class HTTP10ConnectionClose: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data), head.version == .http1_0, !head.isKeepAlive else {
            context.fireChannelRead(data)
            return
        }
        head.headers.replaceOrAdd(name: "Connection", value: "close")
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }

    /// Added among the handlers after the conversion (where Hummingbird lets handlers be added), it
    /// puts an `HTTP10ConnectionClose` before the conversion and takes itself out.
    final class Installer: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPRequestPart

        func handlerAdded(context: ChannelHandlerContext) {
            let pipeline = context.pipeline.syncOperations
            if let codec = try? pipeline.handler(type: HTTP1ToHTTPServerCodec.self) {
                try? pipeline.addHandler(HTTP10ConnectionClose(), position: .before(codec))
            }
            pipeline.removeHandler(context: context, promise: nil)
        }
    }
}

/// A short plain-text answer written below the router, after which the connection closes.
struct PlainAnswer {
    var status: HTTPResponse.Status
    var text: String
    var retryAfter: String?

    func write(context: ChannelHandlerContext, wrap: (HTTPResponsePart) -> NIOAny) {
        let body = context.channel.allocator.buffer(string: text + "\n")
        var fields: HTTPFields = [
            .contentType: "text/plain; charset=utf-8", .contentLength: String(body.readableBytes),
            .connection: "close",
        ]
        if let retryAfter { fields[.retryAfter] = retryAfter }
        context.write(wrap(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.write(wrap(.body(body)), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrap(.end(nil)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
