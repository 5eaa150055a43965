import Foundation
import GRDB
import GatehouseCore
import Logging
import Synchronization

// Reads: canaries from memory, freezes and the audit trail from the database.
extension GateStore {

    /// Every canary Gatehouse knows, by namespace and name.
    public func canaries(sorted: Bool = true) -> [Canary] {
        // The dictionary is copied on write: taking it under the lock costs nothing, and the list
        // is made outside it, so checks are not held up while many canaries are listed.
        let snapshot = memory.withLock { $0.canaries }
        let canaries = Array(snapshot.values)
        return sorted ? canaries.sorted { $0.id < $1.id } : canaries
    }

    /// One canary, if Gatehouse knows it.
    public func canary(_ id: CanaryID) -> Canary? {
        memory.withLock { $0.canaries[id] }
    }

    /// Audit entries, newest first: of one canary, of one namespace, or of everything; `before` pages back by id.
    public func events(of canary: CanaryID? = nil, namespace: String? = nil, limit: Int, before: Int64? = nil)
        async throws -> [AuditEntry]
    {
        try await read { db in
            try db.fetch(Tables.audit, Records.events(of: canary, namespace: namespace, limit: limit, before: before))
        }
    }

    /// One freeze, in force or not, if it exists.
    public func freeze(id: Int64) async throws -> Freeze? {
        try await read { db in try db.fetch(Tables.freeze, Records.freeze(id: id)).first }
    }

    /// The freezes in force, or every freeze ever set when `includingEnded` is true, newest first.
    public func freezes(includingEnded: Bool = false, at now: Date = Date()) async throws -> [Freeze] {
        if includingEnded {
            return try await read { db in try db.fetch(Tables.freeze, Records.allFreezes) }
        }
        return memory.withLock { $0.freezes.values.filter { $0.isActive(at: now) } }.sorted { $0.id > $1.id }
    }
}
