import Foundation
import GRDB
import GatehouseServer
import HTTPTypes
import HummingbirdTesting
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Operating the service", .timeLimit(.minutes(3)))
struct OperationsTests {
    @Test("state survives a restart of the service")
    func restart() async throws {
        let server = try TestServer()
        try await server.run(.live) { client in
            let reply = try await client.post(
                "/v1/canaries/test/podinfo/gates/promotion/open", #"{"reason": "ok", "ttl": "2h"}"#)
            #expect(reply.status == .ok)
            _ = try await client.post("/v1/freezes", #"{"namespace": "prod", "reason": "audit week"}"#)
        }
        try await server.run(.live) { client in
            #expect(try await client.hook("confirm-promotion", checksum: "c1").status == .ok)
            let freezes = try await client.get("/v1/freezes").json()["freezes"] as? [[String: Any]]
            #expect(freezes?.first?["reason"] as? String == "audit week")
        }
    }

    @Test("health, readiness and the OpenAPI document")
    func probes() async throws {
        try await TestServer().run { client in
            #expect(try await client.get("/healthz").status == .ok)
            #expect(try await client.get("/readyz").status == .ok)
            let document = try await client.get("/openapi.yaml")
            #expect(document.status == .ok)
            #expect(document.text.hasPrefix("openapi: 3"))
        }
    }

    @Test("checks answer 503 and readiness fails while storage cannot answer; both recover")
    func failClosed() async throws {
        let server = try TestServer { $0.storageTimeout = 0.3 }
        try await server.run { client in
            _ = try await client.post("/v1/canaries/test/podinfo/gates/rollout/open", #"{"sticky": true}"#)
            let lock = try await LockedDatabase.take(path: server.arguments.databasePath)
            let ready = try await client.get("/readyz")
            #expect(ready.status == .serviceUnavailable)
            let check = try await client.hook("confirm-rollout", checksum: "c1")
            #expect(check.status == .serviceUnavailable, "an open gate must not pass while storage is down")
            #expect(!check.text.isEmpty)
            #expect(
                try await client.post("/gate/check", #"{"name": "podinfo", "namespace": "test"}"#).status
                    == .serviceUnavailable)
            #expect(
                try await client.post("/v1/canaries/test/podinfo/gates/promotion/open").status == .serviceUnavailable)
            await lock.unlock()
            #expect(try await client.get("/readyz").status == .ok)
            #expect(try await client.hook("confirm-rollout", checksum: "c1").status == .ok)
        }
    }

    @Test("canaries are listed a page at a time, filtered by namespace and state")
    func canaryPages() async throws {
        try await TestServer().run { client in
            for name in ["a", "b", "c"] { _ = try await client.hook("confirm-promotion", checksum: "c1", name: name) }
            _ = try await client.post("/v1/canaries/test/d/gates/rollout/open")
            let first = try await client.get("/v1/canaries?limit=2").json()
            #expect((first["canaries"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["a", "b"])
            let next = try #require(first["next"] as? String)
            #expect(next == "test/b")
            let second = try await client.get("/v1/canaries?limit=2&after=\(next)").json()
            #expect((second["canaries"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["c", "d"])
            #expect(second["next"] == nil)
            let waiting = try await client.get("/v1/canaries?state=waiting").json()
            #expect((waiting["canaries"] as? [[String: Any]])?.count == 3)
            let idle = try await client.get("/v1/canaries?state=idle&namespace=test").json()
            #expect((idle["canaries"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["d"])
            #expect(try await client.get("/v1/canaries?state=stuck").status == .badRequest)
            #expect(try await client.get("/v1/canaries?after=nonsense").status == .badRequest)
            #expect(try await client.get("/v1/canaries?limit=0").status == .badRequest)
        }
    }

    @Test("beyond --max-canaries a new canary gets 429 with a sentence; known ones are answered")
    func canaryLimit() async throws {
        try await TestServer { $0.maximumCanaries = 1 }.run { client in
            #expect(try await client.hook("confirm-rollout", checksum: "c1", name: "known").status == .forbidden)
            let refused = try await client.hook("confirm-rollout", checksum: "c1", name: "stranger")
            #expect(refused.status == .tooManyRequests)
            #expect(refused.text.contains("--max-canaries"))
            #expect(try await client.hook("confirm-rollout", checksum: "c1", name: "known").status == .forbidden)
            #expect(try await client.get("/v1/canaries/test/stranger").status == .notFound)
        }
    }

    @Test("a gate of a canary that never called opens with a notice naming what was likely meant")
    func neverCalled() async throws {
        try await TestServer().run { client in
            for name in ["checkout", "podinfo"] {
                #expect(try await client.hook("confirm-rollout", checksum: "c1", name: name).status == .forbidden)
            }
            // A typo in the name: the canary one edit away that has called.
            let typo = try await client.post("/v1/canaries/test/chekout/gates/rollout/open").json()
            let typoNotice = try #require(typo["notice"] as? String)
            #expect(typoNotice.hasPrefix("no canary test/chekout has called Gatehouse; did you mean test/checkout?"))
            // A forgotten namespace: the same name where it has called.
            let elsewhere = try await client.post("/v1/canaries/default/podinfo/gates/promotion/close").json()
            #expect((elsewhere["notice"] as? String)?.contains("did you mean test/podinfo?") == true)
            // Nothing like it: said all the same, and the change is made (a first rollout approved ahead).
            let new = try await client.post("/v1/canaries/test/brand-new-service/gates/rollout/open").json()
            #expect(
                (new["notice"] as? String)?.hasPrefix("no canary test/brand-new-service has called Gatehouse (") == true
            )
            #expect((new["gates"] as? [String: [String: Any]])?["rollout"]?["state"] as? String == "open")
            // A canary that has called: no notice.
            let known = try await client.post("/v1/canaries/test/checkout/gates/rollout/open").json()
            #expect(known["notice"] == nil)
            #expect(known["outcome"] != nil)
        }
    }
}

/// Another connection holding SQLite's exclusive lock on the file, as a stuck process would.
final class LockedDatabase: Sendable {
    private let release = DispatchSemaphore(value: 0)
    private let released = DispatchSemaphore(value: 0)

    private init() {}

    /// Takes the lock, waiting up to 5 seconds for a write the service has under way (on a thread of
    /// its own: never on the threads the service under test needs); throws if it cannot.
    static func take(path: String) async throws -> LockedDatabase {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        let lock = LockedDatabase()
        try await withCheckedThrowingContinuation { (taken: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread {
                let resumed = Mutex(false)
                do {
                    try queue.inDatabase { db in
                        try db.execute(sql: "BEGIN EXCLUSIVE")
                        resumed.withLock { $0 = true }
                        taken.resume()
                        lock.release.wait()
                        try db.execute(sql: "ROLLBACK")
                    }
                } catch {
                    if !resumed.withLock({ $0 }) { taken.resume(throwing: error) }
                }
                lock.released.signal()
            }
        }
        return lock
    }

    /// Lets go of the lock and waits until it is gone (on a thread of its own).
    func unlock() async {
        release.signal()
        await withCheckedContinuation { (gone: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                self.released.wait()
                gone.resume()
            }
        }
    }
}
