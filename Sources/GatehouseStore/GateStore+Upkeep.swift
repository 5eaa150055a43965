import Foundation
import GRDB
import GatehouseCore
import Logging
import Synchronization

// Upkeep: storage health and readiness, expiry, saving observations, pruning, forgetting.
extension GateStore {

    /// Whether storage answered the last time it was asked and no write has waited past the
    /// stall threshold; checks fail closed while storage is marked unavailable.
    public var isHealthy: Bool { health.currentProblem == nil && !isStalled }

    /// Whether a write has waited longer than a second (or the storage timeout, if shorter).
    var isStalled: Bool { (writes.oldestWait ?? .zero) > stallThreshold }

    var stallThreshold: Duration { min(.seconds(1), writes.timeout) }

    /// Asks storage to commit a write (through the same queue and deadline as every change); the
    /// result decides `isHealthy`.
    @discardableResult
    public func probe(at now: Date = Date()) async -> Bool {
        if let problem = file?.problem {
            health.markFileProblem(problem)
            return false
        }
        do {
            try await withWrite { db in
                _ = try db.run(Records.heartbeat(at: now))
            }
            health.markRecovered()
            return true
        } catch {
            return false  // the write queue has already marked storage unavailable or stalled
        }
    }

    /// Whether storage is ready, answered within `limit` whatever storage does: false at once while
    /// a write is stalled, otherwise whether a probe commits in time (one probe at a time).
    public func readiness(within limit: Duration = .milliseconds(800)) async -> Bool {
        if isStalled { return false }
        let probe = probes.withLock { running -> Task<Bool, Never> in
            if let running { return running }
            let task = Task { await self.probe() }
            running = task
            Task {
                _ = await task.value
                self.probes.withLock { $0 = nil }
            }
            return task
        }
        return await Bounded.value(of: probe, within: limit) ?? false
    }

    /// Closes every open gate whose expiry has passed, recording each in the audit trail.
    @discardableResult
    public func expireDueGates(at now: Date = Date()) async throws -> Int {
        let due = memory.withLock { memory in
            memory.canaries.values.flatMap { canary in
                canary.gates.values.filter { $0.isExpired(at: now) }.map { (canary.id, $0.kind) }
            }
        }
        for (id, kind) in due {
            _ = try await change(kind, of: id, at: now) { gate, _ in gate.expireIfDue(at: now) }
        }
        return due.count
    }

    /// Writes what checks observed (last seen, phase, checksum, last progress check) that only memory holds so far.
    public func saveObservations() async throws {
        let now = Date()
        let hasUnsaved = memory.withLock { memory in
            memory.freezes = memory.freezes.filter { $0.value.isActive(at: now) }
            return !memory.unsaved.isEmpty
        }
        guard hasUnsaved else { return }
        try await write { db in
            let canaries = self.memory.withLock { memory in
                defer { memory.unsaved.removeAll() }
                return memory.unsaved.compactMap { memory.canaries[$0] }
            }
            for canary in canaries { try db.run(Records.saveObservations(canary)) }
            return ((), { _ in })
        }
    }

    /// Deletes audit entries older than `cutoff`; returns how many.
    @discardableResult
    public func pruneAudit(olderThan cutoff: Date) async throws -> Int {
        try await withWrite { db in try db.run(Records.pruneAudit(olderThan: cutoff)) }
    }

    /// Forgets canaries nobody acted on (see `Canary.isUntouched`) that Flagger has not called about
    /// since `cutoff`: their rows, gates and audit entries. A real canary waiting for approval calls
    /// every analysis interval and stays. Returns how many were forgotten.
    @discardableResult
    public func forgetUntouchedCanaries(notSeenSince cutoff: Date) async throws -> Int {
        let idle = memory.withLock { memory in
            memory.canaries.values.filter { $0.isForgettable(notSeenSince: cutoff) }.map(\.id)
        }
        var forgotten = 0
        for chunk in stride(from: 0, to: idle.count, by: 1000).map({ idle[$0..<min($0 + 1000, idle.count)] }) {
            forgotten += try await write { db in
                var gone: [CanaryID] = []
                for id in chunk {
                    // Decided again from what is stored: it may have been acted on meanwhile.
                    let canary = try self.stored(id, in: db) ?? self.memory.withLock { $0.canaries[id] }
                    guard let canary, canary.isForgettable(notSeenSince: cutoff) else { continue }
                    for statement in Records.forget(id) { try db.run(statement) }
                    gone.append(id)
                }
                let forgotten = gone
                return (
                    forgotten.count,
                    { memory in
                        for id in forgotten {
                            guard memory.canaries[id]?.isForgettable(notSeenSince: cutoff) == true else { continue }
                            memory.canaries[id] = nil
                            memory.unsaved.remove(id)
                        }
                    }
                )
            }
        }
        return forgotten
    }
}
