import Foundation
import GatehouseCore
import GatehouseStore
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization
import Testing

@testable import GatehouseServer

#if canImport(Glibc)
    import Glibc
#endif

/// Checks that change nothing are answered on the event loop, before the router; these tests hold
/// that path to the router's answers, its order on a connection and its refusals to answer.
@Suite("Checks answered on the event loop")
struct CheckFastPathTests {
    /// A sequence of calls whose later checks repeat earlier ones, so a live service answers them
    /// on the event loop, while the router answers every one of them under `.router`.
    static let sequence: [(method: HTTPRequest.Method, path: String, body: String?)] = {
        let flagger = #"{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "c1"}"#
        let loadtester = #"{"name": "podinfo", "namespace": "test"}"#
        var calls: [(HTTPRequest.Method, String, String?)] = []
        for hook in ["confirm-rollout", "confirm-traffic-increase", "confirm-promotion", "rollback"] {
            calls += Array(repeating: (.post, "/v1/flagger/\(hook)", flagger), count: 3)
        }
        calls += Array(repeating: (.post, "/gate/check", loadtester), count: 3)
        calls += Array(repeating: (.post, "/rollback/check", loadtester), count: 3)
        calls.append((.post, "/v1/canaries/test/podinfo/gates/promotion/open", #"{"sticky": true, "reason": "ok"}"#))
        calls += Array(repeating: (.post, "/v1/flagger/confirm-promotion", flagger), count: 3)
        calls.append((.post, "/gate/open", loadtester))
        calls += Array(repeating: (.post, "/gate/check", loadtester), count: 3)
        calls.append((.post, "/v1/freezes", #"{"reason": "incident 42"}"#))
        calls += Array(repeating: (.post, "/v1/flagger/confirm-promotion", flagger), count: 3)
        calls += Array(repeating: (.post, "/v1/flagger/rollback", flagger), count: 2)
        // Bad checks, which the event loop leaves to the router.
        calls.append((.post, "/v1/flagger/confirm-rollout", #"{"name": "Pod_Info", "namespace": "test"}"#))
        calls.append((.post, "/v1/flagger/confirm-rollout", "{not json"))
        calls.append((.post, "/v1/flagger/confirm-rollout", nil))
        calls.append((.get, "/v1/flagger/confirm-rollout", nil))
        calls.append((.post, "/v1/flagger/confirm-rollout?x=1", flagger))
        return calls
    }()

    @Test("only a check that changes nothing is answered from memory; the router gets the rest")
    func answersOnlyRepeats() async throws {
        let server = try TestServer()
        let store = try GateStore(
            writer: try GateStore.openDatabase(atPath: server.arguments.databasePath, busyTimeout: 1))
        let checks = InMemoryChecks(
            checker: GateChecker(store: store, metrics: GatehouseMetrics()), accessGuard: AccessGuard(namespaces: nil),
            secret: FlaggerSecret("s3cret"), logger: Logger(label: "test"), serverName: nil)
        let route = try #require(CheckRoute.all.first { $0.path == "/gate/check" })
        let signed = ByteBuffer(string: #"{"name": "podinfo", "namespace": "test", "metadata": {"token": "s3cret"}}"#)
        let podinfo = try CanaryID(namespace: "test", name: "podinfo")

        #expect(checks.answer(route, body: signed, requestID: "1") == nil, "the first refusal is written first")
        _ = try await store.check(Check(canary: podinfo, gate: .shared, checksum: ""))
        let repeated = try #require(checks.answer(route, body: signed, requestID: "2"))
        #expect(repeated.status == .forbidden && repeated.text == "Forbidden")

        let unsigned = ByteBuffer(string: #"{"name": "podinfo", "namespace": "test"}"#)
        #expect(checks.answer(route, body: unsigned, requestID: "3") == nil, "a missing secret is the router's 403")
        #expect(checks.answer(route, body: ByteBuffer(string: "{"), requestID: "4") == nil)
        #expect(checks.answer(route, body: ByteBuffer(), requestID: "5") == nil)

        _ = try await store.open(.shared, of: podinfo, OpenRequest(isSticky: true), actor: "test")
        #expect(checks.answer(route, body: signed, requestID: "6") == nil, "the first approval is written first")
        _ = try await store.check(Check(canary: podinfo, gate: .shared, checksum: ""))
        #expect(checks.answer(route, body: signed, requestID: "7")?.text == "Approved")
    }

    @Test("a check answered from memory is logged at debug with its request id, route, canary and decision")
    func logsWithRequestID() async throws {
        let server = try TestServer()
        let store = try GateStore(
            writer: try GateStore.openDatabase(atPath: server.arguments.databasePath, busyTimeout: 1))
        let lines = RecordedLogLines()
        var logger = Logger(label: "test") { _ in RecordingLogHandler(lines: lines) }
        logger.logLevel = .debug
        let checks = InMemoryChecks(
            checker: GateChecker(store: store, metrics: GatehouseMetrics()), accessGuard: AccessGuard(namespaces: nil),
            secret: FlaggerSecret(nil), logger: logger, serverName: nil)
        let route = try #require(CheckRoute.all.first { $0.path == "/v1/flagger/confirm-promotion" })
        let body = ByteBuffer(string: #"{"name": "podinfo", "namespace": "test", "checksum": "c1"}"#)
        _ = try await store.check(
            Check(canary: try CanaryID(namespace: "test", name: "podinfo"), gate: .promotion, checksum: "c1"))

        #expect(checks.answer(route, body: body, requestID: "0123abcd") != nil)
        let line = try #require(lines.all.last)
        #expect(line.level == .debug)
        #expect(line.metadata["hb.request.id"] == "0123abcd")
        #expect(line.metadata["route"] == "/v1/flagger/confirm-promotion")
        #expect(line.metadata["canary"] == "test/podinfo" && line.metadata["decision"] == "refused")
    }

    @Test("a live service answers every check exactly as the router does: status, body and headers")
    func sameAnswers() async throws {
        func replay(_ setup: TestingSetupChoice) async throws -> [Client.Reply] {
            try await TestServer().run(setup.setup) { client in
                var replies: [Client.Reply] = []
                for call in Self.sequence {
                    replies.append(try await client.send(call.method, call.path, body: call.body))
                }
                return replies
            }
        }
        let routed = try await replay(.router)
        let live = try await replay(.live)
        for (index, (expected, actual)) in zip(routed, live).enumerated() {
            let call = "\(Self.sequence[index].method) \(Self.sequence[index].path) (call \(index))"
            #expect(actual.status == expected.status, "\(call)")
            // Freeze ids and times differ between runs; checks' bodies do not.
            if Self.sequence[index].path.hasPrefix("/v1/flagger") || Self.sequence[index].path.hasSuffix("check") {
                #expect(actual.text == expected.text, "\(call)")
                #expect(actual.headers[.contentType] == expected.headers[.contentType], "\(call)")
            }
            #expect(actual.headers[HTTPField.Name("X-Request-Id")!] != nil, "\(call)")
            #expect(actual.headers[.server] == "gatehouse", "\(call)")
            #expect(actual.headers[.date].map(HTTPDateShape.matches) == true, "\(call)")
        }
    }

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
            #expect(replies.map(\.status) == [200, 200, 200])
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

    @Test("a connection busy with checks is not closed as idle, and an idle one is")
    func idleTimeout() async throws {
        try await TestServer { $0.idleTimeout = 1 }.run(.live) { client in
            let port = try #require(client.client.port)
            _ = try await client.post("/gate/open", #"{"name": "podinfo", "namespace": "test"}"#)
            let check = RawHTTP.post("/gate/check", #"{"name": "podinfo", "namespace": "test"}"#)
            let busy = try await RawHTTP.exchange(
                port: port, check, check, check, check, check, check, expecting: 6, pause: 400_000)
            #expect(busy.map(\.status) == Array(repeating: 200, count: 6), "2.4 s of checks, never 1 s idle")
            let idle = try await RawHTTP.exchange(port: port, check, check, expecting: 2, pause: 1_500_000)
            #expect(idle.map(\.status) == [200], "closed after 1 s without a request")
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

    @Test("checks fail closed on the event loop too: storage down gives 503, not a stale answer")
    func failsClosed() async throws {
        let server = try TestServer { $0.storageTimeout = 0.3 }
        try await server.run(.live) { client in
            _ = try await client.post("/gate/open", #"{"name": "podinfo", "namespace": "test"}"#)
            let check = #"{"name": "podinfo", "namespace": "test"}"#
            #expect(try await client.post("/gate/check", check).status == .ok)
            #expect(try await client.post("/gate/check", check).status == .ok)
            let lock = try LockedDatabase(path: server.arguments.databasePath)
            #expect(try await client.get("/readyz").status == .serviceUnavailable)
            #expect(try await client.post("/gate/check", check).status == .serviceUnavailable)
            lock.unlock()
            #expect(try await client.get("/readyz").status == .ok)
            #expect(try await client.post("/gate/check", check).status == .ok)
        }
    }
}

/// `.router` or `.live`, as a value tests can pass around.
enum TestingSetupChoice {
    case router, live

    var setup: TestingSetup {
        switch self {
        case .router: .router
        case .live: .live
        }
    }
}

/// RFC 9110's IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
enum HTTPDateShape {
    static func matches(_ value: String) -> Bool {
        value.wholeMatch(of: /[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT/) != nil
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
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(
                    with: Result {
                        try blockingExchange(
                            port: port, requests, expecting: expecting, bytesPerWrite: bytesPerWrite, pause: pause)
                    })
            }
        }
    }

    private static func blockingExchange(
        port: Int, _ requests: [String], expecting: Int, bytesPerWrite: Int, pause: useconds_t
    ) throws -> [Reply] {
        let connection = try RawConnection(port: port)
        defer { connection.close() }
        let socket = connection.descriptor
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
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
        var received: [UInt8] = []
        var replies: [Reply] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while replies.count < expecting {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }  // a signal, such as SIGCHLD from another test's process
            if count <= 0 { break }
            received += buffer[0..<count]
            replies = parse(received)
        }
        return replies
    }

    /// The complete replies in `bytes` (each with a Content-Length).
    private static func parse(_ bytes: [UInt8]) -> [Reply] {
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
