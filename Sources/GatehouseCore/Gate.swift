import Foundation

/// One gate of one canary: whether it is open, on what terms, and what it last decided.
public struct Gate: Sendable, Equatable, Codable {
    /// Which of the canary's gates this is.
    public var kind: GateKind
    /// Whether a check of this gate passes (before expiry, binding and freezes are applied).
    public var isOpen: Bool
    /// How long an approval lasts: one rollout, or until closed.
    public var mode: GateMode
    /// The checksum of the rollout a once-gate approved first, if it has approved one.
    public var boundChecksum: Revision.Binding?
    /// When an open gate closes by itself.
    public var expiresAt: Date?
    /// How many more checks an open gate passes before it closes (traffic steps).
    public var remainingSteps: Int?
    /// Who made the last change of state.
    public var actor: String?
    /// Why the last change of state was made.
    public var reason: String?
    /// When the last change of state was made.
    public var changedAt: Date?
    /// When the gate was opened on its present terms (binding and used steps do not change it).
    public var openedAt: Date?
    /// The verdict of the latest check that was recorded (the first of each kind per rollout).
    public var lastVerdict: Verdict?
    /// The checksum of that check.
    public var lastVerdictChecksum: Revision?
    /// When that check was made: for a refusal, since when the canary has been waiting.
    public var lastVerdictAt: Date?
    /// Who has opened the gate since it was last closed, each once, in order: the approvals a rule
    /// that asks for several counts.
    public var approvals: [String] = []

    /// A gate nobody has opened yet.
    public static func closed(_ kind: GateKind) -> Gate {
        Gate(kind: kind, isOpen: false, mode: .once)
    }

    /// Creates a gate with every field given.
    public init(
        kind: GateKind, isOpen: Bool, mode: GateMode, boundChecksum: Revision.Binding? = nil, expiresAt: Date? = nil,
        remainingSteps: Int? = nil, actor: String? = nil, reason: String? = nil, changedAt: Date? = nil,
        openedAt: Date? = nil, lastVerdict: Verdict? = nil, lastVerdictChecksum: Revision? = nil,
        lastVerdictAt: Date? = nil
    ) {
        self.kind = kind
        self.isOpen = isOpen
        self.mode = mode
        self.boundChecksum = boundChecksum
        self.expiresAt = expiresAt
        self.remainingSteps = remainingSteps
        self.actor = actor
        self.reason = reason
        self.changedAt = changedAt
        self.openedAt = openedAt
        self.lastVerdict = lastVerdict
        self.lastVerdictChecksum = lastVerdictChecksum
        self.lastVerdictAt = lastVerdictAt
    }

    /// Whether the gate is open and not yet past its expiry at `now`.
    public func isEffectivelyOpen(at now: Date) -> Bool {
        isOpen && !isExpired(at: now)
    }

    /// Whether an open gate has reached its expiry.
    public func isExpired(at now: Date) -> Bool {
        guard isOpen, let expiresAt else { return false }
        return expiresAt <= now
    }
}

/// The outcome of one check.
public enum Verdict: String, Sendable, Codable {
    /// The gate passes: Flagger gets a 2xx.
    case approved
    /// The gate does not pass: Flagger gets a 403.
    case refused
}

/// What a user asks for when opening a gate.
public struct OpenRequest: Sendable, Equatable {
    /// Why the gate is opened, for the audit trail.
    public var reason: String?
    /// When the gate closes by itself.
    public var expiresAt: Date?
    /// How many passing checks the gate allows before it closes.
    public var steps: Int?
    /// Whether the gate stays open across rollouts until closed.
    public var isSticky: Bool
    /// The rollout a once-gate is for, when it is known in advance (an approval link names it).
    public var boundChecksum: Revision?
    /// Whether a traffic approval is for every remaining check of the rollout (including Flagger's
    /// extra one at maximum weight) rather than a number of steps.
    public var coversRestOfRollout: Bool

    /// Creates a request; a plain `OpenRequest()` opens a once-gate with no expiry.
    public init(
        reason: String? = nil, expiresAt: Date? = nil, steps: Int? = nil, isSticky: Bool = false,
        boundChecksum: Revision? = nil, coversRestOfRollout: Bool = false
    ) {
        self.reason = reason
        self.expiresAt = expiresAt
        self.steps = steps
        self.isSticky = isSticky
        self.boundChecksum = boundChecksum
        self.coversRestOfRollout = coversRestOfRollout
    }

    /// Takes a traffic approval's size: a number of checks, or the rest of the rollout.
    public mutating func cover(_ steps: TrafficSteps) {
        switch steps {
        case .count(let count):
            self.steps = count
            coversRestOfRollout = false
        case .rest:
            self.steps = nil
            coversRestOfRollout = true
        }
    }

    /// What an approval of `gate` on these terms lets through, in one sentence for the person who
    /// gave it; `canary`, the canary as the approval left it, says which rollout it belongs to.
    public func coverage(of gate: GateKind, in canary: Canary? = nil) -> String {
        let until = expiresAt.map { " until \(Timestamp.string(from: $0))" } ?? ""
        if isSticky {
            return "\(gate.rawValue) gate open for every check of every rollout\(until), until closed"
        }
        let rollout =
            canary.map { $0.rollout.canStillAsk(gate) ? "the rollout under way" : "the next rollout" } ?? "one rollout"
        switch gate {
        case .traffic:
            if let steps {
                let meaning =
                    steps == 1
                    ? "one weight increase, or the final check at maximum weight"
                    : "\(steps) weight increases, or \(steps - 1) and the final check at maximum weight"
                return
                    "approved the next \(steps) traffic check\(steps == 1 ? "" : "s") of \(rollout)\(until): Flagger asks once per weight increase and once more at maximum weight before promotion, so that is \(meaning)"
            }
            return
                "approved the rest of the traffic checks of \(rollout)\(until): every weight increase and the final check at maximum weight"
        case .rollback:
            guard let canary else {
                return "rollback requested\(until): Flagger rolls back at its next rollback check of this rollout"
            }
            let revision = canary.gate(.rollback).boundChecksum.map { " of revision \($0)" } ?? ""
            return
                "rollback requested\(until): Flagger rolls back at its next rollback check\(revision); the request ends with the rollout and is never used by a later one"
        case .rollout, .promotion, .shared:
            return
                "\(gate.rawValue) gate open for \(rollout)\(until): the first check it passes binds it to that rollout"
        }
    }
}

/// How many traffic checks an approval covers.
public enum TrafficSteps: Sendable, Equatable {
    /// This many checks (Flagger asks once per weight increase and once more at maximum weight).
    case count(Int)
    /// Every remaining traffic check of the rollout in progress.
    case rest

    /// Parses `3` or `rest`, as typed after `--steps` or `steps=`.
    public init?(_ text: String) {
        if text.lowercased() == "rest" {
            self = .rest
        } else if let count = Int(text), (1...10_000).contains(count) {
            self = .count(count)
        } else {
            return nil
        }
    }
}

/// A change of gate state worth an entry in the audit trail.
public struct GateFact: Sendable, Equatable {
    /// What happened.
    public var action: AuditAction
    /// Who did it.
    public var actor: String
    /// Why, in a few words.
    public var reason: String?
    /// The rollout checksum concerned.
    public var checksum: Revision?
    /// For a check's verdict: what it rested on (not stored; notifications say why a canary waits).
    public var cause: Decision.Cause?

    /// Creates a fact.
    public init(
        action: AuditAction, actor: String, reason: String? = nil, checksum: Revision? = nil,
        cause: Decision.Cause? = nil
    ) {
        self.cause = cause
        self.action = action
        self.actor = actor
        self.reason = reason
        self.checksum = checksum
    }
}

extension Gate {
    /// The actor recorded for changes Gatehouse makes by itself (expiry, binding, resets).
    public static let systemActor = "gatehouse"
    /// The actor recorded for checks and events that Flagger sends.
    public static let flaggerActor = "flagger"

    /// Opens the gate on the terms asked, replacing whatever terms it had.
    public mutating func open(_ request: OpenRequest, actor: String, at now: Date) -> [GateFact] {
        // A person opening an open gate adds their approval; one opening a closed gate is the first.
        approvals = isEffectivelyOpen(at: now) ? approvals : []
        if !approvals.contains(actor) { approvals.append(actor) }
        isOpen = true
        mode = request.isSticky ? .sticky : .once
        boundChecksum = request.isSticky ? nil : request.boundChecksum.map { .revision($0) }
        expiresAt = request.expiresAt
        remainingSteps = request.steps
        self.actor = actor
        reason = request.reason
        changedAt = now
        openedAt = now
        // An approval bound to a rollout is filed under it in the audit trail.
        return [GateFact(action: .opened, actor: actor, reason: request.reason, checksum: request.boundChecksum)]
    }

    /// Whether the last change of the gate was Gatehouse's or Flagger's own, not a person's: an
    /// automatic rule opens such a gate, and a person's close holds it.
    public static func isLeftToRules(by actor: String?) -> Bool {
        actor == nil || actor == systemActor || actor == flaggerActor
    }

    /// Closes the gate. Closing a closed gate changes nothing and records nothing, unless a person
    /// closes a gate no person closed: that holds it against a rule that would open it by itself.
    public mutating func close(
        actor: String, reason: String?, action: AuditAction = .closed, checksum: Revision? = nil, at now: Date
    )
        -> [GateFact]
    {
        guard isOpen || (Gate.isLeftToRules(by: self.actor) && !Gate.isLeftToRules(by: actor)) else { return [] }
        isOpen = false
        approvals = []
        boundChecksum = nil
        expiresAt = nil
        remainingSteps = nil
        openedAt = nil
        self.actor = actor
        self.reason = reason
        changedAt = now
        return [GateFact(action: action, actor: actor, reason: reason, checksum: checksum)]
    }

    /// Closes the gate if its expiry has passed.
    public mutating func expireIfDue(at now: Date) -> [GateFact] {
        guard isExpired(at: now) else { return [] }
        return close(actor: Gate.systemActor, reason: "expired", action: .expired, at: now)
    }

    /// Applies the end of a rollout: a once-gate a check used (bound) or opened before `cutoff`
    /// (when the rollout stopped being able to ask it) belonged to it and closes; one opened later is
    /// an approval for the next rollout. Waiting stops.
    public mutating func endRollout(reason: String, openedBefore cutoff: Date, checksum: Revision?, at now: Date)
        -> [GateFact]
    {
        var facts = expireIfDue(at: now)
        if isOpen && mode == .once && (boundChecksum != nil || (openedAt ?? .distantPast) <= cutoff) {
            facts += close(actor: Gate.systemActor, reason: reason, action: .reset, checksum: checksum, at: now)
        }
        lastVerdict = nil
        lastVerdictChecksum = nil
        lastVerdictAt = nil
        return facts
    }
}
