import Foundation
import GRDB
import GatehouseCore

/// A row of the `canary` table.
struct CanaryRecord: Codable, FetchableRecord, PersistableRecord, StoredRecord {
    static let databaseTableName = "canary"
    var namespace: String
    var name: String
    var lastPhase: String?
    var lastChecksum: String?
    var lastSeen: Date?
    var lastMessage: String?
    var lastEventType: String?
    var rolloutStage: Rollout.Stage
    var rolloutRevision: String?
    var unapprovedRevision: String?
    var lastProgressCheckAt: Date?
    var usesRolloutGate: Bool
    var rolloutSince: Date?

    /// Inserts or replaces the canary's row with a cached statement.
    static func persist(_ canary: Canary, in db: Database) throws {
        try write(
            canary,
            onConflict: """
                lastPhase = excluded.lastPhase, lastChecksum = excluded.lastChecksum, lastSeen = excluded.lastSeen,
                lastMessage = excluded.lastMessage, lastEventType = excluded.lastEventType,
                rolloutStage = excluded.rolloutStage, rolloutRevision = excluded.rolloutRevision,
                unapprovedRevision = excluded.unapprovedRevision, lastProgressCheckAt = excluded.lastProgressCheckAt,
                usesRolloutGate = excluded.usesRolloutGate, rolloutSince = excluded.rolloutSince
                """, in: db)
    }

    /// Writes only what checks observe (last seen, phase, checksum, last progress check) over a
    /// stored row, whose gates and rollout may be newer than this copy; inserts a missing one whole.
    static func persistObservations(_ canary: Canary, in db: Database) throws {
        try write(
            canary,
            onConflict: """
                lastPhase = excluded.lastPhase, lastChecksum = excluded.lastChecksum, lastSeen = excluded.lastSeen,
                lastProgressCheckAt = excluded.lastProgressCheckAt
                """, in: db)
    }

    private static func write(_ canary: Canary, onConflict update: String, in db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO canary (namespace, name, lastPhase, lastChecksum, lastSeen, lastMessage, lastEventType,
                    rolloutStage, rolloutRevision, unapprovedRevision, lastProgressCheckAt, usesRolloutGate,
                    rolloutSince)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (namespace, name) DO UPDATE SET \(update)
                """
        ).execute(arguments: [
            canary.id.namespace, canary.id.name, canary.lastPhase?.rawValue, canary.lastChecksum,
            canary.lastSeen?.storedText, canary.lastMessage, canary.lastEventType, canary.rollout.stage.rawValue,
            canary.rollout.revision, canary.rollout.unapprovedRevision, canary.rollout.lastProgressCheckAt?.storedText,
            canary.rollout.usesRolloutGate, canary.rollout.since?.storedText,
        ])
    }

    /// The stored canary with its gates, if it is stored.
    static func fetch(_ id: CanaryID, in db: Database) throws -> Canary? {
        let statement = try db.cachedStatement(sql: "SELECT * FROM canary WHERE namespace = ? AND name = ?")
        guard let record = try CanaryRecord.fetchOne(statement, arguments: [id.namespace, id.name]) else { return nil }
        let gates = try db.cachedStatement(sql: "SELECT * FROM gate WHERE namespace = ? AND name = ?")
        let stored = try GateRecord.fetchAll(gates, arguments: [id.namespace, id.name])
        return try record.canary(gates: Dictionary(uniqueKeysWithValues: stored.map { ($0.kind, $0.gate) }))
    }

    func canary(gates: [GateKind: Gate]) throws -> Canary {
        var canary = Canary(id: try CanaryID(namespace: namespace, name: name))
        canary.lastPhase = lastPhase.map(CanaryPhase.init(rawValue:))
        canary.lastChecksum = lastChecksum
        canary.lastSeen = lastSeen
        canary.lastMessage = lastMessage
        canary.lastEventType = lastEventType
        canary.rollout = Rollout(
            stage: rolloutStage, revision: rolloutRevision, unapprovedRevision: unapprovedRevision,
            lastProgressCheckAt: lastProgressCheckAt, usesRolloutGate: usesRolloutGate, since: rolloutSince)
        canary.gates = gates
        return canary
    }
}

/// A row of the `gate` table.
struct GateRecord: Codable, FetchableRecord, PersistableRecord, StoredRecord {
    static let databaseTableName = "gate"
    var namespace: String
    var name: String
    var kind: GateKind
    var isOpen: Bool
    var mode: GateMode
    var boundChecksum: String?
    var expiresAt: Date?
    var remainingSteps: Int?
    var actor: String?
    var reason: String?
    var changedAt: Date?
    var openedAt: Date?
    var lastVerdict: Verdict?
    var lastVerdictChecksum: String?
    var lastVerdictAt: Date?

    init(_ gate: Gate, of canary: CanaryID) {
        namespace = canary.namespace
        name = canary.name
        kind = gate.kind
        isOpen = gate.isOpen
        mode = gate.mode
        boundChecksum = gate.boundChecksum
        expiresAt = gate.expiresAt
        remainingSteps = gate.remainingSteps
        actor = gate.actor
        reason = gate.reason
        changedAt = gate.changedAt
        openedAt = gate.openedAt
        lastVerdict = gate.lastVerdict
        lastVerdictChecksum = gate.lastVerdictChecksum
        lastVerdictAt = gate.lastVerdictAt
    }

    var gate: Gate {
        Gate(
            kind: kind, isOpen: isOpen, mode: mode, boundChecksum: boundChecksum, expiresAt: expiresAt,
            remainingSteps: remainingSteps, actor: actor, reason: reason, changedAt: changedAt, openedAt: openedAt,
            lastVerdict: lastVerdict,
            lastVerdictChecksum: lastVerdictChecksum, lastVerdictAt: lastVerdictAt)
    }

    /// The gate's row, read with a cached statement (this runs inside every write of a check).
    static func fetch(_ kind: GateKind, of canary: CanaryID, in db: Database) throws -> Gate {
        let statement = try db.cachedStatement(sql: "SELECT * FROM gate WHERE namespace = ? AND name = ? AND kind = ?")
        return try GateRecord.fetchOne(statement, arguments: [canary.namespace, canary.name, kind.rawValue])?.gate
            ?? .closed(kind)
    }

    /// Inserts or replaces the gate's row with a cached statement.
    static func persist(_ gate: Gate, of canary: CanaryID, in db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO gate (namespace, name, kind, isOpen, mode, boundChecksum, expiresAt, remainingSteps, actor,
                    reason, changedAt, lastVerdict, lastVerdictChecksum, lastVerdictAt, openedAt)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (namespace, name, kind) DO UPDATE SET isOpen = excluded.isOpen, mode = excluded.mode,
                    boundChecksum = excluded.boundChecksum, expiresAt = excluded.expiresAt,
                    remainingSteps = excluded.remainingSteps, actor = excluded.actor, reason = excluded.reason,
                    changedAt = excluded.changedAt, lastVerdict = excluded.lastVerdict,
                    lastVerdictChecksum = excluded.lastVerdictChecksum, lastVerdictAt = excluded.lastVerdictAt,
                    openedAt = excluded.openedAt
                """
        ).execute(arguments: [
            canary.namespace, canary.name, gate.kind.rawValue, gate.isOpen, gate.mode.rawValue, gate.boundChecksum,
            gate.expiresAt?.storedText, gate.remainingSteps, gate.actor, gate.reason, gate.changedAt?.storedText,
            gate.lastVerdict?.rawValue, gate.lastVerdictChecksum, gate.lastVerdictAt?.storedText,
            gate.openedAt?.storedText,
        ])
    }
}

extension GateKind: DatabaseValueConvertible {}
extension Rollout.Stage: DatabaseValueConvertible {}
extension GateMode: DatabaseValueConvertible {}
extension Verdict: DatabaseValueConvertible {}
extension AuditAction: DatabaseValueConvertible {}

/// A row of the `freeze` table.
struct FreezeRecord: Codable, FetchableRecord, MutablePersistableRecord, StoredRecord {
    static let databaseTableName = "freeze"
    var id: Int64?
    var namespace: String?
    var reason: String
    var actor: String
    var createdAt: Date
    var endsAt: Date?
    var liftedAt: Date?
    var liftedBy: String?

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    var freeze: Freeze {
        Freeze(
            id: id ?? 0, namespace: namespace, reason: reason, actor: actor, createdAt: createdAt, endsAt: endsAt,
            liftedAt: liftedAt, liftedBy: liftedBy)
    }
}

/// A row of the `audit` table.
struct AuditRecord: Codable, FetchableRecord, MutablePersistableRecord, StoredRecord {
    static let databaseTableName = "audit"
    var id: Int64?
    var at: Date
    var namespace: String?
    var name: String?
    var gate: GateKind?
    var action: AuditAction
    var actor: String
    var reason: String?
    var checksum: String?
    var phase: String?

    /// Appends an entry with a cached statement.
    static func append(
        at: Date, namespace: String?, name: String?, gate: GateKind?, fact: GateFact, phase: CanaryPhase?,
        in db: Database
    ) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO audit (at, namespace, name, gate, action, actor, reason, checksum, phase)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            at.storedText, namespace, name, gate?.rawValue, fact.action.rawValue, fact.actor, fact.reason,
            fact.checksum.flatMap { $0.isEmpty ? nil : $0 }, phase?.rawValue,
        ])
    }

    var entry: AuditEntry {
        AuditEntry(
            id: id ?? 0, at: at, namespace: namespace, name: name, gate: gate, action: action, actor: actor,
            reason: reason,
            checksum: checksum, phase: phase.map(CanaryPhase.init(rawValue:)))
    }
}
