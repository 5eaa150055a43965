import Foundation
import GatehouseCore
import GatehouseStore

/// Opening, closing and rolling back gates, and freezing: each defined once, for every way a
/// person asks — the operator API, the loadtester's endpoints, Slack and approval links. Each
/// caller authorizes in its own way first (a bearer token's scopes, a Slack grant, a signed link);
/// here every change meets the namespace filter, is made (with its audit entry and notifications,
/// in the store's transaction, which logs it), and counted the same way.
struct GateOperations: Sendable {
    let store: GateStore
    let settings: GateSettings
    let metrics: GatehouseMetrics
    let accessGuard: AccessGuard

    /// How an open of the rollback gate is read.
    enum RollbackRules {
        /// A rollback request: bound to the rollout in progress, refused when none can be rolled
        /// back (unless forced), expiring after `--rollback-ttl` unless told otherwise.
        case request(force: Bool, revision: Revision?)
        /// flagger-loadtester's `/rollback/open`: a sticky switch, as the loadtester has it.
        case loadtesterSwitch
    }

    /// Opens a gate on the terms asked; opening the rollback gate follows `rollback`. A `token`
    /// (an approval link's) is used in the same transaction as the change.
    func open(
        _ gate: GateKind, of id: CanaryID, _ request: OpenRequest,
        rollback: RollbackRules = .request(
            force: false, revision: nil),
        by asker: Principal, token: SingleUse? = nil, at now: Date = Date()
    ) async throws -> Canary {
        try accessGuard.requireNamespace(id.namespace)
        let canary: Canary
        switch (gate, rollback) {
        case (.rollback, .request(let force, let revision)):
            canary = try await store.requestRollback(
                of: id, reason: request.reason,
                expiresAt: request.expiresAt ?? now.addingTimeInterval(settings.rollbackTTL), force: force,
                actor: asker.actor, revision: revision, token: token, at: now)
        default:
            canary = try await store.open(
                gate, of: id, request, actor: asker.actor, groups: asker.groups, token: token, at: now)
        }
        if gate == .rollback { metrics.recordRollbackRequested() }
        return canary
    }

    /// Where a rule counts approvals of `gate` and `canary` (as an open left it) has too few, the
    /// tally in words ("1 of 2 approvals: alice; waiting for one of: bob, carol"): an approval that
    /// does not yet let Flagger through is never reported as the gate being open. Nil otherwise.
    func approvalsStillNeeded(_ gate: GateKind, of canary: Canary, at now: Date = Date()) -> String? {
        guard gate != .rollback, canary.gate(gate).isEffectivelyOpen(at: now) else { return nil }
        let guards = canary.guards(gate, in: Surroundings(policy: store.policyInForce), at: now)
        return guards.approvalsHold(on: canary.gate(gate), of: Check(canary: canary.id, gate: gate, checksum: nil))?
            .needed
    }

    /// What to tell a person who changed a gate of `id` when no call from Flagger ever named it: a
    /// pre-approval of its first rollout, or far more often a typo or a forgotten namespace. Names
    /// the canaries that have called with ids like it (`GateStore.lookalikes`); nil when it has called.
    func neverCalled(_ id: CanaryID) async -> String? {
        guard (try? await store.hasCalled(id)) == false else { return nil }
        let alike = ((try? await store.lookalikes(of: id)) ?? []).map(\.description)
        let meant =
            alike.isEmpty
            ? ""
            : "; did you mean \(alike.dropLast().joined(separator: ", "))\(alike.count > 1 ? " or " : "")\(alike.last!)?"
        return
            "no canary \(id) has called Gatehouse\(meant) (the change waits for the first rollout of \(id), if it ever has one)"
    }

    /// Closes a gate; closing a closed gate changes nothing.
    func close(_ gate: GateKind, of id: CanaryID, reason: String?, by asker: Principal) async throws -> Canary {
        try accessGuard.requireNamespace(id.namespace)
        return try await store.close(gate, of: id, reason: reason, actor: asker.actor)
    }

    /// Asks for a canary's release to be approved.
    func requestApproval(of id: CanaryID, reason: String?, by asker: Principal) async throws -> Canary {
        try accessGuard.requireNamespace(id.namespace)
        return try await store.requestApproval(of: id, reason: reason, actor: asker.actor)
    }

    /// Lifts a policy rule for one canary's rollout.
    func override(
        rule: String, of id: CanaryID, reason: String, expiresAt: Date, by asker: Principal, at now: Date = Date()
    ) async throws -> Canary {
        try accessGuard.requireNamespace(id.namespace)
        return try await store.override(
            rule: rule, of: id, reason: reason, expiresAt: expiresAt, actor: asker.actor, groups: asker.groups,
            at: now)
    }

    /// Freezes an area: one namespace, or every one, of one cluster or of all.
    func freeze(_ area: Area, reason: String, endsAt: Date?, by asker: Principal, at now: Date = Date())
        async throws -> Freeze
    {
        if let namespace = area.namespace { try accessGuard.requireNamespace(namespace) }
        return try await store.freeze(area, reason: reason, endsAt: endsAt, actor: asker.actor, at: now)
    }

    /// Lifts a freeze; one of a namespace this service does not serve is refused, as setting it would be.
    func unfreeze(id: Int64, by asker: Principal) async throws -> Freeze {
        // A freeze's area never changes, so it is checked before the lift.
        if let namespace = try await store.freeze(id: id)?.namespace { try accessGuard.requireNamespace(namespace) }
        return try await store.unfreeze(id: id, actor: asker.actor)
    }
}
