import Foundation
import GRDB
import GatehouseCore
import Logging
import Synchronization

// Reads: canaries and freezes in force from memory, the audit trail and freeze history from the database.
extension GateStore {

    /// Every canary Gatehouse knows, by namespace and name.
    public func canaries(sorted: Bool = true) async throws -> [Canary] {
        try await current()
        // The dictionaries are copied on write: taking them under the lock costs nothing, and the
        // list is made outside it, so checks are not held up while many canaries are listed.
        let (written, observed) = memory.withLock { ($0.canaries, $0.observed) }
        let canaries = written.values.map { observed[$0.id] ?? $0 }
        return sorted ? canaries.sorted { $0.id < $1.id } : canaries
    }

    /// Which canaries a page is taken from.
    public enum Selection: Sendable {
        case all
        /// Those waiting on a gate or rolling out.
        case active
        /// The others.
        case idle
    }

    /// A page of canaries in order (cluster, namespace, name): those after `after` in `area` and
    /// `selection` that `include` keeps, at most `limit`, and whether more follow. It costs what it
    /// shows (and what `include` turns down), not the number of canaries: the ids are kept in order,
    /// and the active few apart from the idle many.
    public func canaries(
        after: CanaryID?, in area: Area = .everywhere, among selection: Selection = .all, limit: Int,
        where include: (Canary) -> Bool = { _ in true }
    ) async throws -> (canaries: [Canary], more: Bool) {
        try await current()
        let (order, active, written, observed) = memory.withLock { ($0.order, $0.active, $0.canaries, $0.observed) }
        let start = CanaryID.lowerBound(of: area)
        let ids: AnySequence<CanaryID>
        if selection == .active {
            let from = [after, start].compactMap { $0 }.max()
            ids = AnySequence(active.filter { id in from.map { id > $0 } ?? true }.sorted())
        } else {
            ids = AnySequence(order.ids(after: after, from: start))
        }
        var page: [Canary] = []
        for id in ids {
            if id.isPast(area) { break }
            guard area.contains(id), selection != .idle || !active.contains(id),
                let canary = observed[id] ?? written[id], include(canary)
            else { continue }
            guard page.count < limit else { return (page, true) }
            page.append(canary)
        }
        return (page, false)
    }

    /// Calls `body` with every canary, in no order, from memory as it was at the call: the copy costs
    /// nothing (memory is copied on write) and checks are not held while `body` runs.
    public func eachCanary(_ body: (Canary) -> Void) async throws {
        try await current()
        let (written, observed) = memory.withLock { ($0.canaries, $0.observed) }
        for (id, canary) in written { body(observed[id] ?? canary) }
    }

    /// The namespaces that hold a canary, in order.
    public func namespaces() async throws -> [String] {
        try await current()
        return memory.withLock { $0.namespaces }.keys.sorted()
    }

    /// How many canaries Gatehouse knows, and how many of them are waiting or rolling out.
    public func canaryCounts() async throws -> (all: Int, active: Int) {
        try await current()
        return memory.withLock { ($0.order.count, $0.active.count) }
    }

    /// One canary, if Gatehouse knows it.
    public func canary(_ id: CanaryID) async throws -> Canary? {
        try await current()
        return memory.withLock { $0.canary(id) }
    }

    /// Makes memory hold every change committed before the call, failing closed as checks do.
    func current() async throws {
        try requireHealthy()
        try await engine.catchUp()
    }

    /// Audit entries, newest first: of one canary, of an area, or of everything; `before` pages back by id.
    public func events(
        of canary: CanaryID? = nil, in area: Area = .everywhere, matching filter: AuditFilter = AuditFilter(),
        limit: Int, before: Int64? = nil
    ) async throws -> [AuditEntry] {
        try await rows(
            Records.events(of: canary, in: area, matching: filter, limit: limit, before: before), Tables.audit.read)
    }

    /// One freeze, in force or not, if it exists.
    public func freeze(id: Int64) async throws -> Freeze? {
        try await rows(Records.freeze(id: id), Tables.freeze.read).first
    }

    /// The freezes in force, or every freeze ever set when `includingEnded` is true, newest first.
    public func freezes(includingEnded: Bool = false, at now: Date = Date()) async throws -> [Freeze] {
        if includingEnded { return try await rows(Records.allFreezes, Tables.freeze.read) }
        try await current()
        return memory.withLock { $0.freezes.values.filter { $0.isActive(at: now) } }.sorted { $0.id > $1.id }
    }
}

extension GateStore {
    /// What a canary's wait is decided against now, for showing it: the freezes in force, the policy,
    /// and the other canaries.
    public func surroundings(at now: Date = Date()) async throws -> Surroundings {
        let freezes = try await freezes(at: now)
        // As written: what was observed since (the last few seconds) is not laid over the peers.
        let peers = memory.withLock { $0.canaries }
        return Surroundings(freezes: freezes, policy: policy(), peers: peers)
    }

    /// The guardrails policy in force.
    public var policyInForce: Policy { policy() }
}
