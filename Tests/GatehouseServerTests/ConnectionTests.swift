import Foundation
import GatehouseCore
import GatehouseStore
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Synchronization
import Testing

@testable import GatehouseServer

#if canImport(Glibc)
    import Glibc
#endif

/// Connections as clients really use them: several requests in one write, requests split across
/// packets, clients that never finish a request, and more connections than the service serves.
@Suite("Connections", .timeLimit(.minutes(3)))
struct ConnectionTests {
    @Test("requests on one connection are answered in order, and a check sees the change sent before it")
    func pipelinedInOrder() async throws {
        try await TestServer().run(.live) { client in
            let port = try #require(client.client.port)
            let check = RawHTTP.post(
                "/v1/flagger/confirm-promotion",
                #"{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "c1"}"#)
            // A refused check first, so the later one is a repeat that changes nothing unless the open lands first.
            #expect(try await RawHTTP.exchange(port: port, check, expecting: 1).first?.status == 403)
            let open = RawHTTP.post("/v1/canaries/test/podinfo/gates/promotion/open", #"{"sticky": true}"#)
            let replies = try await RawHTTP.exchange(port: port, open, check, check, expecting: 3)
            try #require(replies.map(\.status) == [200, 200, 200])
            #expect(replies[0].body.hasPrefix("{"))
            #expect(replies[1].body.hasPrefix("promotion gate of test/podinfo is open"))
        }
    }

    @Test("a check asking to close the connection is answered, then the connection closes")
    func connectionClose() async throws {
        try await TestServer().run(.live) { client in
            let port = try #require(client.client.port)
            let check = RawHTTP.post(
                "/gate/check", #"{"name": "podinfo", "namespace": "test"}"#, headers: "Connection: close\r\n")
            for _ in 0..<2 {
                let replies = try await RawHTTP.exchange(port: port, check, check, expecting: 2)
                #expect(replies.map(\.status) == [403], "one answer, then the connection is closed")
            }
        }
    }

    @Test("a check split across many packets is answered whole")
    func splitRequest() async throws {
        try await TestServer().run(.live) { client in
            let port = try #require(client.client.port)
            _ = try await client.post("/gate/open", #"{"name": "podinfo", "namespace": "test"}"#)
            let check = RawHTTP.chunked("/gate/check", #"{"name": "podinfo", "namespace": "test"}"#)
            let replies = try await RawHTTP.exchange(port: port, check, check, expecting: 2, bytesPerWrite: 7)
            #expect(replies.map(\.status) == [200, 200])
            #expect(replies.map(\.body) == ["Approved", "Approved"])
        }
    }

    @Test("checks fail closed while storage is locked: 503, not a stale answer")
    func failsClosed() async throws {
        let server = try TestServer { $0.storageTimeout = 0.3 }
        try await server.run(.live) { client in
            _ = try await client.post("/gate/open", #"{"name": "podinfo", "namespace": "test"}"#)
            let check = #"{"name": "podinfo", "namespace": "test"}"#
            #expect(try await client.post("/gate/check", check).status == .ok)
            #expect(try await client.post("/gate/check", check).status == .ok)
            let lock = try await LockedDatabase.take(path: server.arguments.databasePath)
            #expect(try await client.get("/readyz").status == .serviceUnavailable)
            #expect(try await client.post("/gate/check", check).status == .serviceUnavailable)
            await lock.unlock()
            #expect(try await client.get("/readyz").status == .ok)
            #expect(try await client.post("/gate/check", check).status == .ok)
        }
    }

    @Test("a stalled client does not hold up others")
    func stalledClient() async throws {
        try await TestServer().run(.live) { client in
            let port = try #require(client.client.port)
            let stalled = try RawConnection(port: port)
            defer { stalled.close() }
            stalled.send(
                "POST /v1/flagger/confirm-rollout HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"name\":")
            for _ in 0..<5 { #expect(try await client.hook("confirm-rollout", checksum: "c1").status == .forbidden) }
        }
    }

    @Test("a body in a transfer coding other than chunked is refused with 501, and nothing changes")
    func unknownTransferCoding() async throws {
        try await TestServer().run(.live) { client in
            let port = try #require(client.client.port)
            let chunked = RawHTTP.chunked("/gate/open", #"{"name": "podinfo", "namespace": "test"}"#)
            let gzipped = chunked.replacingOccurrences(
                of: "Transfer-Encoding: chunked", with: "Transfer-Encoding: gzip, chunked")
            let replies = try await RawHTTP.exchange(port: port, gzipped, expecting: 1)
            #expect(replies.map(\.status) == [501])
            #expect(replies.first?.body.contains("'gzip' is not implemented") == true)
            #expect(
                try await client.post("/gate/check", #"{"name": "podinfo", "namespace": "test"}"#).status == .forbidden)
        }
    }

    @Test(
        "requests HTTP's parser refuses get 431 or 400 with a sentence saying what was wrong, and change nothing",
        arguments: [
            ("two Content-Lengths", RawHTTP.post("/gate/open", "{}", headers: "Content-Length: 2\r\n"), 400, "length"),
            (
                "Content-Length with Transfer-Encoding",
                RawHTTP.post("/gate/open", "{}", headers: "Transfer-Encoding: chunked\r\n"), 400, "length"
            ),
            ("a bare LF", "GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n", 400, "CRLF"),
            (
                "a folded header", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: b\r\n c\r\n\r\n", 400,
                "header"
            ),
            (
                "a 100 KB URL", "GET /" + String(repeating: "a", count: 100_000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 431,
                "larger"
            ),
            (
                "10,000 headers",
                "GET /healthz HTTP/1.1\r\n" + (0..<10_000).map { "X-\($0): y\r\n" }.joined() + "\r\n", 431, "larger"
            ),
        ])
    func malformedRequests(what: String, request: String, status: Int, sentence: String) async throws {
        try await TestServer().run(.live) { client in
            let port = try #require(client.client.port)
            let replies = try await RawHTTP.exchange(port: port, request, expecting: 1)
            #expect(replies.map(\.status) == [status], "\(what)")
            #expect(replies.first?.body.contains(sentence) == true, "\(what): \(replies.first?.body ?? "no answer")")
            #expect(try await client.get("/v1/canaries/test/podinfo").status == .notFound, "\(what) changed nothing")
        }
    }

    @Test("a malformed request behind a good one on the same connection is refused after the good one is answered")
    func malformedAfterPipelined() async throws {
        try await TestServer().run(.live) { client in
            let port = try #require(client.client.port)
            let good = RawHTTP.post("/gate/check", #"{"name": "podinfo", "namespace": "test"}"#)
            let replies = try await RawHTTP.exchange(
                port: port, good, "GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n", expecting: 2)
            #expect(replies.map(\.status) == [403, 400])
            #expect(replies.last?.body.contains("CRLF") == true)
        }
    }

    @Test("an HTTP/1.0 request is answered and its connection closed, unless it asked to keep it alive")
    func http10() async throws {
        try await TestServer().run(.live) { client in
            let port = try #require(client.client.port)
            let connection = try RawConnection(port: port)
            defer { connection.close() }
            connection.send("GET /healthz HTTP/1.0\r\n\r\n")
            // Two replies are waited for: the second read ends when the server closes (or after 10 s).
            #expect(try await connection.receive(expecting: 2).map(\.status) == [200])
            #expect(try await connection.closedByServer(), "the server closed the connection")
            let kept = try RawConnection(port: port)
            defer { kept.close() }
            for _ in 0..<2 {
                kept.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                #expect(
                    try await kept.receive(expecting: 1).map(\.status) == [200],
                    "a keep-alive HTTP/1.0 connection stays open")
            }
        }
    }

    @Test("a request whose body never arrives whole is answered 408 and its connection closed")
    func bodyNeverArrives() async throws {
        try await TestServer { $0.requestTimeout = 0.5 }.run(.live) { client in
            let port = try #require(client.client.port)
            let stalled =
                "POST /v1/flagger/confirm-rollout HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"name\":"
            let check = RawHTTP.post("/gate/check", #"{"name": "podinfo", "namespace": "test"}"#)
            // The check after the stalled request is never read: the connection closes first.
            let replies = try await RawHTTP.exchange(port: port, stalled, check, expecting: 2)
            #expect(replies.map(\.status) == [408])
            #expect(replies.first?.body.contains("did not arrive whole") == true)
            #expect(try await client.hook("confirm-rollout", checksum: "c1").status == .forbidden)
        }
    }

    @Test("beyond --max-connections a connection is answered 503 with a sentence; one closing makes room")
    func connectionCap() async throws {
        try await TestServer { $0.maximumConnections = 3 }.run(.live) { client in
            let port = try #require(client.client.port)
            // The test's own client holds the first connection.
            #expect(try await client.get("/healthz").status == .ok)
            let check = RawHTTP.post("/gate/check", #"{"name": "podinfo", "namespace": "test"}"#)
            let first = try RawConnection(port: port)
            let second = try RawConnection(port: port)
            defer { second.close() }
            // Each is answered, so both are open and counted before the third arrives.
            #expect(try await first.exchange(check)?.status == 403)
            #expect(try await second.exchange(check)?.status == 403)
            let refused = try await RawHTTP.exchange(port: port, check, check, expecting: 2)
            #expect(refused.map(\.status) == [503], "one answer, then the connection closes")
            #expect(refused.first?.body.contains("--max-connections") == true)
            first.close()
            // The service learns of the close on its event loop: ask until it has (bounded).
            var answered: [Int] = []
            for _ in 0..<200 where answered != [403] {
                answered = try await RawHTTP.exchange(port: port, check, expecting: 1).map(\.status)
                if answered != [403] { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(answered == [403])
        }
    }

    @Test("the request deadline counts from the head to the end of the body, on the event loop's clock")
    func requestDeadline() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(RequestDeadline(timeout: .seconds(30)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        let head = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/gate/check")

        // A request that ends in time is left alone, however long the connection then stays.
        try channel.writeInbound(HTTPRequestPart.head(head))
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(channel.isActive)
        #expect(try channel.readOutbound(as: HTTPResponsePart.self) == nil)

        // One whose body stops coming is answered 408 at the deadline, and closed.
        try channel.writeInbound(HTTPRequestPart.head(head))
        try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "{")))
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        guard case .head(let response) = try channel.readOutbound(as: HTTPResponsePart.self) else {
            Issue.record("no response head")
            return
        }
        #expect(response.status == .requestTimeout)
        #expect(response.headerFields[.connection] == "close")
        #expect(!channel.isActive)
    }

    @Test("a request past its deadline whose answer has begun is closed without a second answer")
    func deadlineWhileAnswering() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(RequestDeadline(timeout: .seconds(30)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        try channel.writeInbound(
            HTTPRequestPart.head(HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/gate/check")))
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .contentTooLarge)))
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        #expect(!channel.isActive)
        guard case .head(let response) = try channel.readOutbound(as: HTTPResponsePart.self) else {
            Issue.record("no response head")
            return
        }
        #expect(response.status == .contentTooLarge)
        #expect(try channel.readOutbound(as: HTTPResponsePart.self) == nil)
    }
}

/// HTTP/1.1 spoken over a plain socket, for what a client library hides: several requests in one
/// write, requests split across packets, and whether the server closed the connection.
enum RawHTTP {
    struct Reply {
        var status: Int
        var body: String
    }

    static func post(_ path: String, _ body: String, headers: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    /// The same request with its body in chunked transfer encoding, one chunk per four bytes.
    static func chunked(_ path: String, _ body: String) -> String {
        var chunks = ""
        var rest = Substring(body)
        while !rest.isEmpty {
            let chunk = rest.prefix(4)
            chunks += String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n"
            rest = rest.dropFirst(4)
        }
        return "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n\(chunks)0\r\n\r\n"
    }

    /// Sends `requests` on one new connection and reads replies until `expecting` have arrived or
    /// the server closes the connection. The socket blocks, so it runs on a thread of its own rather
    /// than one the service under test needs.
    static func exchange(
        port: Int, _ requests: String..., expecting: Int, bytesPerWrite: Int = .max, pause: useconds_t = 0
    ) async throws -> [Reply] {
        try await onThreadOfItsOwn {
            try blockingExchange(
                port: port, requests, expecting: expecting, bytesPerWrite: bytesPerWrite, pause: pause)
        }
    }

    private static func blockingExchange(
        port: Int, _ requests: [String], expecting: Int, bytesPerWrite: Int, pause: useconds_t
    ) throws -> [Reply] {
        let connection = try RawConnection(port: port)
        defer { connection.close() }
        let socket = connection.descriptor
        sending: for request in requests {
            let bytes = Array(request.utf8)
            var offset = 0
            while offset < bytes.count {
                let end = min(bytes.count, offset + bytesPerWrite)
                let written = bytes[offset..<end].withUnsafeBytes {
                    send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
                }
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { break sending }  // the server closed the connection
                offset += written
                if bytesPerWrite != .max { usleep(1000) }
            }
            usleep(pause)
        }
        return connection.blockingReceive(expecting: expecting)
    }

    /// The complete replies in `bytes` (each with a Content-Length).
    static func parse(_ bytes: [UInt8]) -> [Reply] {
        var replies: [Reply] = []
        var rest = bytes[...]
        let separator = Array("\r\n\r\n".utf8)
        while let end = rest.firstRange(of: separator) {
            let head = String(decoding: rest[rest.startIndex..<end.lowerBound], as: UTF8.self)
            let lines = head.components(separatedBy: "\r\n")
            let status = Int(lines[0].split(separator: " ")[1]) ?? 0
            let length =
                lines.dropFirst().compactMap { line -> Int? in
                    let parts = line.split(separator: ":", maxSplits: 1)
                    guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                    return Int(parts[1].trimmingCharacters(in: .whitespaces))
                }.first ?? 0
            guard rest.distance(from: end.upperBound, to: rest.endIndex) >= length else { break }
            let bodyEnd = rest.index(end.upperBound, offsetBy: length)
            replies.append(Reply(status: status, body: String(decoding: rest[end.upperBound..<bodyEnd], as: UTF8.self)))
            rest = rest[bodyEnd...]
        }
        return replies
    }
}

/// What a `RecordingLogHandler` was given, for tests that read log lines.
final class RecordedLogLines: Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let lines = Mutex<[Line]>([])

    var all: [Line] { lines.withLock { $0 } }

    func append(_ line: Line) { lines.withLock { $0.append(line) } }
}

/// A log handler that keeps every line, with the logger's metadata and the line's own.
struct RecordingLogHandler: LogHandler {
    let lines: RecordedLogLines
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }.mapValues { "\($0)" }
        lines.append(.init(level: event.level, message: "\(event.message)", metadata: merged))
    }
}

/// Runs `work`, which blocks, on a thread of its own: never on one of the few threads of Swift's
/// shared pool, which the service under test needs to answer what `work` waits for.
func onThreadOfItsOwn<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

/// A bare TCP connection to 127.0.0.1, for requests a client library would not send. Its socket
/// blocks (every read gives up after 10 seconds), so what waits for the server is `async` and
/// waits on a thread of its own.
struct RawConnection: Sendable {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else { throw POSIXError(.ECONNREFUSED) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends one request and reads its reply; nil if the server closed the connection instead.
    func exchange(_ request: String) async throws -> RawHTTP.Reply? {
        send(request)
        return try await receive(expecting: 1).first
    }

    /// Reads replies until `expecting` have arrived, the server closes the connection, or a read times out.
    func receive(expecting: Int) async throws -> [RawHTTP.Reply] {
        try await onThreadOfItsOwn { blockingReceive(expecting: expecting) }
    }

    /// Whether the server has closed the connection: a read finds its end (or gives up after 10 seconds).
    func closedByServer() async throws -> Bool {
        try await onThreadOfItsOwn {
            var buffer = [UInt8](repeating: 0, count: 16)
            return recv(descriptor, &buffer, buffer.count, 0) == 0
        }
    }

    /// `receive(expecting:)` on the calling thread, for callers already on a thread of their own.
    func blockingReceive(expecting: Int) -> [RawHTTP.Reply] {
        var received: [UInt8] = []
        var replies: [RawHTTP.Reply] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while replies.count < expecting {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }  // a signal, such as SIGCHLD from another test's process
            if count <= 0 { break }
            received += buffer[0..<count]
            replies = RawHTTP.parse(received)
        }
        return replies
    }

    func send(_ text: String) {
        _ = text.withCString { Glibc.send(descriptor, $0, strlen($0), 0) }
    }

    func close() {
        _ = Glibc.close(descriptor)
    }
}
