import Foundation

/// One check Flagger (or a loadtester-style caller) makes of one gate.
public struct Check: Sendable {
    /// The canary asking.
    public var canary: CanaryID
    /// The gate asked.
    public var gate: GateKind
    /// The revision Flagger sent (none from old Flagger versions).
    public var checksum: Revision?
    /// The canary's phase as Flagger sent it.
    public var phase: CanaryPhase?
    /// The webhook's metadata, which may name the canary's group, team and dependencies.
    public var metadata: [String: String]?

    /// Creates a check.
    public init(
        canary: CanaryID, gate: GateKind, checksum: Revision?, phase: CanaryPhase? = nil,
        metadata: [String: String]? = nil
    ) {
        self.metadata = metadata
        self.canary = canary
        self.gate = gate
        self.checksum = checksum
        self.phase = phase
    }
}

/// The answer to one check, the gate's state after it, and what it changed.
public struct Decision: Sendable, Equatable {
    /// Whether the check passes.
    public var verdict: Verdict
    /// One short sentence for Flagger's events and logs.
    public var message: String
    /// The gate after the check (binding, consumed steps, expiry and the recorded verdict applied).
    public var gate: Gate
    /// The changes of state the check caused, for the audit trail.
    public var facts: [GateFact]
    /// What the verdict rests on.
    public var cause: Cause
    /// The policy rule that holds the gate, when one does.
    public var hold: Hold?

    /// What a verdict rests on: what stops the check, or that the gate is open.
    public enum Cause: String, Sendable, Codable, CaseIterable {
        /// A freeze covers the canary.
        case freeze
        /// A revision reached progress checks without passing the rollout gate.
        case held
        /// The gate is closed.
        case closed
        /// The gate was open and its expiry passed.
        case expired
        /// The gate is open: the check passes.
        case open
        /// Fewer distinct approvals than a rule asks.
        case approvals
        /// Every rollout slot is taken: queued.
        case queued
        /// A dependency has not succeeded yet.
        case dependency
        /// Outside a deploy window.
        case window
        /// A traffic step above a weight ceiling (or of an unknown weight).
        case weight

        /// In a few words, as status lists show it.
        public var summary: String {
            switch self {
            case .freeze: "frozen"
            case .held: "revision not approved"
            case .closed: "gate closed"
            case .expired: "gate expired"
            case .open: "gate open: passes at Flagger's next check"
            case .approvals: "waiting for approvals"
            case .queued: "queued for a rollout slot"
            case .dependency: "waiting for a dependency"
            case .window: "outside its deploy window"
            case .weight: "held at its weight ceiling"
            }
        }

        /// The cause a policy hold gives.
        init(_ kind: Hold.Kind) {
            switch kind {
            case .approvals: self = .approvals
            case .queued: self = .queued
            case .dependency: self = .dependency
            case .window: self = .window
            case .weight: self = .weight
            }
        }
    }

    /// Whether the check passes.
    public var isApproved: Bool { verdict == .approved }

    /// Decides a check against the gate's state, the freeze in force, if any, and what the policy's
    /// rules say (`guards`); pure, so the store can run it first on its in-memory copy and again
    /// inside the write transaction. `holding`, when given, refuses an otherwise open gate with that
    /// sentence (a revision that skipped the rollout gate).
    ///
    /// In order: a freeze, then a rule holding the gate whatever its state (a window, a dependency),
    /// a held revision, a closed gate (unless a rule opens it automatically), too few approvals, and
    /// last the rollout slots, which only a check that would otherwise pass waits for.
    public init(
        for check: Check, gate current: Gate, freeze: Freeze?, holding: String? = nil, guards: Guards = Guards(),
        at now: Date
    ) {
        var gate = current
        var facts = gate.expireIfDue(at: now)
        // A held revision may yet be approved and carry the rollout's approvals over: they stay as they are.
        if holding == nil, gate.isOpen, gate.mode == .once, let bound = gate.boundChecksum,
            bound != Revision.Binding(check.checksum)
        {
            facts += gate.close(
                actor: Gate.systemActor,
                reason: "approved for rollout \(bound), not this one",
                action: .reset, checksum: check.checksum, at: now)
        }
        let policyApplies = check.gate.isPolicyGate
        // An automatic rule opens a gate only where nothing else holds it: not one whose approvals a rule counts.
        let opensAutomatically =
            policyApplies && !gate.isOpen && guards.automatic != nil && guards.approvals == nil
            && Gate.isLeftToRules(by: gate.actor)

        var message: String
        hold = nil
        if let freeze, check.gate.isBlockedByFreeze {
            verdict = .refused
            cause = .freeze
            message = freeze.refusal
        } else if policyApplies, let first = guards.holds.first {
            verdict = .refused
            cause = Cause(first.kind)
            hold = first
            message = first.message
        } else if let holding {
            verdict = .refused
            cause = .held
            message = holding
        } else if !gate.isOpen && !opensAutomatically {
            verdict = .refused
            let expired = facts.contains { $0.action == .expired }
            cause = expired ? .expired : .closed
            message = Decision.closedMessage(for: check, expired: expired)
            if policyApplies, !guards.notes.isEmpty { message += " (\(guards.notes.joined(separator: "; ")))" }
        } else if policyApplies, gate.isOpen, let short = guards.approvalsHold(on: gate, of: check) {
            verdict = .refused
            cause = .approvals
            hold = short
            message = short.message
        } else if policyApplies, let queued = guards.queue {
            verdict = .refused
            cause = .queued
            hold = queued
            message = queued.message
        } else if opensAutomatically {
            verdict = .approved
            cause = .open
            message =
                "\(check.gate.rawValue) gate of \(check.canary) opens automatically (rule \(guards.automatic ?? ""))"
        } else {
            verdict = .approved
            cause = .open
            if gate.mode == .once && gate.boundChecksum == nil {
                gate.boundChecksum = Revision.Binding(check.checksum)
                gate.changedAt = now
                facts.append(
                    GateFact(
                        action: .bound, actor: Gate.systemActor, reason: "bound to this rollout",
                        checksum: check.checksum))
            }
            message = Decision.openMessage(for: check, gate: gate)
            if let steps = gate.remainingSteps {
                let left = steps - 1
                facts.append(
                    GateFact(
                        action: .consumed, actor: Gate.flaggerActor,
                        reason: left == 0 ? "last approved step used" : "\(left) step\(left == 1 ? "" : "s") left",
                        checksum: check.checksum))
                if left > 0 {
                    gate.remainingSteps = left
                } else {
                    facts += gate.close(actor: Gate.systemActor, reason: "all approved steps used", at: now)
                }
            }
        }

        if gate.lastVerdict != verdict || gate.lastVerdictChecksum != check.checksum {
            gate.lastVerdict = verdict
            gate.lastVerdictChecksum = check.checksum
            gate.lastVerdictAt = now
            facts.append(
                GateFact(
                    action: verdict == .approved ? .approved : .refused, actor: Gate.flaggerActor,
                    reason: message, checksum: check.checksum, cause: cause))
        }
        self.message = message
        self.gate = gate
        self.facts = facts
    }

    /// Whether deciding changed anything that must be written before answering.
    public func changes(_ previous: Gate) -> Bool { gate != previous }

    private static func closedMessage(for check: Check, expired: Bool) -> String {
        let canary = check.canary
        if check.gate == .rollback {
            return "no rollback requested for \(canary)"
        }
        let state = expired ? "expired" : "is closed"
        return
            "\(check.gate.rawValue) gate of \(canary) \(state); open it with: gatehouse open \(check.gate.rawValue) \(canary.commandLine)"
    }

    private static func openMessage(for check: Check, gate: Gate) -> String {
        let subject =
            check.gate == .rollback
            ? "rollback of \(check.canary) requested" : "\(check.gate.rawValue) gate of \(check.canary) is open"
        var details = [String]()
        if let actor = gate.actor { details.append("by \(actor)") }
        if let reason = gate.reason, !reason.isEmpty { details.append(reason) }
        let suffix = details.isEmpty ? "" : " (\(details.joined(separator: ": ")))"
        return subject + suffix
    }
}
