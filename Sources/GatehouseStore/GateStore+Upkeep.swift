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

    /// What is wrong with storage that only a restart mends, if anything: the database file was
    /// deleted, replaced or made unusable under the running process (SQLite keeps writing to the file
    /// it opened, so nothing is committed until the service opens the file anew).
    public var problemNeedingRestart: String? { engine.knownProblem }

    /// Whether a write has waited longer than a second (or the storage timeout, if shorter).
    var isStalled: Bool { (engine.oldestWait ?? .zero) > stallThreshold }

    var stallThreshold: Duration { min(.seconds(1), engine.timeout) }

    /// Asks storage to commit a write (through the same queue and deadline as every change); the
    /// result decides `isHealthy`.
    @discardableResult
    public func probe(at now: Date = Date()) async -> Bool {
        if let problem = engine.knownProblem {
            health.markFileProblem(problem)
            return false
        }
        do {
            try await run([Records.heartbeat(at: now)])
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
            // Detached: shared by every readiness caller, it is not the first one's to abandon.
            let task = Task.detached { await self.probe() }
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
        try await current()
        let due = memory.withLock { memory in
            memory.expiring.compactMap { memory.canaries[$0] }.flatMap { canary in
                canary.gates.values.filter { $0.isExpired(at: now) }.map { (canary.id, $0.kind) }
            }
        }
        for (id, kind) in due {
            _ = try await change(kind, of: id, at: now) { gate, _ in gate.expireIfDue(at: now) }
        }
        return due.count
    }

    /// Writes what checks observed (last seen, phase, checksum, last progress check) that only
    /// memory holds so far. Where replicas share the database, a row holding a later observation
    /// (another replica's) keeps it, and the other replicas take these in in the background: they
    /// are not changes a check must wait for (see `Records.observations(since:)`).
    public func saveObservations() async throws {
        let now = Date()
        let unsaved = memory.withLock { memory in
            memory.freezes = memory.freezes.filter { $0.value.isActive(at: now) }
            if memory.unsaved.isEmpty { memory.settleObservations() }  // only other replicas' to lay over
            return !memory.unsaved.isEmpty
        }
        guard unsaved else { return }
        try await transaction(reads: [Records.nextObservedVersion]) { rows in
            let observed = try rows[0].first?.integer("observed") ?? 0
            let canaries = self.memory.withLock { memory in
                defer { memory.unsaved.removeAll() }
                return memory.unsaved.compactMap { memory.canary($0) }
            }
            return Plan(
                value: (), writes: Records.saveObservations(canaries, observed: observed),
                remember: { memory, _ in
                    // Its own save: nothing to take in from it (unless another's came between).
                    if observed == memory.observedCaughtUp + 1 { memory.observedCaughtUp = observed }
                    memory.settleObservations()
                })
        }
    }

    /// Deletes audit entries older than `cutoff` in batches, each its own short transaction with a
    /// pause after it, so that changes waiting to be written go between them (a day of a large
    /// installation's entries takes seconds; a retention cut by half, minutes); then gives the space
    /// back to the file system where the engine can (`reclaimSpace`). A batch starts at `batch`
    /// entries and is sized to hold the writer about `hold` (halved when one took longer, doubled
    /// when one took under half of it), and the pause after it is at least as long as it took:
    /// pruning never has more than half of the writer, nor a write waiting long behind it. Returns
    /// how many were deleted.
    @discardableResult
    public func pruneAudit(olderThan cutoff: Date, batch: Int = 100, hold: Duration = .milliseconds(2)) async throws
        -> Int
    {
        var pruned = 0
        var size = batch
        let clock = ContinuousClock()
        while true {
            let began = clock.now
            let deleted = try await transaction(reads: [Records.pruneAudit(olderThan: cutoff, batch: size)]) { rows in
                Plan(value: rows[0].count)
            }
            let took = began.duration(to: clock.now)
            pruned += deleted
            guard deleted == size else { break }
            if took > hold {
                size = max(10, size / 2)
            } else if took * 2 < hold {
                size = min(1000, size * 2)
            }
            // The batch's pages copied into the file before the next (so that no one else's write
            // has to), and a pause that leaves the writer to the changes people and Flagger make.
            await engine.settle()
            try await Task.sleep(for: max(.milliseconds(5), took))
        }
        if pruned > 0 { try await engine.reclaimSpace() }
        return pruned
    }

    /// Forgets canaries nobody acted on (see `Canary.isUntouched`) that Flagger has not called about
    /// since `cutoff`: their rows, gates and audit entries. A real canary waiting for approval calls
    /// every analysis interval and stays. Returns how many were forgotten.
    @discardableResult
    public func forgetUntouchedCanaries(notSeenSince cutoff: Date) async throws -> Int {
        let now = Date()
        try await current()
        // Among those nobody acted on, from a copy, outside the lock; each is decided again, with
        // what was observed since, in the transaction that forgets it.
        let untouched = memory.withLock { $0.untouched }
        let idle = canaries(untouched).filter { $0.isForgettable(notSeenSince: cutoff) }.map(\.id).sorted()
        // Replicas learn of forgotten canaries from a list kept a day; one further behind loads anew.
        try await run(Records.pruneForgotten(olderThan: now.addingTimeInterval(-86_400)))
        var forgotten = 0
        for start in stride(from: 0, to: idle.count, by: 1000) {
            let chunk = Array(idle[start..<min(start + 1000, idle.count)])
            let reads = chunk.flatMap { [Records.canary($0, locked: true), Records.gates(of: $0)] }
            forgotten += try await transaction(reads: reads) { rows in
                var gone: [CanaryID] = []
                for (index, id) in chunk.enumerated() {
                    // Decided again from what is stored: it may have been acted on meanwhile.
                    let inMemory = self.memory.withLock { $0.canaries[id] }
                    let stored = try Records.canaries(rows[2 * index], gates: rows[2 * index + 1]).first
                    guard let canary = self.overlaid(stored, inMemory: inMemory) ?? inMemory,
                        canary.isForgettable(notSeenSince: cutoff)
                    else { continue }
                    gone.append(id)
                }
                let forgotten = gone
                return Plan(
                    value: forgotten.count, writes: forgotten.flatMap { Records.forget($0, at: now) },
                    remember: { memory, version in
                        for id in forgotten { memory.forget(id, version: version) }
                    })
            }
        }
        return forgotten
    }
}
