import Foundation
import GatehouseCore
import GatehouseStore

/// Opening, closing and rolling back gates, and freezing: each defined once, for every way a
/// person asks — the operator API, the loadtester's endpoints, Slack, approval links and the
/// dashboard. Each channel only says who the caller is (a bearer token's or identity token's grants,
/// a Slack user's and channel's, a signed link's one canary and action, a dashboard session's);
/// here every change is authorized — the namespace filter, the caller's grants for the action in
/// the canary's or freeze's area, and (in the store's transaction) whether a rule counts the caller
/// as an approver — then made, with its audit entry and notifications, and counted the same way.
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
        by caller: Caller, token: SingleUse? = nil, at now: Date = Date()
    ) async throws -> Canary {
        let asker = try accessGuard.authorize(gate == .rollback ? .rollback : .open, in: id.area, caller: caller)
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

    /// Does what a signed approval link says (approve its gate for its rollout, or ask for a rollback
    /// bound to its revision), once: its nonce is spent in the same transaction. `caller` is whoever
    /// acts: the link itself (its one canary and action), or the Slack user who pressed its button.
    func act(on link: ApprovalLink, by caller: Caller) async throws -> Canary {
        let canary = try link.canary()
        let token = SingleUse(nonce: link.nonce, expiresAt: link.expiresAt)
        switch link.action {
        case .approve:
            return try await open(link.gate, of: canary, link.openRequest, by: caller, token: token)
        case .rollback:
            return try await open(
                .rollback, of: canary, OpenRequest(reason: "requested from a notification"),
                rollback: .request(force: false, revision: Revision(link.checksum)), by: caller, token: token)
        }
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

    /// The rule that counts people's approvals of `gate` of `id` now, if one does: a channel that
    /// cannot say which person acts (an approval link) sends them to sign in instead.
    func approvalRule(_ gate: GateKind, of id: CanaryID, at now: Date = Date()) async -> String? {
        guard gate != .rollback, let canary = try? await store.canary(id) else { return nil }
        return canary.guards(gate, in: Surroundings(policy: store.policyInForce), at: now).approvals?.rule
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
    func close(_ gate: GateKind, of id: CanaryID, reason: String?, by caller: Caller) async throws -> Canary {
        let asker = try accessGuard.authorize(.close, in: id.area, caller: caller)
        return try await store.close(gate, of: id, reason: reason, actor: asker.actor)
    }

    /// Asks for a canary's release to be approved.
    /// Asking needs the right to open its gates: it is a step of the release.
    func requestApproval(of id: CanaryID, reason: String?, by caller: Caller) async throws -> Canary {
        let asker = try accessGuard.authorize(.open, in: id.area, caller: caller)
        return try await store.requestApproval(of: id, reason: reason, actor: asker.actor)
    }

    /// Lifts a policy rule for one canary's rollout: needs the right to open its gates, and to be
    /// one of the people the rule names (judged by the store).
    func override(
        rule: String, of id: CanaryID, reason: String, expiresAt: Date, by caller: Caller, at now: Date = Date()
    ) async throws -> Canary {
        let asker = try accessGuard.authorize(.open, in: id.area, caller: caller)
        return try await store.override(
            rule: rule, of: id, reason: reason, expiresAt: expiresAt, actor: asker.actor, groups: asker.groups,
            at: now)
    }

    /// Freezes an area: one namespace, or every one, of one cluster or of all.
    func freeze(_ area: Area, reason: String, endsAt: Date?, by caller: Caller, at now: Date = Date())
        async throws -> Freeze
    {
        let asker = try accessGuard.authorize(.freeze, in: area, caller: caller)
        return try await store.freeze(area, reason: reason, endsAt: endsAt, actor: asker.actor, at: now)
    }

    /// Lifts a freeze; one of a namespace this service does not serve is refused, as setting it would be.
    func unfreeze(id: Int64, by caller: Caller) async throws -> Freeze {
        // A freeze's area never changes, so it is checked before the lift.
        guard let area = try await store.freeze(id: id)?.area else {
            throw GatehouseError.notFound("there is no freeze \(id)")
        }
        let asker = try accessGuard.authorize(.freeze, in: area, caller: caller)
        return try await store.unfreeze(id: id, actor: asker.actor)
    }
}
