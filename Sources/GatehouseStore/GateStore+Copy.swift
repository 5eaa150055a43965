import Foundation
import GatehouseCore

/// What `copyEverything(to:)` copied.
public struct CopiedRecords: Sendable, Equatable, CustomStringConvertible {
    /// Canaries, with their rollout state.
    public var canaries = 0
    /// Gates (a canary's rows; closed gates never touched have none).
    public var gates = 0
    /// Freezes, in force or ended.
    public var freezes = 0
    /// Audit entries.
    public var auditEntries = 0
    /// Notifications not yet delivered, which stay behind.
    public var undeliveredNotifications = 0

    public var description: String {
        var text =
            "copied \(canaries) canaries, \(gates) gates, \(freezes) freezes and \(auditEntries) audit entries"
        if undeliveredNotifications > 0 {
            text += "; \(undeliveredNotifications) undelivered notifications were not copied"
        }
        return text
    }
}

extension GateStore {
    /// Copies this store's canaries, gates, freezes and audit trail into `target`, in one transaction
    /// of the target: all of it or, on any failure, nothing. Ids are kept (a freeze keeps the number
    /// people lift it by). Refuses a target that holds anything already.
    public func copyEverything(to target: GateStore) async throws -> CopiedRecords {
        try await saveObservations()
        let copied = try await transaction(reads: Records.everyCanary + Self.everythingElse) { rows in
            Plan(
                value: (
                    try Records.canaries(rows[0], gates: rows[1]), try rows[2].map(Tables.freeze.read),
                    try rows[3].map(Tables.audit.read), Int(try rows[4].first?.integer("count") ?? 0)
                ))
        }
        let (stored, freezes, audit, undelivered) = copied
        let summary = CopiedRecords(
            canaries: stored.count, gates: stored.reduce(0) { $0 + $1.gates.count }, freezes: freezes.count,
            auditEntries: audit.count, undeliveredNotifications: undelivered)
        var writes: [SQL] = []
        for canary in stored {
            writes.append(Records.save(canary))
            writes += canary.gates.values.map { Records.save($0, of: canary.id) }
        }
        writes += freezes.map { Tables.freeze.upsert($0) } + audit.map { Tables.audit.upsert($0) }
        writes += target.engine.continuingIDs(of: [Tables.freeze.name, Tables.audit.name])
        let holding = SQL(
            #"SELECT (SELECT COUNT(*) FROM canary) + (SELECT COUNT(*) FROM "freeze") + (SELECT COUNT(*) FROM audit) AS count"#
        )
        let planned = writes
        return try await target.transaction(reads: [holding]) { rows in
            let held = try rows[0].first?.integer("count") ?? 0
            guard held == 0 else {
                throw StoreError.conflict(
                    "the target already holds \(held) canaries, freezes and audit entries; copy into an empty database")
            }
            return Plan(value: summary, writes: planned)
        }
    }

    /// Freezes, the audit trail in order, and how many notifications are undelivered.
    private static let everythingElse = [
        Records.allFreezes, SQL("SELECT * FROM audit ORDER BY id"), Outbox.pendingCount,
    ]
}
