import Foundation
import GRDB
import GatehouseCore
import Logging
import Synchronization

// Reads: canaries and freezes in force from memory, the audit trail and freeze history from the database.
extension GateStore {

    /// Every canary Gatehouse knows, in order of cluster, namespace and name (see `canaries(after:…)`
    /// for a page of them).
    public func canaries() async throws -> [Canary] {
        try await current()
        return Array(canaries(memory.withLock { $0.order }.ids(after: nil)))
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
        let (order, active) = memory.withLock { ($0.order, $0.active) }
        let start = CanaryID.lowerBound(of: area)
        let ids: AnySequence<CanaryID>
        if selection == .active {
            let from = [after, start].compactMap { $0 }.max()
            ids = AnySequence(active.filter { id in from.map { id > $0 } ?? true }.sorted())
        } else {
            ids = AnySequence(order.ids(after: after, from: start))
        }
        var page: [Canary] = []
        let wanted = ids.lazy.prefix { !$0.isPast(area) }
            .filter { area.contains($0) && (selection != .idle || !active.contains($0)) }
        for canary in canaries(wanted) where include(canary) {
            guard page.count < limit else { return (page, true) }
            page.append(canary)
        }
        return (page, false)
    }

    /// The canaries waiting, rolling out or with a gate open, in no order: what metrics describe,
    /// found without looking at the idle rest.
    public func activeOrOpenCanaries() async throws -> [Canary] {
        try await current()
        let ids = memory.withLock { $0.active.union($0.open) }
        return Array(canaries(ids))
    }

    /// The canaries `ids` names that memory holds, looked up a few at a time: a reader never holds
    /// the lock checks take for longer than a few lookups, and never holds memory's dictionaries,
    /// which a change would then have to copy whole.
    func canaries(_ ids: some Sequence<CanaryID>) -> some Sequence<Canary> {
        var remaining = ids.makeIterator()
        var batch: [Canary] = []
        var next = 0
        return AnyIterator { () -> Canary? in
            while next == batch.count {
                var wanted: [CanaryID] = []
                while wanted.count < 32, let id = remaining.next() { wanted.append(id) }
                guard !wanted.isEmpty else { return nil }
                batch = self.memory.withLock { memory in wanted.compactMap { memory.canary($0) } }
                next = 0
            }
            defer { next += 1 }
            return batch[next]
        }.lazy
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
        let policy = policy()
        // As written: what was observed since (the last few seconds) is not laid over the peers.
        // Only a policy that looks at other canaries gets them (holding memory's table would make
        // the next change copy it whole).
        let peers = policy.looksAtPeers ? memory.withLock { $0.canaries } : CanaryTable()
        return Surroundings(freezes: freezes, policy: policy, peers: peers)
    }

    /// The guardrails policy in force.
    public var policyInForce: Policy { policy() }
}

extension GateStore {
    /// Whether Flagger (or a client of the loadtester's endpoints) has called about the canary.
    public func hasCalled(_ id: CanaryID) async throws -> Bool {
        try await current()
        return memory.withLock { $0.canary(id)?.lastSeen != nil }
    }

    /// The canaries that have called whose ids are like `id` (`Lookalike`), nearest first, at most
    /// `limit`: what a person who named `id` likely meant. It goes through every id (a few
    /// milliseconds at 100,000), so it is for the rare answer about a canary that never called.
    public func lookalikes(of id: CanaryID, limit: Int = 3) async throws -> [CanaryID] {
        try await current()
        let order = memory.withLock { $0.order }
        let alike = order.ids(after: nil).compactMap { candidate in
            Lookalike.distance(of: candidate, from: id).map { (candidate, $0) }
        }
        let called = Set(canaries(alike.map(\.0)).filter { $0.lastSeen != nil }.map(\.id))
        return alike.filter { called.contains($0.0) }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }.prefix(limit).map(\.0)
    }
}
