import Foundation
import GRDB
import GatehouseCore
import Synchronization
import Testing

@testable import GatehouseStore

@Suite("The store on a real SQLite file", .timeLimit(.minutes(3)))
struct GateStoreTests {
    let database: TemporaryDatabase
    let store: GateStore
    let podinfo = try! CanaryID(namespace: "test", name: "podinfo")

    init() throws {
        database = try TemporaryDatabase()
        store = try database.openStore()
    }

    func check(_ gate: GateKind, _ checksum: Revision, phase: CanaryPhase = .progressing) async throws -> Decision {
        try await store.check(Check(canary: podinfo, gate: gate, checksum: checksum, phase: phase))
    }

    func auditCount() throws -> Int {
        try database.otherConnection().read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM audit") ?? 0 }
    }

    @Test("a check that changes nothing does not write to the database")
    func checksAreReadOnly() async throws {
        _ = try await store.open(.promotion, of: podinfo, OpenRequest(isSticky: true), actor: "alice")
        _ = try await check(.promotion, "c1")
        let observer = try database.otherConnection()
        let before = try await observer.read { try Int.fetchOne($0, sql: "PRAGMA data_version") }
        for _ in 0..<100 { #expect(try await check(.promotion, "c1").isApproved) }
        for _ in 0..<100 { #expect(try await !check(.traffic, "c1").isApproved) }
        let after = try await observer.read { try Int.fetchOne($0, sql: "PRAGMA data_version") }
        // the traffic gate's first refusal is one write; the 199 other checks none
        #expect(after == before.map { $0 + 1 })
    }

    @Test("checks fail closed while storage cannot answer, and resume when it can")
    func failClosed() async throws {
        let lock = try await database.lockExclusively()
        #expect(await store.probe() == false)
        #expect(!store.isHealthy)
        await #expect(throws: StoreError.self) { try await check(.rollout, "c1") }
        await #expect(throws: StoreError.self) {
            try await store.open(.rollout, of: podinfo, OpenRequest(), actor: "alice")
        }
        await lock.unlock()
        #expect(await store.probe())
        #expect(!(try await check(.rollout, "c1").isApproved))
        #expect(try await store.canary(podinfo)?.gate(.rollout).isOpen == false, "the failed open left nothing behind")
    }

    @Test("a write still waiting for storage when its deadline passes fails closed and is never applied later")
    func stalledWriteIsAbandoned() async throws {
        let store = try database.openStore(busyTimeout: 30, storageTimeout: 0.3)
        let lock = try await database.lockExclusively()
        await #expect(throws: StoreError.self) {
            _ = try await store.open(.promotion, of: podinfo, OpenRequest(reason: "too late"), actor: "alice")
        }
        #expect(!store.isHealthy, "a write that missed its deadline marks storage unavailable")
        await #expect(throws: StoreError.self) {
            _ = try await store.check(Check(canary: podinfo, gate: .promotion, checksum: "c1"))
        }
        await lock.unlock()
        // The probe queues behind the abandoned write: once it commits, that write has had its chance.
        #expect(await store.probe())
        #expect(store.isHealthy)
        #expect(try await store.canary(podinfo)?.gate(.promotion).isOpen != true)
        let reopened = try database.openStore()
        #expect(try await reopened.canary(podinfo)?.gate(.promotion).isOpen != true)
        #expect(try auditCount() == 0)
    }

    @Test("a transaction that outlives one of its writers' deadlines rolls back: nothing of it is kept")
    func batchWithAbandonedWriteRollsBack() async throws {
        let store = try database.openStore(storageTimeout: 0.3)
        let holdWriter = DispatchSemaphore(value: 0)
        let holdBatch = DispatchSemaphore(value: 0)
        // The writer is busy, so the next two writes wait together and are committed in one batch.
        let (started, starting) = AsyncStream<Void>.makeStream()
        let busy = Task {
            try await store.transaction { _ in
                starting.yield()
                holdWriter.wait()
                return Plan(value: ())
            }
        }
        for await _ in started { break }
        let opening = Task {
            try await store.open(.promotion, of: podinfo, OpenRequest(reason: "late"), actor: "alice")
        }
        let stalling = Task {
            try await store.transaction { _ in
                holdBatch.wait()
                return Plan(value: ())
            }
        }
        // Neither can commit; the open's caller gives up at its deadline.
        await #expect(throws: StoreError.self) { _ = try await opening.value }
        holdWriter.signal()
        holdBatch.signal()
        _ = try? await busy.value  // its own deadline passed too: rolled back as well
        _ = try? await stalling.value
        #expect(await store.probe())
        #expect(try await store.canary(podinfo)?.gate(.promotion).isOpen != true)
        #expect(try await database.openStore().canary(podinfo)?.gate(.promotion).isOpen != true)
        #expect(try auditCount() == 0)
    }

    @Test("a deleted or replaced database file fails closed, and says so", arguments: ["deleted", "replaced"])
    func databaseFileGone(what: String) async throws {
        _ = try await store.open(.promotion, of: podinfo, OpenRequest(isSticky: true), actor: "alice")
        #expect(try await check(.promotion, "c1").isApproved)
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database.path + suffix) }
        if what == "replaced" { _ = try database.openStore() }  // a new, empty database in its place
        // The next write is refused before any probe has looked: it would be committed to a lost file.
        await #expect(throws: StoreError.self) {
            _ = try await store.close(.promotion, of: podinfo, reason: "lost?", actor: "bob")
        }
        #expect(await !store.probe())
        #expect(!store.isHealthy)
        #expect(await !store.readiness())
        await #expect(throws: StoreError.self) { _ = try await check(.promotion, "c1") }
    }

    @Test("canaries nobody acted on are forgotten once they stop calling: memory, disk and audit")
    func forgetUntouched() async throws {
        let names = ["stranger-1", "stranger-2", "approved", "reported"]
        let ids = try names.map { try CanaryID(namespace: "test", name: $0) }
        for id in ids { _ = try await store.check(Check(canary: id, gate: .promotion, checksum: "c1")) }
        _ = try await store.open(.promotion, of: ids[2], OpenRequest(), actor: "alice")
        try await store.report(
            FlaggerPayload(
                name: "reported", namespace: "test", phase: .progressing, checksum: "c1",
                metadata: ["eventMessage": "Starting canary analysis for reported.test", "eventType": "Normal"]),
            of: ids[3], as: .event)
        // Still calling (seen after the cutoff): nothing goes.
        #expect(try await store.forgetUntouchedCanaries(notSeenSince: Date().addingTimeInterval(-60)) == 0)
        // Silent since the cutoff: the two strangers go, with their audit entries.
        #expect(try await store.forgetUntouchedCanaries(notSeenSince: Date().addingTimeInterval(60)) == 2)
        #expect(try await store.canaries().map(\.id.name) == ["approved", "reported"])
        let reopened = try database.openStore()
        #expect(try await reopened.canaries().map(\.id.name) == ["approved", "reported"])
        let connection = try database.otherConnection()
        let strangers = try await connection.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit WHERE name LIKE 'stranger-%'") ?? -1
        }
        #expect(strangers == 0)
    }
}

extension GateStoreTests {
    /// A database an older Gatehouse left: migrated up to `migration`, holding what `sql` inserts.
    static func database(migratedUpTo migration: String, holding sql: String) async throws -> TemporaryDatabase {
        let old = try TemporaryDatabase()
        let queue = try DatabaseQueue(path: old.path)
        try Schema.migrator.migrate(queue, upTo: migration)
        try await queue.write { db in try db.execute(sql: sql) }
        try queue.close()
        return old
    }

    @Test("a database from before clusters keeps its canaries, gates, freezes and audit, in the unnamed cluster")
    func migratesToClusters() async throws {
        let old = try await Self.database(
            migratedUpTo: "v3: rollouts tracked from Flagger's reliable signals",
            holding: """
                INSERT INTO canary (namespace, name, lastPhase, rolloutStage) VALUES ('test', 'podinfo', 'Progressing', 'progressing');
                INSERT INTO gate (namespace, name, kind, isOpen, mode, actor, reason, changedAt, openedAt)
                    VALUES ('test', 'podinfo', 'promotion', 1, 'sticky', 'alice', 'before', '2026-11-01 10:00:00.000', '2026-11-01 10:00:00.000');
                INSERT INTO "freeze" (namespace, reason, actor, createdAt) VALUES ('prod', 'old freeze', 'bob', '2026-11-01 10:00:00.000');
                INSERT INTO audit (at, namespace, name, gate, action, actor, reason)
                    VALUES ('2026-11-01 10:00:00.000', 'test', 'podinfo', 'promotion', 'opened', 'alice', 'before');
                """)
        let store = try old.openStore()
        let podinfo = try CanaryID(namespace: "test", name: "podinfo")
        let canary = try #require(try await store.canary(podinfo))
        #expect(canary.gate(.promotion).isOpen && canary.gate(.promotion).reason == "before")
        #expect(try await store.check(Check(canary: podinfo, gate: .promotion, checksum: "c1")).isApproved)
        #expect(try await store.freezes().map(\.namespace) == ["prod"])
        #expect(try await store.events(of: podinfo, limit: 10).map(\.reason).contains("before"))
        _ = try await store.open(.rollout, of: podinfo, OpenRequest(), actor: "carol")
        #expect(try await old.openStore().canary(podinfo)?.gate(.rollout).isOpen == true)
    }
}

extension GateStoreTests {
    @Test("a database from before v11 loses the rows of gates as if never touched, and keeps the others")
    func migratesUntouchedGates() async throws {
        let old = try await Self.database(
            migratedUpTo: "v10: guardrail adoption: traffic weight, last success, dry runs",
            holding: """
                INSERT INTO canary (cluster, namespace, name, rolloutStage) VALUES ('', 'test', 'podinfo', 'ended');
                INSERT INTO gate (cluster, namespace, name, kind, isOpen, mode) VALUES ('', 'test', 'podinfo', 'traffic', 0, 'once');
                INSERT INTO gate (cluster, namespace, name, kind, isOpen, mode, lastVerdict, lastVerdictChecksum, lastVerdictAt)
                    VALUES ('', 'test', 'podinfo', 'rollback', 0, 'once', 'refused', 'c1', '2026-11-01 10:00:00.000');
                INSERT INTO gate (cluster, namespace, name, kind, isOpen, mode, actor, reason, changedAt)
                    VALUES ('', 'test', 'podinfo', 'rollout', 0, 'once', 'gatehouse', 'rollout ended: Succeeded', '2026-11-01 10:00:00.000');
                """)
        let store = try old.openStore()
        let canary = try #require(try await store.canary(try CanaryID(namespace: "test", name: "podinfo")))
        #expect(canary.gates.keys == [.rollout, .rollback])
        #expect(canary.gate(.rollout).reason == "rollout ended: Succeeded")
        let kinds = try await store.rows(SQL("SELECT kind FROM gate ORDER BY kind")) { try $0.text("kind") }
        #expect(kinds == ["rollback", "rollout"])
    }

    @Test("a database from before v12 keeps every canary, gate, index and foreign key, its rows now in key order")
    func migratesToKeyOrder() async throws {
        let old = try await Self.database(
            migratedUpTo: "v11: a gate as if never touched has no row",
            holding: """
                INSERT INTO canary (cluster, namespace, name, lastPhase, rolloutStage, version, trafficWeight)
                    VALUES ('', 'test', 'podinfo', 'Progressing', 'progressing', 3, 20),
                           ('', 'test', 'frontend', 'Succeeded', 'ended', 4, NULL);
                INSERT INTO gate (cluster, namespace, name, kind, isOpen, mode, actor, reason, changedAt, openedAt)
                    VALUES ('', 'test', 'podinfo', 'promotion', 1, 'sticky', 'alice', 'before', '2026-11-01 10:00:00.000', '2026-11-01 10:00:00.000'),
                           ('', 'test', 'frontend', 'rollout', 0, 'once', 'gatehouse', 'rollout ended: Succeeded', '2026-11-01 10:00:00.000', NULL);
                UPDATE storeVersion SET version = 4;
                """)
        let store = try old.openStore()
        let podinfo = try CanaryID(namespace: "test", name: "podinfo")
        let canary = try #require(try await store.canary(podinfo))
        #expect(canary.gate(.promotion).isOpen && canary.gate(.promotion).actor == "alice")
        #expect(canary.trafficWeight == 20 && canary.lastPhase == .progressing)
        #expect(
            try await store.canary(try CanaryID(namespace: "test", name: "frontend"))?.gate(.rollout).reason
                == "rollout ended: Succeeded")
        let tables = try await store.rows(SQL("SELECT name, sql FROM sqlite_master WHERE name IN ('canary', 'gate')")) {
            (try $0.text("name"), try $0.text("sql"))
        }
        #expect(tables.count == 2 && tables.allSatisfy { $0.1.hasSuffix("WITHOUT ROWID") })
        let indexes = try await store.rows(
            SQL(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'canary' AND sql IS NOT NULL ORDER BY name"
            )
        ) { try $0.text("name") }
        #expect(indexes == ["canary_by_observed", "canary_by_version"])
        _ = try await store.open(.rollout, of: podinfo, OpenRequest(), actor: "carol")
        #expect(try await old.openStore().canary(podinfo)?.gate(.rollout).isOpen == true)
        // The gate's foreign key still names the canary: a canary's gates go with it.
        let orphans = try await old.otherConnection().write { db in
            try db.execute(sql: "PRAGMA foreign_keys = ON; DELETE FROM canary WHERE name = 'podinfo'")
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM gate WHERE name = 'podinfo'")
        }
        #expect(orphans == 0)
    }
}

/// What the store promises on either database; run on PostgreSQL when `GATEHOUSE_TEST_POSTGRES` is set.
@Suite("The store on SQLite and PostgreSQL", .timeLimit(.minutes(3)))
struct StoreContractTests {
    @Test("an opened gate survives a restart", arguments: Backend.available, GateKind.allCases)
    func survivesRestart(backend: Backend, kind: GateKind) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        _ = try await store.open(
            kind, of: fixture.podinfo, OpenRequest(reason: "ship it", isSticky: true), actor: "alice")
        let reopened = try await fixture.reopen()
        let gate = try #require(try await reopened.canary(fixture.podinfo)).gate(kind)
        #expect(gate.isOpen && gate.mode == .sticky && gate.actor == "alice" && gate.reason == "ship it")
        let decision = try await reopened.check(Check(canary: fixture.podinfo, gate: kind, checksum: "c1"))
        #expect(decision.isApproved)
    }

    @Test("concurrent checks use each approved traffic step exactly once", arguments: Backend.available)
    func stepsUnderConcurrency(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        _ = try await store.open(.traffic, of: fixture.podinfo, OpenRequest(steps: 5), actor: "alice")
        let approvals = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<60 { group.addTask { try await fixture.check(.traffic, "c1").isApproved } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(approvals == 5)
        #expect(!(try #require(try await store.canary(fixture.podinfo)).gate(.traffic).isOpen))
        #expect(try await fixture.count("SELECT COUNT(*) AS count FROM audit WHERE action = 'consumed'") == 5)
    }

    @Test(
        "writes committed together keep each other's results: a refused one leaves the rest intact",
        arguments: Backend.available)
    func groupCommit(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        let inAnHour = Date().addingTimeInterval(3600)
        let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<40 {
                group.addTask {
                    let id = try CanaryID(namespace: "test", name: "app-\(index)")
                    if index.isMultiple(of: 2) {
                        _ = try await store.open(.promotion, of: id, OpenRequest(isSticky: true), actor: "alice")
                        return true
                    }
                    do {
                        _ = try await store.requestRollback(
                            of: id, reason: nil, expiresAt: inAnHour, force: false, actor: "alice")
                        return true
                    } catch StoreError.conflict {
                        return false
                    }
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count == 20)
        let reopened = try await fixture.reopen()
        for index in 0..<40 {
            let canary = try await reopened.canary(try CanaryID(namespace: "test", name: "app-\(index)"))
            if index.isMultiple(of: 2) {
                #expect(canary?.gate(.promotion).isOpen == true)
            } else {
                #expect(canary == nil, "a refused rollback request must leave nothing behind")
            }
        }
        #expect(try await fixture.count("SELECT COUNT(*) AS count FROM audit") == 20)
    }

    @Test("a rollback request is refused outside a rollout unless forced", arguments: Backend.available)
    func rollbackConflict(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        let inAnHour = Date().addingTimeInterval(3600)
        await #expect(throws: StoreError.self) {
            try await store.requestRollback(
                of: fixture.podinfo, reason: nil, expiresAt: inAnHour, force: false, actor: "alice")
        }
        #expect(try await store.canary(fixture.podinfo)?.gate(.rollback).isOpen != true)
        let forced = try await store.requestRollback(
            of: fixture.podinfo, reason: "bad", expiresAt: inAnHour, force: true, actor: "alice")
        #expect(forced.gate(.rollback).isOpen)
    }

    @Test("a rollback requested mid-analysis fires for that rollout only", arguments: Backend.available)
    func rollbackFiresOnce(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        #expect(try await !fixture.check(.rollback, "c2").isApproved)
        _ = try await store.requestRollback(
            of: fixture.podinfo, reason: "bad", expiresAt: Date().addingTimeInterval(3600), force: false, actor: "alice"
        )
        #expect(try await fixture.check(.rollback, "c2").isApproved)
        try await store.report(
            FlaggerPayload(name: "podinfo", namespace: "test", phase: .failed, checksum: "c2"), of: fixture.podinfo,
            as: .postRollout)
        #expect(try await !fixture.check(.rollback, "c3").isApproved)
    }

    @Test(
        "Flagger's end events close once-gates and keep sticky ones",
        arguments: Backend.available,
        [
            (CanaryPhase.succeeded, "Promotion completed! Scaling down podinfo.test"),
            (.failed, "Canary failed! Scaling down podinfo.test"),
        ])
    func endOfRollout(backend: Backend, end: (phase: CanaryPhase, message: String)) async throws {
        let (phase, message) = end
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        _ = try await store.open(.promotion, of: fixture.podinfo, OpenRequest(), actor: "alice")
        _ = try await store.open(.shared, of: fixture.podinfo, OpenRequest(isSticky: true), actor: "alice")
        try await store.report(
            FlaggerPayload(
                name: "podinfo", namespace: "test", phase: phase, checksum: "c1",
                metadata: ["eventMessage": message, "eventType": "Normal"]), of: fixture.podinfo, as: .event)
        let canary = try #require(try await store.canary(fixture.podinfo))
        #expect(!canary.gate(.promotion).isOpen)
        #expect(canary.gate(.shared).isOpen)
        #expect(canary.lastMessage == message)
        #expect(canary.rollout.stage == .ended)
    }

    @Test(
        "a Succeeded or Failed phase on any other event ends nothing (it is the phase before the tick)",
        arguments: Backend.available)
    func laggingPhaseEndsNothing(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        _ = try await store.open(.promotion, of: fixture.podinfo, OpenRequest(), actor: "ci")
        for phase in [CanaryPhase.succeeded, .failed] {
            try await store.report(
                FlaggerPayload(
                    name: "podinfo", namespace: "test", phase: phase, checksum: "c1",
                    metadata: ["eventMessage": "Confirm-rollout check gatehouse-rollout passed", "eventType": "Normal"]),
                of: fixture.podinfo, as: .event)
        }
        #expect(try #require(try await store.canary(fixture.podinfo)).gate(.promotion).isOpen)
    }

    @Test(
        "beyond the canary limit a new name that only asks is refused; one acted on, or that sent an event, is taken on and not counted",
        arguments: Backend.available)
    func canaryLimit(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = try await fixture.reopen(maximumCanaries: 2)
        let ids = try ["a", "b", "c", "d", "e"].map { try CanaryID(namespace: "test", name: $0) }
        for id in ids.prefix(2) { _ = try await store.check(Check(canary: id, gate: .rollout, checksum: "c1")) }
        do {
            _ = try await store.check(Check(canary: ids[2], gate: .rollout, checksum: "c1"))
            Issue.record("a third name that only asks was taken on")
        } catch let error as StoreError {
            #expect("\(error)".contains("remembers 2 canaries that only asked"))
        }
        // A person opening a gate of a new canary is not a stranger asking: it is taken on, and
        // Flagger's checks of it are answered although the cap is reached.
        _ = try await store.open(.rollout, of: ids[2], OpenRequest(), actor: "alice")
        #expect(try await store.check(Check(canary: ids[2], gate: .rollout, checksum: "c1")).isApproved)
        try await store.report(
            FlaggerPayload(
                name: "d", namespace: "test", phase: .progressing, checksum: "c1",
                metadata: ["eventMessage": "New revision detected! Scaling up d.test", "eventType": "Normal"]),
            of: ids[3], as: .event)
        #expect(try await store.check(Check(canary: ids[3], gate: .rollout, checksum: "c1")).isApproved == false)
        await #expect(throws: StoreError.self) {
            _ = try await store.check(Check(canary: ids[4], gate: .rollout, checksum: "c1"))
        }
        // A canary acted on no longer counts: room for one more that only asks.
        _ = try await store.open(.rollout, of: ids[0], OpenRequest(), actor: "alice")
        #expect(try await store.check(Check(canary: ids[0], gate: .rollout, checksum: "c1")).isApproved)
        _ = try await store.check(Check(canary: ids[4], gate: .rollout, checksum: "c1"))
        #expect(try await store.canaries().map(\.id.name) == ["a", "b", "c", "d", "e"])
        #expect(store.isHealthy)
    }

    @Test("a write the schema refuses fails that request alone; storage stays available", arguments: Backend.available)
    func refusedWriteFailsAlone(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        // A canary name the schema's own checks cannot hold is impossible through the API, so break a
        // row directly: a negative step count violates the gate table's CHECK.
        let broken = Gate(kind: .traffic, isOpen: true, mode: .once, remainingSteps: -1)
        await #expect(throws: StoreError.self) {
            _ = try await store.change(.traffic, of: fixture.podinfo, at: Date()) { gate, _ in
                gate = broken
                return [GateFact(action: .opened, actor: "test")]
            }
        }
        #expect(store.isHealthy)
        _ = try await store.open(.promotion, of: fixture.podinfo, OpenRequest(), actor: "alice")
        #expect(try #require(try await store.canary(fixture.podinfo)).gate(.promotion).isOpen)
    }

    @Test(
        "a gate a rollout's end leaves as if never touched keeps no row; a restart loads the gates memory held",
        arguments: Backend.available)
    func untouchedGatesKeepNoRow(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        let trafficRows = "SELECT COUNT(*) AS count FROM gate WHERE kind = 'traffic'"
        _ = try await store.open(.rollout, of: fixture.podinfo, OpenRequest(), actor: "alice")
        #expect(try await fixture.check(.rollout, "c1", phase: .initialized).isApproved)
        try await store.report(
            FlaggerPayload(
                name: "podinfo", namespace: "test", phase: .progressing, checksum: "c1",
                metadata: ["eventMessage": "Advance podinfo.test canary weight 10", "eventType": "Normal"]),
            of: fixture.podinfo, as: .event)
        #expect(try await !fixture.check(.traffic, "c1").isApproved)
        #expect(try await fixture.count(trafficRows) == 1)
        try await store.report(
            FlaggerPayload(name: "podinfo", namespace: "test", phase: .succeeded, checksum: "c1"), of: fixture.podinfo,
            as: .postRollout)
        let held = try #require(try await store.canary(fixture.podinfo))
        #expect(held.gate(.traffic) == .closed(.traffic) && held.gates[.traffic] == nil)
        #expect(try await fixture.count(trafficRows) == 0)
        try await store.saveObservations()
        // The same gates as memory held (dates are stored to the millisecond, so not the whole canary).
        let loaded = try #require(try await fixture.reopen().canary(fixture.podinfo))
        #expect(loaded.gates.keys == [.rollout] && loaded.gates.keys == held.gates.keys)
        #expect(loaded.gate(.rollout).reason == held.gate(.rollout).reason)
        #expect(loaded.lastMessage == "Advance podinfo.test canary weight 10")
    }

    @Test("repeated identical events are recorded once", arguments: Backend.available)
    func eventsDeduplicated(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        let payload = FlaggerPayload(
            name: "podinfo", namespace: "test", phase: .waiting, checksum: "c0",
            metadata: ["eventMessage": "Halt podinfo.test advancement waiting for approval", "eventType": "Warning"])
        for _ in 0..<10 { try await store.report(payload, of: fixture.podinfo, as: .event) }
        #expect(try await fixture.count("SELECT COUNT(*) AS count FROM audit") == 1)
    }

    @Test("due gates expire in the background and the expiry is recorded", arguments: Backend.available)
    func expiry(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        let now = Date()
        _ = try await store.open(
            .rollout, of: fixture.podinfo, OpenRequest(expiresAt: now.addingTimeInterval(10)), actor: "alice")
        #expect(try await store.expireDueGates(at: now.addingTimeInterval(5)) == 0)
        #expect(try await store.expireDueGates(at: now.addingTimeInterval(11)) == 1)
        #expect(try await fixture.reopen().canary(fixture.podinfo)?.gate(.rollout).isOpen == false)
        let actions = try await store.events(of: fixture.podinfo, limit: 10).map(\.action)
        #expect(actions == [.expired, .opened])
    }

    @Test("freezes are durable and lifted once", arguments: Backend.available)
    func freezes(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        let freeze = try await store.freeze(
            Area(cluster: nil, namespace: "test"), reason: "black friday", endsAt: nil, actor: "bob")
        #expect(try await fixture.reopen().freezes().map(\.id) == [freeze.id])
        _ = try await store.open(.rollout, of: fixture.podinfo, OpenRequest(isSticky: true), actor: "alice")
        #expect(try await !fixture.check(.rollout, "c1").isApproved)
        _ = try await store.unfreeze(id: freeze.id, actor: "bob")
        #expect(try await fixture.check(.rollout, "c1").isApproved)
        await #expect(throws: StoreError.conflict("freeze \(freeze.id) has already ended")) {
            try await store.unfreeze(id: freeze.id, actor: "bob")
        }
        await #expect(throws: StoreError.notFound("there is no freeze 99")) {
            try await store.unfreeze(id: 99, actor: "bob")
        }
        #expect(try await fixture.reopen().freezes().isEmpty)
    }

    @Test("observations are saved in the background and survive a restart", arguments: Backend.available)
    func observations(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        _ = try await fixture.check(.rollout, "c0", phase: .waiting)
        _ = try await fixture.check(.rollout, "c0", phase: .waiting)
        try await store.saveObservations()
        let canary = try #require(try await fixture.reopen().canary(fixture.podinfo))
        #expect(canary.lastPhase == .waiting)
        #expect(canary.lastChecksum == "c0")
        #expect(canary.lastSeen != nil)
        #expect(canary.waitingOn?.gate == .rollout)
    }

    @Test(
        "the same namespace and name in two clusters are two canaries: gates, freezes, events, forgetting",
        arguments: Backend.available)
    func clusters(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        let eu = try CanaryID(cluster: "eu-1", namespace: "test", name: "podinfo")
        let us = try CanaryID(cluster: "us-1", namespace: "test", name: "podinfo")
        _ = try await store.open(.promotion, of: eu, OpenRequest(reason: "eu ok", isSticky: true), actor: "alice")
        _ = try await store.open(.promotion, of: us, OpenRequest(reason: "us ok", isSticky: true), actor: "bob")
        for id in [eu, us, fixture.podinfo] {
            _ = try await store.check(Check(canary: id, gate: .promotion, checksum: "c1"))
        }
        let reopened = try await fixture.reopen()
        #expect(try await reopened.canaries().map(\.id) == [fixture.podinfo, eu, us])
        #expect(try await reopened.check(Check(canary: eu, gate: .promotion, checksum: "c1")).isApproved)
        #expect(try await !reopened.check(Check(canary: fixture.podinfo, gate: .promotion, checksum: "c1")).isApproved)
        _ = try await store.close(.promotion, of: us, reason: "stop", actor: "bob")
        #expect(try await reopened.canary(eu)?.gate(.promotion).isOpen == true)

        let freeze = try await store.freeze(
            Area(cluster: "eu-1", namespace: nil), reason: "upgrade", endsAt: nil, actor: "ops")
        #expect(try await fixture.reopen().freezes().map(\.cluster) == ["eu-1"])
        let held = try await fixture.reopen().check(Check(canary: eu, gate: .promotion, checksum: "c1"))
        #expect(!held.isApproved && held.message.contains("of cluster eu-1 are frozen"))
        _ = try await store.unfreeze(id: freeze.id, actor: "ops")

        #expect(try await store.events(of: eu, limit: 10).map(\.reason).contains("eu ok"))
        #expect(try await !store.events(of: eu, limit: 10).map(\.reason).contains("us ok"))
        #expect(
            try await store.events(in: Area(cluster: "us-1", namespace: nil), limit: 10).allSatisfy {
                $0.cluster == "us-1"
            })
        #expect(try await store.events(of: fixture.podinfo, limit: 10).allSatisfy { $0.cluster == nil })

        // Only the unnamed cluster's podinfo was never acted on: forgetting it leaves the others whole.
        #expect(try await store.forgetUntouchedCanaries(notSeenSince: Date().addingTimeInterval(60)) == 1)
        #expect(try await fixture.reopen().canaries().map(\.id) == [eu, us])
        #expect(try await store.events(of: eu, limit: 10).count == 3)
    }

    @Test("audit pages go newest first and old entries are pruned", arguments: Backend.available)
    func auditPaging(backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let store = fixture.store
        for index in 0..<5 {
            _ = try await store.open(.rollout, of: fixture.podinfo, OpenRequest(reason: "r\(index)"), actor: "alice")
        }
        let first = try await store.events(of: fixture.podinfo, limit: 2)
        #expect(first.map(\.reason) == ["r4", "r3"])
        let second = try await store.events(of: fixture.podinfo, limit: 2, before: first.last?.id)
        #expect(second.map(\.reason) == ["r2", "r1"])
        #expect(try await store.pruneAudit(olderThan: Date().addingTimeInterval(1)) == 5)
        #expect(try await store.events(limit: 10).isEmpty)
    }
}

@Suite("Copying an installation into another database", .timeLimit(.minutes(3)))
struct CopyTests {
    @Test(
        "everything a SQLite installation holds arrives whole, ids kept; a target holding anything is refused",
        arguments: Backend.available)
    func copiesEverything(into backend: Backend) async throws {
        let source = try TemporaryDatabase()
        let old = try source.openStore()
        let eu = try CanaryID(cluster: "eu-1", namespace: "test", name: "podinfo")
        let podinfo = try CanaryID(namespace: "test", name: "podinfo")
        _ = try await old.open(.promotion, of: podinfo, OpenRequest(reason: "ship", isSticky: true), actor: "alice")
        var steps = OpenRequest(reason: "three")
        steps.cover(.count(3))
        _ = try await old.open(.traffic, of: eu, steps, actor: "bob")
        _ = try await old.check(Check(canary: eu, gate: .traffic, checksum: "c1"))
        let lifted = try await old.freeze(.everywhere, reason: "done", endsAt: nil, actor: "ops")
        _ = try await old.unfreeze(id: lifted.id, actor: "ops")
        _ = try await old.freeze(Area(cluster: "eu-1", namespace: nil), reason: "upgrade", endsAt: nil, actor: "ops")

        let target = try await StoreFixture(backend)
        let copied = try await old.copyEverything(to: target.store)
        #expect(copied.canaries == 2 && copied.gates == 2 && copied.freezes == 2 && copied.auditEntries > 0)
        let reopened = try await target.reopen()
        let stored = try source.openStore()
        #expect(try await reopened.canaries() == (try await stored.canaries()))
        #expect(try await reopened.freezes(includingEnded: true) == (try await stored.freezes(includingEnded: true)))
        #expect(try await reopened.events(limit: 500) == (try await stored.events(limit: 500)))
        #expect(try await reopened.canary(eu)?.gate(.traffic).remainingSteps == 2)
        #expect(try await !reopened.check(Check(canary: eu, gate: .traffic, checksum: "c1")).isApproved)

        // New rows continue after the copied ids.
        let next = try await reopened.freeze(.everywhere, reason: "new", endsAt: nil, actor: "ops")
        #expect(next.id == 3)

        let before = try await reopened.events(limit: 500)
        await #expect(throws: StoreError.self) { _ = try await old.copyEverything(to: reopened) }
        #expect(try await reopened.events(limit: 500) == before)
    }
}

@Suite("Dates in the database", .timeLimit(.minutes(3)))
struct StoredDateTests {
    @Test("dates are written exactly as GRDB writes them, and read back by GRDB")
    func sameAsGRDB() throws {
        var random = SystemRandomNumberGenerator()
        let edges: [TimeInterval] = [0, 0.999, 1.0005, 946_684_799.999, 1_700_000_000, 4_102_444_800.5]
        let dates =
            edges.map(Date.init(timeIntervalSince1970:))
            + (0..<2_000).map { _ in Date(timeIntervalSince1970: .random(in: 0..<4_102_444_800, using: &random)) }
        for date in dates {
            let grdb = String.fromDatabaseValue(date.databaseValue)
            #expect(date.storedText == grdb, "\(date.timeIntervalSince1970)")
            let read = try #require(Date(storedText: date.storedText))
            let grdbRead = try #require(Date.fromDatabaseValue(date.storedText.databaseValue))
            #expect(abs(read.timeIntervalSince(grdbRead)) < 0.000_001)
            #expect(abs(read.timeIntervalSince(date)) < 0.000_501, "rounded to the nearest millisecond")
        }
        // Any year a stored text can hold, days past a month's end included, as the C library counts them.
        for _ in 0..<5_000 {
            let (year, month, day) = (Int.random(in: 1...9999), Int.random(in: 1...12), Int.random(in: 1...31))
            var parts = tm()
            (parts.tm_year, parts.tm_mon, parts.tm_mday) = (Int32(year - 1900), Int32(month - 1), Int32(day))
            #expect(
                Date.daysSince1970(year: year, month: month, day: day) * 86_400 == timegm(&parts),
                "\(year)-\(month)-\(day)")
        }
        for other in ["2026-11-22", "2026-13-01 00:00:00.000", "2026-11-22T10:00:00.000", "2026-11-22 10:00:00"] {
            #expect(Date(storedText: other) == nil, "\(other) is left to GRDB")
        }
    }

    @Test("rows read from SQLite give each value as its column's type; dates in any form GRDB reads")
    func rowsReadBack() throws {
        let file = try TemporaryDatabase()
        let rows = try file.otherConnection().write { db in
            try db.execute(
                sql: """
                    CREATE TABLE t (n INTEGER, text TEXT, at DATETIME, body BLOB, flag BOOLEAN);
                    INSERT INTO t VALUES (1, 'réglé ✓', '2026-11-22 10:00:00.250', x'00ff10', 1);
                    INSERT INTO t VALUES (2, '', '2026-11-22T10:00:00', x'', 0);
                    INSERT INTO t VALUES (3, NULL, 1700000000, NULL, NULL);
                    INSERT INTO t VALUES (4, 'x', 1700000000.5, NULL, NULL);
                    """)
            return try db.rows(SQL("SELECT * FROM t ORDER BY n"))
        }
        #expect(rows.count == 4)
        #expect(try rows.map { try $0.integer("n") } == [1, 2, 3, 4])
        #expect(try rows.map { try $0.value("text", as: .text) } == [.text("réglé ✓"), .text(""), .null, .text("x")])
        #expect(
            try rows.map { try $0.value("at", as: .date) } == [
                .date(Date(timeIntervalSince1970: 1_795_341_600.25)), .date(Date(timeIntervalSince1970: 1_795_341_600)),
                .date(Date(timeIntervalSince1970: 1_700_000_000)), .date(Date(timeIntervalSince1970: 1_700_000_000.5)),
            ])
        #expect(try rows[0].value("body", as: .blob) == .blob(Data([0, 255, 16])))
        #expect(try rows[1].value("body", as: .blob) == .blob(Data()))
        #expect(try rows.map { try $0.value("flag", as: .boolean) } == [.boolean(true), .boolean(false), .null, .null])
        #expect(try rows[0].value("missing", as: .text) == .null)
        #expect(throws: UnreadableRow.self) { try rows[0].value("text", as: .integer) }
        #expect(throws: UnreadableRow.self) { try rows[0].value("text", as: .date) }
    }
}

/// Two stores on one PostgreSQL database, as two replicas of the service are.
@Suite("Replicas sharing PostgreSQL", .timeLimit(.minutes(3)), .enabled(if: Backend.postgresURL != nil))
struct ReplicaTests {
    @Test("a gate closed through one replica is closed for the next check on the other")
    func closeIsSeenAtOnce() async throws {
        let fixture = try await StoreFixture(.postgres)
        let (a, b) = (fixture.store, try await fixture.reopen())
        _ = try await a.open(.promotion, of: fixture.podinfo, OpenRequest(isSticky: true), actor: "alice")
        let check = Check(canary: fixture.podinfo, gate: .promotion, checksum: "c1")
        #expect(try await b.check(check).isApproved)
        _ = try await a.close(.promotion, of: fixture.podinfo, reason: "stop", actor: "alice")
        #expect(try await !b.check(check).isApproved)
    }

    @Test("approved steps are used exactly once across replicas")
    func stepsAcrossReplicas() async throws {
        let fixture = try await StoreFixture(.postgres)
        let replicas = [fixture.store, try await fixture.reopen()]
        _ = try await replicas[0].open(.traffic, of: fixture.podinfo, OpenRequest(steps: 5), actor: "alice")
        let check = Check(canary: fixture.podinfo, gate: .traffic, checksum: "c1")
        let approvals = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<60 { group.addTask { try await replicas[index % 2].check(check).isApproved } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(approvals == 5)
        #expect(try await fixture.count("SELECT COUNT(*) AS count FROM audit WHERE action = 'consumed'") == 5)
    }

    @Test(
        "each message is claimed by one replica; when its holder dies mid-delivery, another delivers it once the lease ends"
    )
    func deliveryTakenOver() async throws {
        let fixture = try await StoreFixture(.postgres)
        let (a, b) = (fixture.store, try await fixture.reopen())
        let now = Date()
        try await a.run(
            (0..<10).map { index in
                SQL(
                    """
                    INSERT INTO outbox (key, target, url, contentType, body, createdAt, nextAttemptAt, giveUpAt)
                    VALUES (?, 'webhook', 'http://127.0.0.1:1/hook', 'application/json', ?, ?, ?, ?)
                    """,
                    [
                        .text("message-\(index)"), .blob(Data("{}".utf8)), .date(now), .date(now),
                        .date(now.addingTimeInterval(3600)),
                    ])
            })
        async let claimedByA = a.dueNotifications(at: now, limit: 20, lease: 60)
        async let claimedByB = b.dueNotifications(at: now, limit: 20, lease: 60)
        let (held, delivering) = (try await claimedByA.map(\.id), try await claimedByB.map(\.id))
        #expect(Set(held).isDisjoint(with: delivering) && held.count + delivering.count == 10)
        for id in delivering { try await b.markDelivered(id, at: now) }

        // A dies holding its claims: nobody else touches them until the lease ends, then one replica does.
        #expect(try await b.dueNotifications(at: now.addingTimeInterval(30), lease: 60).isEmpty)
        let takenOver = try await b.dueNotifications(at: now.addingTimeInterval(61), lease: 60).map(\.id)
        #expect(Set(takenOver) == Set(held))
        for id in takenOver { try await b.markDelivered(id, at: now.addingTimeInterval(61)) }
        #expect(try await b.dueNotifications(at: now.addingTimeInterval(600), lease: 60).isEmpty)
        #expect(try await fixture.count("SELECT COUNT(*) AS count FROM outbox WHERE deliveredAt IS NOT NULL") == 10)
    }

    @Test(
        "every change acknowledged through one replica is seen by the next check on the other: thousands, at random, from many callers at once"
    )
    func acknowledgedChangesAreSeenEverywhere() async throws {
        let fixture = try await StoreFixture(.postgres)
        let replicas = [fixture.store, try await fixture.reopen()]
        // Each caller owns a canary and, 150 times, opens or closes its promotion gate through one
        // replica (chosen at random) and, once that is acknowledged, checks through the other. Eight
        // callers at once keep each replica catching up while others' changes land.
        let stale = try await withThrowingTaskGroup(of: [String].self) { group in
            for caller in 0..<8 {
                group.addTask {
                    var random = UInt64(caller) + 1  // a linear congruential sequence: the same run every time
                    let id = try CanaryID(namespace: "linear", name: "app-\(caller)")
                    var stale: [String] = []
                    for step in 0..<150 {
                        random = random &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                        let through = Int(random >> 63)
                        let open = (random >> 62) & 1 == 0
                        if open {
                            _ = try await replicas[through].open(
                                .promotion, of: id, OpenRequest(isSticky: true), actor: "alice")
                        } else {
                            _ = try await replicas[through].close(.promotion, of: id, reason: nil, actor: "alice")
                        }
                        let check = Check(canary: id, gate: .promotion, checksum: "c1")
                        if try await replicas[1 - through].check(check).isApproved != open {
                            stale.append("\(id) step \(step): \(open ? "opened" : "closed") through \(through)")
                        }
                    }
                    return stale
                }
            }
            return try await group.reduce([], +)
        }
        #expect(stale.count == 0, "checks that missed an acknowledged change, the first: \(stale.prefix(5))")
    }

    @Test("a canary forgotten through one replica is forgotten by the other; a replica far behind loads anew")
    func forgettingAcrossReplicas() async throws {
        let fixture = try await StoreFixture(.postgres)
        let (a, b) = (fixture.store, try await fixture.reopen())
        let check = Check(canary: fixture.podinfo, gate: .promotion, checksum: "c1")
        _ = try await b.check(check, at: Date().addingTimeInterval(-3 * 86_400))
        #expect(try await a.canary(fixture.podinfo) != nil)
        #expect(try await a.forgetUntouchedCanaries(notSeenSince: Date().addingTimeInterval(-86_400)) == 1)
        #expect(try await b.canary(fixture.podinfo) == nil)

        // The list of forgotten canaries is kept a day: a replica that missed the pruned part loads everything.
        let c = try await fixture.reopen()
        _ = try await c.check(check, at: Date().addingTimeInterval(-3 * 86_400))
        try await a.run([SQL("UPDATE storeVersion SET forgottenThrough = version + 1000")])
        _ = try await a.open(.rollout, of: fixture.podinfo, OpenRequest(isSticky: true), actor: "alice")
        try await a.run([SQL("DELETE FROM gate"), SQL("DELETE FROM canary")])
        try await a.run([SQL("UPDATE storeVersion SET version = version + 2000, forgottenThrough = version + 2000")])
        #expect(try await c.canary(fixture.podinfo) == nil)
    }

    @Test("a freeze set through one replica stops checks on the other, and its lifting frees them")
    func freezeAcrossReplicas() async throws {
        let fixture = try await StoreFixture(.postgres)
        let (a, b) = (fixture.store, try await fixture.reopen())
        _ = try await b.open(.rollout, of: fixture.podinfo, OpenRequest(isSticky: true), actor: "alice")
        let check = Check(canary: fixture.podinfo, gate: .rollout, checksum: "c1")
        let freeze = try await a.freeze(
            Area(cluster: nil, namespace: "test"), reason: "incident", endsAt: nil, actor: "bob")
        #expect(try await !b.check(check).isApproved)
        _ = try await a.unfreeze(id: freeze.id, actor: "bob")
        #expect(try await b.check(check).isApproved)
    }
}

@Suite("Rounds shared by their callers")
struct SharedRoundsTests {
    @Test("a round is every waiting caller's: it does not run as the one who started it (whose request may leave)")
    func roundIsNobodysRequest() async throws {
        let rounds = SharedRounds()
        let seen = Mutex<[Bool]>([])
        rounds.round = { seen.withLock { $0.append(Presence.current != nil) } }
        let gone = Presence { false }
        try await Presence.$current.withValue(gone) { try await rounds.join() }
        try await rounds.join()
        #expect(seen.withLock { $0 } == [false, false])
    }
}
