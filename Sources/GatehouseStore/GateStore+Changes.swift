import Foundation
import GRDB
import GatehouseCore
import Logging
import Synchronization

// What people change: gates (through `change`, one transaction each) and freezes.
extension GateStore {

    /// Opens a gate on the terms asked. `groups` are the groups of the person opening it, for
    /// rules whose approvers name a group (`group:NAME`).
    /// `token`, when given, is used in the same transaction: the change fails (`gone`) if it was used.
    public func open(
        _ kind: GateKind, of id: CanaryID, _ request: OpenRequest, actor: String, groups: [String] = [],
        token: SingleUse? = nil, at now: Date = Date()
    ) async throws -> Canary {
        let policy = policy()
        return try await change(kind, of: id, at: now, token: token) { gate, canary in
            try Self.requireApprover(actor, groups: groups, of: kind, canary, under: policy, at: now)
            // Like every once-approval, "the rest of the rollout" belongs to the rollout that can still
            // ask the gate and ends with it (Canary.endRollout): it is never bound ahead of a check.
            return gate.open(request, actor: actor, at: now)
        }
    }

    /// Refuses an approval a rule would not count: from anything but a person (a shared token, a
    /// workload, an approval link), from someone outside its approvers (by name or group), or from
    /// whoever requested the release. Eligibility is judged here, when the approval is given.
    public static func requireApprover(
        _ actor: String, groups: [String], of gate: GateKind, _ canary: Canary, under policy: Policy, at now: Date
    )
        throws
    {
        let guards = canary.guards(gate, in: Surroundings(policy: policy), at: now)
        guard let rule = guards.approvals else { return }
        guard Principal.isPerson(actor: actor) else {
            throw StoreError.forbidden(
                "\(actor) is not a person, and rule \(rule.rule) counts approvals from distinct people on the \(gate.rawValue) gate of \(canary.id): approve as yourself (signed in, or with a personal token)"
            )
        }
        if let from = rule.from, !Principal(.person, actor, groups: groups).isNamed(in: from) {
            throw StoreError.forbidden(
                "\(actor) is not one of the approvers of the \(gate.rawValue) gate of \(canary.id) (rule \(rule.rule): \(from.joined(separator: ", ")))"
            )
        }
        if guards.requesters.contains(actor) {
            throw StoreError.forbidden(
                "\(actor) requested this release of \(canary.id), so cannot approve it (rule \(rule.rule) counts approvals from others)"
            )
        }
    }

    /// Records who asks for the release in progress (or the next) to be approved: they may then not
    /// approve it themselves where a rule counts approvals. Belongs to the rollout, like a once-gate.
    public func requestApproval(of id: CanaryID, reason: String?, actor: String, at now: Date = Date())
        async throws -> Canary
    {
        try await changing(id, at: now) { stored, _ in
            var canary = stored
            guard !canary.requestedBy.contains(actor) else { return CanaryUpdate(value: canary) }
            canary.requestedBy.append(actor)
            canary.requestedAt = canary.requestedAt ?? now
            var change = CanaryChange()
            change.append(
                [GateFact(action: .requested, actor: actor, reason: reason ?? "asked for this release to be approved")],
                gate: nil)
            return CanaryUpdate(value: canary, saved: canary, change: change)
        }
    }

    /// Lifts one policy rule for a canary's rollout, until `expiresAt` or the rollout's end; only
    /// someone the rule names as an overrider may, with a reason. Audited.
    public func override(
        rule name: String, of id: CanaryID, reason: String, expiresAt: Date, actor: String, groups: [String] = [],
        at now: Date = Date()
    ) async throws -> Canary {
        let policy = policy()
        guard let rule = policy.rule(named: name) else {
            let known = policy.rules.map(\.name)
            throw StoreError.notFound(
                "there is no rule \(name) in the policy\(known.isEmpty ? " (no policy file is in force)" : "; its rules are \(known.joined(separator: ", "))")"
            )
        }
        guard Principal.isPerson(actor: actor), Principal(.person, actor, groups: groups).isNamed(in: rule.overriders)
        else {
            throw StoreError.forbidden(
                rule.overriders.isEmpty
                    ? "rule \(name) names nobody who may override it (overrideBy)"
                    : "\(actor) may not override rule \(name); \(rule.overriders.joined(separator: ", ")) may")
        }
        return try await changing(id, at: now) { stored, _ in
            guard rule.selector.selects(id, labels: stored.labels) else {
                throw StoreError.conflict("rule \(name) does not apply to \(id), so there is nothing to override")
            }
            var canary = stored
            canary.overrides.removeAll { $0.rule == name || $0.expiresAt <= now }
            canary.overrides.append(
                Override(rule: name, actor: actor, reason: reason, at: now, expiresAt: expiresAt))
            var change = CanaryChange()
            change.append(
                [
                    GateFact(
                        action: .overridden, actor: actor,
                        reason:
                            "rule \(name) lifted until \(Timestamp.string(from: expiresAt)) or the rollout's end: \(reason)"
                    )
                ], gate: nil)
            return CanaryUpdate(value: canary, saved: canary, change: change)
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
        of id: CanaryID, reason: String?, expiresAt: Date, force: Bool, actor: String, revision: Revision? = nil,
        token: SingleUse? = nil, at now: Date = Date()
    ) async throws -> Canary {
        try await change(.rollback, of: id, at: now, token: token) { gate, canary in
            if let revision, canary.rollout.currentChecksum != revision {
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

    /// Changes one gate of a canary in one transaction; `body` sees the canary as stored.
    func change(
        _ kind: GateKind, of id: CanaryID, at now: Date, token: SingleUse? = nil,
        _ body: @escaping @Sendable (inout Gate, Canary) throws -> [GateFact]
    ) async throws -> Canary {
        try await changing(id, at: now, token: token) { stored, _ in
            var canary = stored
            var gate = canary.gate(kind)
            let facts = try body(&gate, canary)
            canary.gates[kind] = gate
            guard !facts.isEmpty else { return CanaryUpdate(value: canary) }
            var change = CanaryChange()
            change.append(facts, gate: kind)
            return CanaryUpdate(value: canary, saved: canary, change: change)
        }
    }

    // MARK: Freezes

    /// Sets a freeze on an area: one namespace or every one, of one cluster or of all.
    public func freeze(_ area: Area, reason: String, endsAt: Date?, actor: String, at now: Date = Date())
        async throws -> Freeze
    {
        let set = Freeze(
            id: 0, cluster: area.cluster, namespace: area.namespace, reason: reason, actor: actor, createdAt: now,
            endsAt: endsAt)
        return try await transaction(reads: [Tables.freeze.insertReturningID(set)]) { rows in
            var freeze = set
            freeze.id = try rows[0].first?.integer("id") ?? 0
            let fact = GateFact(action: .freezeSet, actor: actor, reason: freeze.refusal)
            let notable = Notable(kind: .freezeSet, canary: nil, gate: nil, fact: fact, freeze: freeze, at: now)
            let set = freeze
            return Plan(
                value: freeze,
                writes: [Records.audit(at: now, in: area, fact: fact)]
                    + self.enqueueing(notable),
                remember: { $0.put(set, version: $1) })
        }
    }

    /// Lifts a freeze before its end.
    public func unfreeze(id: Int64, actor: String, at now: Date = Date()) async throws -> Freeze {
        try await transaction(reads: [Records.freeze(id: id, locked: true)]) { rows in
            guard var freeze = try rows[0].first.map(Tables.freeze.read) else {
                throw StoreError.notFound("there is no freeze \(id)")
            }
            guard freeze.isActive(at: now) else {
                throw StoreError.conflict("freeze \(id) has already ended")
            }
            freeze.liftedAt = now
            freeze.liftedBy = actor
            let fact = GateFact(action: .freezeLifted, actor: actor, reason: "lifted freeze \(id): \(freeze.reason)")
            let notable = Notable(kind: .freezeLifted, canary: nil, gate: nil, fact: fact, freeze: freeze, at: now)
            let lifted = freeze
            return Plan(
                value: freeze,
                writes: [
                    Tables.freeze.update(freeze),
                    Records.audit(at: now, in: freeze.area, fact: fact),
                ] + self.enqueueing(notable),
                remember: { $0.put(lifted, version: $1) })
        }
    }
}
