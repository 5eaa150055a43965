import Foundation
import GRDB
import GatehouseStore
import HTTPTypes
import HummingbirdTesting
import NIOCore
import NIOEmbedded
import Testing

@testable import GatehouseServer

#if canImport(Glibc)
    import Glibc
#endif

/// What Flagger gave up on takes no effect later: a write whose client left before it committed is
/// dropped, and a check that fails closed with 503 leaves nothing behind.
@Suite("Nothing Flagger gave up on takes effect later", .timeLimit(.minutes(2)))
struct GaveUpTests {
    /// Holds SQLite's write lock from another connection, as a stalled volume or a long writer would.
    /// SQLite's write lock, held from another connection. Taking and releasing it wait on a thread
    /// of their own, never on the threads the service under test needs.
    final class WriteLock: Sendable {
        private let queue: DatabaseQueue

        private init(queue: DatabaseQueue) {
            self.queue = queue
        }

        static func take(path: String) async throws -> WriteLock {
            try await onThreadOfItsOwn {
                var configuration = Configuration()
                configuration.allowsUnsafeTransactions = true
                configuration.busyMode = .timeout(5)  // a write the service has under way ends first
                let queue = try DatabaseQueue(path: path, configuration: configuration)
                try queue.writeWithoutTransaction { try $0.execute(sql: "BEGIN IMMEDIATE") }
                return WriteLock(queue: queue)
            }
        }

        func release() async throws {
            try await onThreadOfItsOwn { [queue] in try queue.writeWithoutTransaction { try $0.execute(sql: "COMMIT") }
            }
        }
    }

    /// Scrapes `/metrics` until `name` has `value` (bounded): the event a test waits on.
    static func waitUntil(_ client: Client, _ name: String, is value: Double) async throws {
        for _ in 0..<400 {
            if try PrometheusText(try await client.get("/metrics").text).value(name) == value { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        Issue.record("\(name) never became \(value)")
    }

    @Test("a traffic step whose check's client left before the step was written stays approved")
    func stepSurvivesAClientThatLeft() async throws {
        let server = try TestServer { $0.storageTimeout = 30 }
        try await server.run(.live) { client in
            let port = try #require(client.client.port)
            #expect(
                try await client.post("/v1/canaries/test/podinfo/gates/traffic/open", #"{"steps": 2}"#).status == .ok)
            #expect(try await client.hook("confirm-traffic-increase", checksum: "r1").status == .ok)

            // Storage stops answering; Flagger's next check must spend the last step, so it waits to be written.
            let lock = try await WriteLock.take(path: server.arguments.databasePath)
            let flagger = try RawConnection(port: port)
            flagger.send(RawHTTP.post("/v1/flagger/confirm-traffic-increase", Self.payload("r1")))
            try await Self.waitUntil(client, "gatehouse_storage_up", is: 0)
            // Flagger's webhook times out: it drops the connection, and the server sees it close.
            let connectionsBefore = try PrometheusText(try await client.get("/metrics").text).value(
                "gatehouse_connections")
            flagger.abort()
            try await Self.waitUntil(client, "gatehouse_connections", is: (connectionsBefore ?? 2) - 1)
            try await lock.release()
            try await Self.waitUntil(client, "gatehouse_storage_up", is: 1)

            // The step Flagger never saw is still there for its next check, and only one.
            let gates = try #require(
                try await client.get("/v1/canaries/test/podinfo").json()["gates"] as? [String: Any])
            let traffic = try #require(gates["traffic"] as? [String: Any])
            #expect(traffic["state"] as? String == "open")
            #expect(traffic["remainingSteps"] as? Int == 1)
            #expect(try await client.hook("confirm-traffic-increase", checksum: "r1").status == .ok)
            #expect(try await client.hook("confirm-traffic-increase", checksum: "r1").status == .forbidden)
        }
    }

    @Test("the same check from a client that waits spends the step once storage answers again")
    func stepIsSpentForAClientThatWaits() async throws {
        let server = try TestServer { $0.storageTimeout = 30 }
        try await server.run(.live) { client in
            let port = try #require(client.client.port)
            _ = try await client.post("/v1/canaries/test/podinfo/gates/traffic/open", #"{"steps": 2}"#)
            #expect(try await client.hook("confirm-traffic-increase", checksum: "r1").status == .ok)
            let lock = try await WriteLock.take(path: server.arguments.databasePath)
            let flagger = try RawConnection(port: port)
            defer { flagger.close() }
            flagger.send(RawHTTP.post("/v1/flagger/confirm-traffic-increase", Self.payload("r1")))
            try await Self.waitUntil(client, "gatehouse_storage_up", is: 0)
            try await lock.release()
            #expect(try await flagger.receive(expecting: 1).first?.status == 200)
            #expect(try await client.hook("confirm-traffic-increase", checksum: "r1").status == .forbidden)
        }
    }

    @Test("a check that fails closed with 503 leaves no canary, checksum or audit entry behind")
    func failedCheckWritesNothing() async throws {
        let server = try TestServer { $0.storageTimeout = 0.5 }
        try await server.run(.live) { client in
            let lock = try await WriteLock.take(path: server.arguments.databasePath)
            let refused = try await client.hook("confirm-promotion", checksum: "r9", name: "never-seen")
            #expect(refused.status == .serviceUnavailable)
            try await lock.release()
            // /readyz probes storage and finds it answering again.
            for _ in 0..<400 where try await client.get("/readyz").status != .ok {
                try await Task.sleep(for: .milliseconds(25))
            }
            #expect(try await client.get("/readyz").status == .ok)
            #expect(try await client.get("/v1/canaries/test/never-seen").status == .notFound)
            let events = try #require(try await client.get("/v1/events?limit=100").json()["events"] as? [[String: Any]])
            #expect(events.allSatisfy { $0["name"] as? String != "never-seen" })
        }
    }

    @Test("a client that closes its side of the connection has left: its writes are dropped")
    func halfClosedClientHasLeft() throws {
        let limit = ConnectionLimit(served: 10, metrics: GatehouseMetrics(notificationTargets: []))
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers(limit.handlers(requestTimeout: .seconds(30)))
        let presence = limit.presence(of: ObjectIdentifier(channel))
        #expect(presence.isWaiting())
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(!presence.isWaiting())
        _ = try channel.finish()
    }

    static func payload(_ checksum: String) -> String {
        #"{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "\#(checksum)"}"#
    }
}

extension RawConnection {
    /// Drops the connection at once (a reset), as a client that gave up does.
    func abort() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }
}
