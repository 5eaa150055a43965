import Foundation
import GatehouseCore
import Hummingbird

/// A canary as the operator API shows it.
struct CanaryView: ResponseEncodable {
    /// What the canary is doing, for filtering and ordering lists.
    enum State: String, Codable, CaseIterable {
        /// Held by a refusal (a closed gate, a freeze, a held revision).
        case waiting
        /// In a rollout, not held.
        case rolling
        /// Neither.
        case idle

        init(of canary: Canary) {
            self = canary.waitingOn != nil ? .waiting : canary.isRollingOut ? .rolling : .idle
        }
    }

    /// The canary's cluster; absent when no cluster is named.
    var cluster: String?
    var namespace: String
    var name: String
    var phase: CanaryPhase?
    var checksum: String?
    var lastSeen: Date?
    var message: String?
    var eventType: String?
    var inRollout: Bool
    var state: State
    var rollout: RolloutView
    var waitingOn: Waiting?
    var gates: [String: GateView]
    /// What the guardrails policy says of the canary; absent when no rule selects it and nothing was asked.
    var policy: PolicyStateView?
    /// What an operator change just did, in one sentence (only in the answer to that change).
    var outcome: String?
    /// A warning about that change: the canary has never called (a likely typo), with the canaries
    /// meant perhaps (`GateOperations.neverCalled`).
    var notice: String?

    /// The view of `canary` at `now`; a wait may be on a freeze or a policy rule of `surroundings`.
    init(_ canary: Canary, surroundings: Surroundings, at now: Date, outcome: String? = nil, notice: String? = nil) {
        cluster = canary.id.cluster.isEmpty ? nil : canary.id.cluster
        namespace = canary.id.namespace
        name = canary.id.name
        phase = canary.lastPhase
        checksum = canary.lastChecksum?.text
        lastSeen = canary.lastSeen
        message = canary.currentMessage
        eventType = message == nil ? nil : canary.lastEventType
        inRollout = canary.isRollingOut
        state = State(of: canary)
        rollout = RolloutView(canary.rollout, lastSucceededAt: canary.succeededAt)
        self.outcome = outcome
        self.notice = notice
        waitingOn = canary.waiting(in: surroundings, at: now)
        // A gate's approval tally depends on the policy alone: the other canaries are not looked at
        // (a list would otherwise scan every canary for each one's rollout slot).
        let policyOnly = Surroundings(policy: surroundings.policy)
        gates = Dictionary(
            uniqueKeysWithValues: GateKind.allCases.map { kind in
                let guards = canary.guards(kind, in: policyOnly, at: now)
                let gate = canary.gate(kind)
                let tally = guards.approvals.map { rule in
                    let isOpen = gate.isEffectivelyOpen(at: now)
                    let counted = isOpen ? guards.countedApprovals(of: gate).count : 0
                    let status =
                        isOpen
                        ? guards.approvalsHold(on: gate, of: Check(canary: canary.id, gate: kind, checksum: nil))?
                            .needed
                            ?? "\(rule.count) of \(rule.count) approvals: \(guards.countedApprovals(of: gate).joined(separator: ", "))"
                        : "0 of \(rule.count) approvals (rule \(rule.rule))"
                    return GateView.Tally(counted: min(counted, rule.count), required: rule.count, status: status)
                }
                return (kind.rawValue, GateView(gate, at: now, tally: tally))
            })
        let state = PolicyStateView(canary, policy: surroundings.policy, at: now)
        policy = state.isEmpty ? nil : state
    }
}

/// What the guardrails policy says of one canary: which rules select it, what its webhooks told of it,
/// who asked for its release to be approved, which rules are lifted, since when it is queued.
struct PolicyStateView: Codable {
    var rules: [String]?
    var labels: CanaryLabels?
    var requestedBy: [String]?
    var overrides: [Override]?
    var queuedSince: Date?
    var dryRuns: [DryRun]?
    var trafficWeight: Int?

    init(_ canary: Canary, policy: Policy, at now: Date) {
        let names = policy.rules(for: canary).map(\.name)
        rules = names.isEmpty ? nil : names
        labels = canary.labels.isEmpty ? nil : canary.labels
        requestedBy = canary.requestedBy.isEmpty ? nil : canary.requestedBy
        let active = canary.overrides.filter { $0.expiresAt > now }
        overrides = active.isEmpty ? nil : active
        queuedSince = canary.queuedAt
        dryRuns = canary.dryRuns.isEmpty ? nil : canary.dryRuns
        trafficWeight = policy.rules(for: canary).contains { $0.requirement.judgesWeight } ? canary.trafficWeight : nil
    }

    var isEmpty: Bool {
        rules == nil && labels == nil && requestedBy == nil && overrides == nil && queuedSince == nil
            && dryRuns == nil && trafficWeight == nil
    }
}

/// Where the canary is in its rollout, as Gatehouse tracks it from Flagger's calls.
struct RolloutView: Codable {
    var stage: Rollout.Stage
    var revision: String?
    var unapprovedRevision: String?
    var since: Date?
    /// Why the canary is held, when a revision skipped the rollout gate.
    var held: String?
    /// When a rollout of the canary last succeeded.
    var lastSucceededAt: Date?

    init(_ rollout: Rollout, lastSucceededAt: Date?) {
        self.lastSucceededAt = lastSucceededAt
        stage = rollout.stage
        revision = rollout.revision?.text
        unapprovedRevision = rollout.unapprovedRevision?.text
        since = rollout.since
        held = rollout.held
    }
}

/// One gate as the operator API shows it; an expired gate shows as closed, and an open one that a
/// rule holds for more approvals as `approving` (Flagger's checks are refused until they come).
struct GateView: Codable {
    enum State: String, Codable { case open, approving, closed }

    /// Where a rule counts approvals of the gate: how many count, how many it needs, and in words.
    struct Tally {
        var counted: Int
        var required: Int
        var status: String
    }

    var state: State
    var mode: GateMode
    var boundChecksum: String?
    var expiresAt: Date?
    var remainingSteps: Int?
    var actor: String?
    var reason: String?
    var changedAt: Date?
    var lastVerdict: Verdict?
    var lastVerdictAt: Date?
    /// Who approved the open gate, each once, in order.
    var approvals: [String]?
    /// Where a rule counts approvals: "1 of 2 approvals: alice; waiting for one of: bob, carol".
    var approvalStatus: String?
    /// Where a rule counts approvals: how many count now, and how many it needs.
    var approvalsCounted: Int?
    var approvalsRequired: Int?

    init(_ gate: Gate, at now: Date, tally: Tally? = nil) {
        approvalStatus = tally?.status
        approvalsCounted = tally?.counted
        approvalsRequired = tally?.required
        let isOpen = gate.isEffectivelyOpen(at: now)
        let short = tally.map { $0.counted < $0.required } ?? false
        state = isOpen ? (short ? .approving : .open) : .closed
        mode = gate.mode
        // A gate used by a call that named no revision (an old Flagger's) shows an empty one.
        boundChecksum = isOpen ? gate.boundChecksum.map { $0.revision?.text ?? "" } : nil
        expiresAt = isOpen ? gate.expiresAt : nil
        remainingSteps = isOpen ? gate.remainingSteps : nil
        actor = gate.actor
        reason = isOpen || !gate.isExpired(at: now) ? gate.reason : "expired"
        changedAt = gate.expiresAt.flatMap { gate.isExpired(at: now) ? $0 : nil } ?? gate.changedAt
        lastVerdict = gate.lastVerdict
        lastVerdictAt = gate.lastVerdictAt
        approvals = isOpen && !gate.approvals.isEmpty ? gate.approvals : nil
    }
}

/// `GET /v1/canaries`: a page; `next` is the `after` value of the following page.
struct CanaryList: ResponseEncodable {
    var canaries: [CanaryView]
    var next: String?
}

/// A page of the audit trail, newest first; `next` is the `before` value of the following page.
struct AuditPage: ResponseEncodable {
    var events: [AuditEntry]
    var next: Int64?
}

/// `GET /v1/freezes`.
struct FreezeList: ResponseEncodable {
    var freezes: [Freeze]
}

extension Freeze: ResponseEncodable {}

/// `GET /v1/version`.
struct ServiceVersionView: ResponseEncodable {
    var version: String
}
