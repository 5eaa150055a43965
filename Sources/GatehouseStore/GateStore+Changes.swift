import Foundation
import GRDB
import GatehouseCore
import Logging
import Synchronization

// What people change: gates (through `change`, one transaction each) and freezes.
extension GateStore {

    /// Opens a gate on the terms asked.
    /// `token`, when given, is used in the same transaction: the change fails (`gone`) if it was used.
    public func open(
        _ kind: GateKind, of id: CanaryID, _ request: OpenRequest, actor: String, token: SingleUse? = nil,
        at now: Date = Date()
    ) async throws -> Canary {
        try await change(kind, of: id, at: now, token: token) { gate, canary in
            var request = request
            // "The rest of this rollout": bound to the revision in progress, so it cannot outlive it.
            if request.coversRestOfRollout, request.boundChecksum == nil, canary.rollout.isInProgress {
                request.boundChecksum = canary.rollout.currentChecksum
            }
            return gate.open(request, actor: actor, at: now)
        }
    }

    /// Closes a gate; closing a closed gate changes nothing.
    public func close(_ kind: GateKind, of id: CanaryID, reason: String?, actor: String, at now: Date = Date())
        async throws -> Canary
    {
        try await change(kind, of: id, at: now) { gate, _ in gate.close(actor: actor, reason: reason, at: now) }
    }

    /// Asks Flagger to roll back the canary's current rollout: opens the rollback gate until
    /// `expiresAt`, bound to the revision in progress so that it can never fire on another. Refused
    /// (`conflict`) when no rollback check can come in this rollout any more, unless `force` is set.
    /// `revision`, when given (an approval link names one), must be the revision in progress.
    public func requestRollback(
        of id: CanaryID, reason: String?, expiresAt: Date, force: Bool, actor: String, revision: String? = nil,
        token: SingleUse? = nil, at now: Date = Date()
    ) async throws -> Canary {
        try await change(.rollback, of: id, at: now, token: token) { gate, canary in
            if let revision, !revision.isEmpty, canary.rollout.currentChecksum != revision {
                throw StoreError.conflict(
                    "rollout \(revision) of \(id) is no longer in progress, so it cannot be rolled back")
            }
            switch canary.rollbackBinding(force: force) {
            case .failure(let refusal):
                throw StoreError.conflict(refusal.message)
            case .success(let checksum):
                return gate.open(
                    OpenRequest(reason: reason, expiresAt: expiresAt, boundChecksum: checksum), actor: actor, at: now)
            }
        }
    }

    /// Changes one gate of a canary in a write transaction; `body` sees the canary as stored.
    func change(
        _ kind: GateKind, of id: CanaryID, at now: Date, token: SingleUse? = nil,
        _ body: @escaping @Sendable (inout Gate, Canary) throws -> [GateFact]
    ) async throws -> Canary {
        try await write { db in
            if let token, try !token.use(in: db, at: now) {
                throw StoreError.gone("this link was already used; nothing was done")
            }
            let stored = try self.load(id, in: db)
            var canary = stored
            var gate = canary.gate(kind)
            let facts = try body(&gate, canary)
            canary.gates[kind] = gate
            if !facts.isEmpty {
                var change = CanaryChange()
                change.append(facts, gate: kind)
                try self.save(canary, change, stored: stored, phase: nil, in: db, at: now)
            }
            let changed = canary
            return (changed, { $0.replace(changed) })
        }
    }

    // MARK: Freezes

    /// Sets a freeze on one namespace, or on every namespace when `namespace` is nil.
    public func freeze(namespace: String?, reason: String, endsAt: Date?, actor: String, at now: Date = Date())
        async throws -> Freeze
    {
        try await write { db in
            var inserted = Freeze(
                id: 0, namespace: namespace, reason: reason, actor: actor, createdAt: now, endsAt: endsAt)
            inserted.id = try db.rows(Tables.freeze.insertReturningID(inserted)).first?.integer("id") ?? 0
            let freeze = inserted
            let fact = GateFact(action: .freezeSet, actor: actor, reason: freeze.refusal)
            try self.audit(fact, namespace: namespace, name: nil, gate: nil, phase: nil, in: db, at: now)
            try self.enqueue(
                Notable(kind: .freezeSet, canary: nil, gate: nil, fact: fact, freeze: freeze, at: now), in: db)
            return (freeze, { $0.freezes[freeze.id] = freeze })
        }
    }

    /// Lifts a freeze before its end.
    public func unfreeze(id: Int64, actor: String, at now: Date = Date()) async throws -> Freeze {
        try await write { db in
            guard var lifted = try db.fetch(Tables.freeze, Records.freeze(id: id)).first else {
                throw StoreError.notFound("there is no freeze \(id)")
            }
            guard lifted.isActive(at: now) else {
                throw StoreError.conflict("freeze \(id) has already ended")
            }
            lifted.liftedAt = now
            lifted.liftedBy = actor
            try db.run(Tables.freeze.update(lifted))
            let freeze = lifted
            let fact = GateFact(action: .freezeLifted, actor: actor, reason: "lifted freeze \(id): \(freeze.reason)")
            try self.audit(fact, namespace: freeze.namespace, name: nil, gate: nil, phase: nil, in: db, at: now)
            try self.enqueue(
                Notable(kind: .freezeLifted, canary: nil, gate: nil, fact: fact, freeze: freeze, at: now), in: db)
            return (freeze, { $0.freezes[id] = nil })
        }
    }
}
