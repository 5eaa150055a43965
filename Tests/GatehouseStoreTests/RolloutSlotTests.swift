import Foundation
import GRDB
import GatehouseCore
import Testing

@testable import GatehouseStore

@Suite("Rollout slots on SQLite and PostgreSQL", .timeLimit(.minutes(3)))
struct RolloutSlotTests {
    /// Every gate opens by itself; at most `limit` canaries in a rollout at once.
    static func policy(limit: Int) -> Policy {
        Policy(rules: [
            PolicyRule(
                name: "hands-off", gates: [.rollout, .traffic, .promotion], requirement: .automatic(upToWeight: nil)),
            PolicyRule(
                name: "slots", gates: [.rollout], requirement: .concurrency(limit: limit, per: .all, silentAfter: 600)),
        ])
    }

    static func canary(_ name: String) throws -> CanaryID { try CanaryID(namespace: "test", name: name) }

    static func confirmRollout(_ store: GateStore, _ name: String, at now: Date) async throws -> Decision {
        try await store.check(
            Check(canary: try canary(name), gate: .rollout, checksum: "rev0", phase: .succeeded), at: now)
    }

    @Test(
        "a canary not heard from for silentAfter frees its slot: a deleted canary never blocks the queue",
        arguments: Backend.available)
    func silenceFreesSlot(_ backend: Backend) async throws {
        let fixture = try await StoreFixture(backend, policy: Self.policy(limit: 2))
        let start = Date()
        #expect(try await Self.confirmRollout(fixture.store, "a", at: start).isApproved)
        #expect(try await Self.confirmRollout(fixture.store, "b", at: start).isApproved)
        let queued = try await Self.confirmRollout(fixture.store, "c", at: start)
        #expect(queued.cause == .queued)
        #expect(queued.message.hasPrefix("queued: 3rd, behind test/a, test/b (limit 2 in all; rule slots)"))

        // b keeps calling; a was deleted and says nothing more.
        let later = start.addingTimeInterval(300)
        _ = try await fixture.store.check(
            Check(canary: try Self.canary("b"), gate: .traffic, checksum: "rev1", phase: .progressing), at: later)
        #expect(try await Self.confirmRollout(fixture.store, "c", at: later).cause == .queued)
        let silent = start.addingTimeInterval(601)
        _ = try await fixture.store.check(
            Check(canary: try Self.canary("b"), gate: .traffic, checksum: "rev1", phase: .progressing), at: silent)
        let admitted = try await Self.confirmRollout(fixture.store, "c", at: silent)
        #expect(admitted.isApproved, "\(admitted.message)")
        // A fourth waits behind b and c, which are both heard from.
        #expect(try await Self.confirmRollout(fixture.store, "d", at: silent).cause == .queued)
    }

    @Test("a queued canary asking again is answered from memory: nothing is written")
    func queuedChecksAreReadOnly() async throws {
        let fixture = try await StoreFixture(.sqlite, policy: Self.policy(limit: 1))
        let now = Date()
        #expect(try await Self.confirmRollout(fixture.store, "a", at: now).isApproved)
        #expect(try await Self.confirmRollout(fixture.store, "b", at: now).cause == .queued)
        let observer = try #require(fixture.sqlite).otherConnection()
        let before = try await observer.read { try Int.fetchOne($0, sql: "PRAGMA data_version") }
        for _ in 0..<100 { #expect(try await Self.confirmRollout(fixture.store, "b", at: now).cause == .queued) }
        let after = try await observer.read { try Int.fetchOne($0, sql: "PRAGMA data_version") }
        #expect(after == before)
    }

    @Test(
        "canaries asking at once never take more slots than the limit; the queue keeps the order they asked in",
        arguments: Backend.available)
    func concurrentAdmissions(_ backend: Backend) async throws {
        let fixture = try await StoreFixture(backend, policy: Self.policy(limit: 3))
        let now = Date()
        let names = (0..<12).map { "canary-\($0)" }
        let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for name in names {
                group.addTask { try await Self.confirmRollout(fixture.store, name, at: now).isApproved }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admitted == 3)
        // Another replica sees the same: the database, not one process's memory, holds the slots.
        let other = try await fixture.reopen()
        let canaries = try await other.canaries()
        #expect(canaries.filter(\.rollout.isInProgress).count == 3)
        let waiting = canaries.filter { $0.rollout.stage == .waiting }.sorted {
            ($0.rollout.since ?? now, $0.id) < ($1.rollout.since ?? now, $1.id)
        }
        #expect(waiting.count == 9)
        #expect(waiting.allSatisfy { $0.queuedAt != nil })
    }
}
