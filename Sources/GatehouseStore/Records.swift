import Foundation
import GRDB
import GatehouseCore

/// A row of the `canary` table.
struct CanaryRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "canary"
    var namespace: String
    var name: String
    var lastPhase: String?
    var lastChecksum: String?
    var lastSeen: Date?
    var lastMessage: String?
    var lastEventType: String?

    init(_ canary: Canary) {
        namespace = canary.id.namespace
        name = canary.id.name
        lastPhase = canary.lastPhase?.rawValue
        lastChecksum = canary.lastChecksum
        lastSeen = canary.lastSeen
        lastMessage = canary.lastMessage
        lastEventType = canary.lastEventType
    }

    func canary(gates: [GateKind: Gate]) throws -> Canary {
        var canary = Canary(id: try CanaryID(namespace: namespace, name: name))
        canary.lastPhase = lastPhase.map(CanaryPhase.init(rawValue:))
        canary.lastChecksum = lastChecksum
        canary.lastSeen = lastSeen
        canary.lastMessage = lastMessage
        canary.lastEventType = lastEventType
        canary.gates = gates
        return canary
    }
}

/// A row of the `gate` table.
struct GateRecord: Codable, FetchableRecord, PersistableRecord {
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
        lastVerdict = gate.lastVerdict
        lastVerdictChecksum = gate.lastVerdictChecksum
        lastVerdictAt = gate.lastVerdictAt
    }

    var gate: Gate {
        Gate(
            kind: kind, isOpen: isOpen, mode: mode, boundChecksum: boundChecksum, expiresAt: expiresAt,
            remainingSteps: remainingSteps, actor: actor, reason: reason, changedAt: changedAt,
            lastVerdict: lastVerdict,
            lastVerdictChecksum: lastVerdictChecksum, lastVerdictAt: lastVerdictAt)
    }

    static func fetch(_ kind: GateKind, of canary: CanaryID, in db: Database) throws -> Gate {
        try GateRecord.fetchOne(db, key: ["namespace": canary.namespace, "name": canary.name, "kind": kind.rawValue])?
            .gate
            ?? .closed(kind)
    }
}

extension GateKind: DatabaseValueConvertible {}
extension GateMode: DatabaseValueConvertible {}
extension Verdict: DatabaseValueConvertible {}
extension AuditAction: DatabaseValueConvertible {}

/// A row of the `freeze` table.
struct FreezeRecord: Codable, FetchableRecord, MutablePersistableRecord {
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
struct AuditRecord: Codable, FetchableRecord, MutablePersistableRecord {
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

    var entry: AuditEntry {
        AuditEntry(
            id: id ?? 0, at: at, namespace: namespace, name: name, gate: gate, action: action, actor: actor,
            reason: reason,
            checksum: checksum, phase: phase.map(CanaryPhase.init(rawValue:)))
    }
}
