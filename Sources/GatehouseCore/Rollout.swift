import Foundation

/// Where a canary is in its rollout, as far as Flagger's calls tell it.
///
/// Flagger's phases and checksums lag in specific ways (DESIGN.md, "Checksums and phases lie"):
/// an event's phase is the status at the start of its tick, and `confirm-rollout` carries the
/// previous revision's checksum after a `Succeeded` rollout. So a rollout is tracked from the calls
/// that cannot lie: a `confirm-rollout` that passes starts one, the checksum of its first traffic,
/// promotion or rollback check names its revision, and only `post-rollout`, the "Promotion
/// completed!" and "Canary failed!" events, or the next `confirm-rollout` after progress checks end it.
public struct Rollout: Sendable, Equatable {
    /// The stages a rollout goes through.
    public enum Stage: String, Sendable, Codable, CaseIterable {
        /// Nothing is known of a rollout in progress.
        case idle
        /// A new revision is held at `confirm-rollout`.
        case waiting
        /// `confirm-rollout` passed; no traffic, promotion or rollback check has come yet.
        case admitted
        /// Flagger is analysing the revision (traffic, promotion and rollback checks come).
        case progressing
        /// `confirm-promotion` passed or Flagger reported promoting: no rollback check comes any more.
        case promoting
        /// Flagger reported the end, or the next rollout asked `confirm-rollout`.
        case ended
    }

    /// The stage reached.
    public var stage: Stage
    /// The checksum the rollout's traffic, promotion and rollback checks carry, once one came.
    public var revision: Revision?
    /// A checksum that reached progress checks without passing the rollout gate (a revision
    /// changed mid-analysis); its traffic and promotion checks are refused until it is approved.
    public var unapprovedRevision: Revision?
    /// When the latest traffic, promotion or rollback check of the rollout was made (to about a second).
    public var lastProgressCheckAt: Date?
    /// Whether the canary asks `confirm-rollout`, so that its rollout gate is in use.
    public var usesRolloutGate: Bool
    /// When the stage last changed.
    public var since: Date?
    /// When the rollout was admitted (or its first progress check came, without a rollout gate).
    public var startedAt: Date?
    /// How the last rollout ended, when an end signal said so.
    public var outcome: CanaryPhase?
    /// When `confirm-promotion` first passed in this rollout. In Blue/Green Flagger asks it twice
    /// (the first pass only routes traffic to the canary, and a rollback check follows), so a pass
    /// ends the rollout's traffic and promotion checks but not, unless `shiftsTraffic`, its rollback checks.
    public var promotionPassedAt: Date?
    /// The progress checks (traffic, promotion, rollback) that came in this rollout, each once, in
    /// the order they first came: they tell the strategy and which hooks the Canary configures.
    public var asked = GateKinds()
    /// The phase of the `confirm-rollout` call that admitted the rollout: a retry of that call
    /// repeats it, while the first call of a new rollout carries `Initialized`, `Succeeded` or `Failed`.
    public var admittedPhase: CanaryPhase?
    /// The checksum of that call.
    public var admittedChecksum: Revision?
    /// When a call of this rollout last came after an approval was opened (or, before any did, when
    /// it was admitted): an approval opened before then was given while the rollout was still
    /// asking, and belongs to it. Exact, unlike `lastProgressCheckAt`, so that the order of an
    /// approval and a check never depends on a clock's resolution.
    public var approvalsSeenAt: Date?

    /// Nothing known yet.
    public init(
        stage: Stage = .idle, revision: Revision? = nil, unapprovedRevision: Revision? = nil,
        lastProgressCheckAt: Date? = nil, usesRolloutGate: Bool = false, since: Date? = nil, startedAt: Date? = nil,
        outcome: CanaryPhase? = nil
    ) {
        self.startedAt = startedAt
        self.outcome = outcome
        self.stage = stage
        self.revision = revision
        self.unapprovedRevision = unapprovedRevision
        self.lastProgressCheckAt = lastProgressCheckAt
        self.usesRolloutGate = usesRolloutGate
        self.since = since
    }

    /// Whether a rollout is under way (admitted and not yet ended).
    public var isInProgress: Bool { [.admitted, .progressing, .promoting].contains(stage) }

    /// Whether a `confirm-traffic-increase` check came in this rollout: Flagger's progressive canary
    /// strategy, which promotes at the first passing promotion check (A/B and Blue/Green never ask it).
    public var shiftsTraffic: Bool { asked.contains(.traffic) }

    /// Whether the rollout's every analysis tick makes a call Gatehouse sees: a rollback check comes
    /// first in each tick while `Progressing` or `WaitingPromotion` (scheduler.go:378-387), also in the
    /// tick that fails it. Without one, a rollout can end with no call (failing metrics stop a tick
    /// before its traffic and promotion checks, scheduler.go:436-466), so its end is known only later.
    public var isSeenEveryTick: Bool { asked.contains(.rollback) }

    /// Whether a rollback check can still come in this rollout: Flagger asks `rollback` only while
    /// `Progressing` or `WaitingPromotion`, never while held at `confirm-rollout` or once promoting
    /// (scheduler.go:378-387). After a promotion pass that may be Blue/Green's first, one still can.
    public var canRollBack: Bool { stage == .admitted || stage == .progressing }

    /// Whether the rollout has gone past `gate`, so that an earlier refusal of it no longer holds
    /// the canary: the rollout gate once a rollout is under way, traffic and promotion once
    /// promotion passed.
    public func hasPassed(_ gate: GateKind) -> Bool {
        switch gate {
        case .rollout: isInProgress
        case .traffic, .promotion: stage == .promoting || (isInProgress && promotionPassedAt != nil)
        case .rollback, .shared: false
        }
    }

    /// Whether Flagger can still ask `gate` in the rollout under way, as far as its calls tell: an
    /// approval of a gate the rollout can still ask belongs to it and ends with it; any other
    /// approval is for the next rollout. `confirm-rollout` is never asked again once a rollout is
    /// admitted; traffic not after promotion passed; promotion not once Flagger promotes (Blue/Green
    /// asks it a second time after its first pass); rollback until the rollout ends.
    public func canStillAsk(_ gate: GateKind) -> Bool {
        switch gate {
        case .rollout, .shared: false
        case .traffic: isInProgress && !hasPassed(gate)
        case .promotion: isInProgress && stage != .promoting
        case .rollback: canRollBack
        }
    }

    /// When the rollout last asked `gate`, for a rollout whose last call was at `lastCall`: a
    /// once-approval of `gate` opened before then belonged to it; one opened later is for the next
    /// rollout. `confirm-rollout` is asked last at admission, traffic until promotion passed,
    /// promotion until Flagger promotes (known from traffic checks or its events), rollback until
    /// the end.
    func lastChance(for gate: GateKind, lastCall: Date) -> Date {
        switch gate {
        case .rollout, .shared: min(startedAt ?? lastCall, lastCall)
        case .traffic: min(promotionPassedAt ?? lastCall, lastCall)
        case .promotion: stage == .promoting ? min(promotionPassedAt ?? lastCall, lastCall) : lastCall
        case .rollback: lastCall
        }
    }

    /// The checksum the rollout's current checks carry, if known.
    public var currentChecksum: Revision? { unapprovedRevision ?? revision }

    /// Why the canary is held, when a revision skipped the rollout gate.
    public var held: String? { unapprovedRevision.map(Rollout.holding) }

    /// Why a revision that skipped the rollout gate is held, in one sentence.
    static func holding(_ revision: Revision) -> String {
        "revision \(revision) reached traffic checks without passing the rollout gate (it changed during analysis); its traffic and promotion checks are refused until the rollout gate is opened for it"
    }
}

/// The messages of Flagger's events that reliably start or end a rollout (pkg/controller/scheduler.go).
public enum RolloutSignal {
    /// "New revision detected! Scaling up podinfo.test": a rollout starts (scheduler.go:908), after
    /// confirm-rollout passed. A revision changed during analysis says "Restarting analysis" instead.
    public static let startedPrefix = "New revision detected! Scaling up"
    /// "New revision detected! Restarting analysis for podinfo.test": the revision changed during
    /// analysis (scheduler.go:329); the event carries the replaced revision's checksum.
    public static let restartedPrefix = "New revision detected! Restarting analysis"

    /// Whether an event says Flagger promotes: "Copying podinfo.test template spec to
    /// podinfo-primary.test" (scheduler.go:623, 666, 735 and, skipping the analysis, 790).
    public static func isPromotion(_ message: String) -> Bool {
        message.hasPrefix("Copying ") && message.contains(" template spec to ")
    }
    /// "Promotion completed! Scaling down podinfo.test": the rollout succeeded.
    public static let promotedPrefix = "Promotion completed!"
    /// "Canary failed! Scaling down podinfo.test": the rollout failed or was rolled back.
    public static let failedPrefix = "Canary failed!"

    /// The outcome an event reports, if it is one of the two end events.
    public static func outcome(ofEvent message: String) -> CanaryPhase? {
        if message.hasPrefix(promotedPrefix) { return .succeeded }
        if message.hasPrefix(failedPrefix) { return .failed }
        return nil
    }
}

/// The gates a change touched and the audit facts it produced, in order.
public struct CanaryChange: Sendable {
    /// Each fact, with the gate it concerns (nil for the canary as a whole).
    public var facts: [(gate: GateKind?, fact: GateFact)] = []

    /// No change.
    public init() {}

    /// Appends facts about one gate (or the canary, when `gate` is nil).
    public mutating func append(_ facts: [GateFact], gate: GateKind?) {
        self.facts += facts.map { (gate: gate, fact: $0) }
    }

    /// Whether nothing was recorded.
    public var isEmpty: Bool { facts.isEmpty }
}

/// The answer to a check, with the canary as the check leaves it.
public struct CheckOutcome: Sendable {
    /// The answer, and the asked gate after it.
    public var decision: Decision
    /// The canary after the check: the asked gate, any gate a rollout's end closed, and the rollout.
    public var canary: Canary
    /// Everything the check changed, for the audit trail (the decision's own facts included).
    public var change: CanaryChange
}

extension Canary {
    /// Decides a check and applies what it tells of the rollout; pure, so the store can run it on its
    /// in-memory copy and again inside the write transaction.
    public func deciding(_ check: Check, in surroundings: Surroundings, at now: Date) -> CheckOutcome {
        var canary = self
        var change = CanaryChange()
        canary.labels = labels.updated(from: check.metadata)
        let freeze = Freeze.applying(to: id, among: surroundings.freezes, at: now)
        if check.gate == .rollout {
            canary.rollout.usesRolloutGate = true
            if canary.rollout.isEndedBy(check) {
                // No end was reported, but a new rollout asks: the previous one is over.
                change.facts += canary.inferEndOfRollout(at: now, lastCallIsKnown: canary.rollout.isSeenEveryTick).facts
            }
            // Flagger makes no rollback check before a rollout starts: a request still open is for one that ended.
            change.append(
                canary.closeRollbackRequest(
                    reason: "no rollback check comes before a rollout starts (Flagger asked confirm-rollout)",
                    checksum: check.checksum, at: now),
                gate: .rollback)
        } else if check.gate.isProgressCheck {
            change.facts += canary.followProgressCheck(check, at: now).facts
        }

        var holding: String?
        if check.gate.isHeldForApprovedRevision, let unapproved = canary.rollout.unapprovedRevision,
            unapproved == check.checksum
        {
            if canary.approvesRevision(unapproved, at: now) {
                change.facts += canary.adoptRevision(unapproved, at: now).facts
            } else {
                holding =
                    "revision \(unapproved) of \(check.canary) reached \(check.gate.rawValue) checks without passing the rollout gate (it changed during analysis); approve it with: gatehouse open rollout \(check.canary.commandLine)"
            }
        }
        let before = canary.gate(check.gate)
        let decision = Decision(
            for: check, gate: before, freeze: freeze, holding: holding,
            guards: canary.guards(check.gate, in: surroundings, at: now), at: now)
        change.append(
            canary.noteDryRuns(
                of: check, answered: decision, gate: before, freeze: freeze, holding: holding, in: surroundings, at: now
            ),
            gate: check.gate)
        // Most checks change nothing: leave the gates (and their storage) untouched then.
        if decision.gate != canary.gate(check.gate) { canary.gates[check.gate] = decision.gate }
        change.append(decision.facts, gate: check.gate)

        if decision.isApproved {
            switch check.gate {
            case .rollout where canary.rollout.stage != .admitted:
                canary.rollout = Rollout(
                    stage: .admitted, usesRolloutGate: true, since: now, startedAt: now)
                canary.rollout.admittedPhase = check.phase
                canary.rollout.admittedChecksum = check.checksum
                canary.rollout.approvalsSeenAt = now
                canary.queuedAt = nil
            case .promotion where canary.rollout.stage == .progressing || canary.rollout.stage == .admitted:
                canary.rollout.promotionPassedAt = canary.rollout.promotionPassedAt ?? now
                if canary.rollout.shiftsTraffic {
                    // The progressive strategy promotes at once: no rollback check comes any more.
                    canary.rollout.stage = .promoting
                    canary.rollout.since = now
                }
            default: break
            }
        } else if check.gate == .rollout && canary.rollout.stage != .waiting && canary.rollout.stage != .admitted {
            canary.rollout.stage = .waiting
            canary.rollout.since = now
        }
        if check.gate == .rollout && canary.rollout.stage == .waiting {
            // In the queue while a rollout slot is all it waits for; the place is kept by when it first asked.
            canary.queuedAt = decision.cause == .queued ? (canary.queuedAt ?? now) : nil
        }
        return CheckOutcome(decision: decision, canary: canary, change: change)
    }

    /// Decides the check again with each dry-run rule that selects the canary enforced among the
    /// enforced ones; where the answer would differ from `decision`, notes it (once, when it begins)
    /// and, when a difference noted ends, says for how long it lasted.
    private mutating func noteDryRuns(
        of check: Check, answered decision: Decision, gate: Gate, freeze: Freeze?, holding: String?,
        in surroundings: Surroundings, at now: Date
    ) -> [GateFact] {
        // Most policies have no dry-run rule: the check path then pays nothing for them.
        guard surroundings.policy.rules.contains(where: { !$0.enforced }) else { return [] }
        let selecting = surroundings.policy.rules(for: self)
        let enforced = selecting.filter(\.enforced)
        var facts: [GateFact] = []
        for var rule in selecting where !rule.enforced && rule.gates.contains(check.gate) {
            guard !isOverridden(rule.name, at: now) else { continue }
            rule.enforced = true
            let would = Decision(
                for: check, gate: gate, freeze: freeze, holding: holding,
                guards: guards(check.gate, under: enforced + [rule], in: surroundings, at: now), at: now)
            let noted = dryRuns.firstIndex { $0.rule == rule.name && $0.gate == check.gate }
            if would.verdict != decision.verdict, noted == nil {
                let dryRun = DryRun(
                    rule: rule.name, gate: check.gate, wouldHold: !would.isApproved, message: would.message, since: now)
                dryRuns.append(dryRun)
                facts.append(
                    GateFact(action: .dryRun, actor: Gate.systemActor, reason: dryRun.summary, checksum: check.checksum)
                )
            } else if would.verdict == decision.verdict, let noted {
                let ended = dryRuns.remove(at: noted)
                let lasted = DurationText.format(max(now.timeIntervalSince(ended.since).rounded(), 1))
                facts.append(
                    GateFact(
                        action: .dryRun, actor: Gate.systemActor,
                        reason:
                            "rule \(rule.name) (dry run) now answers the \(check.gate.rawValue) gate as it was answered; it would have \(ended.wouldHold ? "held" : "let pass") it for \(lasted)",
                        checksum: check.checksum))
            }
        }
        return facts
    }

    /// Applies a traffic, promotion or rollback check to the rollout: the first one names the
    /// revision; one with another checksum is a revision changed during analysis.
    private mutating func followProgressCheck(_ check: Check, at now: Date) -> CanaryChange {
        var change = CanaryChange()
        let checksum = check.checksum
        defer {
            if rollout.isInProgress { rollout.asked.append(check.gate) }
            // This call comes after any approval opened since the last one noted: those belong to this rollout.
            let seen = rollout.approvalsSeenAt ?? .distantPast
            if gates.values.contains(where: { $0.isOpen && $0.mode == .once && ($0.openedAt ?? .distantPast) > seen }) {
                rollout.approvalsSeenAt = now
            }
        }
        switch rollout.stage {
        case .admitted:
            rollout.stage = .progressing
            rollout.revision = checksum
            rollout.since = now
            rollout.startedAt = rollout.startedAt ?? now
        case .progressing, .promoting:
            guard let checksum, checksum != rollout.revision, checksum != rollout.unapprovedRevision else { break }
            if rollout.usesRolloutGate {
                // A new revision restarts the analysis (scheduler.go:328-357): promotion is asked anew,
                // and the revision is held until someone approves it through the rollout gate.
                rollout.promotionPassedAt = nil
                if rollout.stage == .promoting { rollout.stage = .progressing }
                change.append(holdRevision(checksum, at: now), gate: nil)
            } else {
                // Without a rollout gate nothing tells a new rollout from a revision changed during
                // analysis: either way what was approved for the last revision ends with it. The tick
                // that restarts an analysis makes no call (scheduler.go:328-357), so even a rollback
                // check every tick does not date the last revision's end.
                change.facts += inferEndOfRollout(at: now, lastCallIsKnown: false).facts
                rollout = Rollout(stage: .progressing, revision: checksum, since: now, startedAt: now)
            }
        case .idle, .waiting, .ended:
            if rollout.stage == .ended, checksum == rollout.revision { break }  // a late call of the ended rollout
            if rollout.usesRolloutGate {
                rollout = Rollout(stage: .progressing, usesRolloutGate: true, since: now, startedAt: now)
                // A call that names no revision (an old Flagger's) gives nothing to hold or approve.
                if let checksum { change.append(holdRevision(checksum, at: now), gate: nil) }
            } else {
                rollout = Rollout(stage: .progressing, revision: checksum, since: now, startedAt: now)
            }
        }
        rollout.lastProgressCheckAt = now
        return change
    }

    private mutating func holdRevision(_ checksum: Revision, at now: Date) -> [GateFact] {
        rollout.unapprovedRevision = checksum
        return [
            GateFact(
                action: .held, actor: Gate.systemActor,
                reason: Rollout.holding(checksum),
                checksum: checksum)
        ]
    }

    /// The gate a person opens to let a canary waiting at `gate` with `checksum` go on: that gate,
    /// or the rollout gate for a revision held because it skipped it.
    public func gateToOpen(waitingAt gate: GateKind, checksum: Revision?) -> GateKind {
        guard gate.isHeldForApprovedRevision, let checksum,
            rollout.unapprovedRevision == checksum
        else { return gate }
        return .rollout
    }

    /// Whether the rollout gate, as it stands, approves a revision that skipped it: open and not
    /// already spent on another rollout.
    private func approvesRevision(_ checksum: Revision, at now: Date) -> Bool {
        let gate = gate(.rollout)
        guard gate.isEffectivelyOpen(at: now) else { return false }
        return gate.mode == .sticky || gate.boundChecksum == nil || gate.boundChecksum == .revision(checksum)
    }

    /// Makes an approved revision the rollout's own, binding a once rollout gate to it.
    private mutating func adoptRevision(_ checksum: Revision, at now: Date) -> CanaryChange {
        var change = CanaryChange()
        // The rollout goes on with the approved revision: what people approved of its traffic and
        // promotion, used on the replaced revision, is theirs to use (a rollback request is not).
        if let replaced = rollout.revision {
            for kind in [GateKind.traffic, .promotion] {
                var gate = gate(kind)
                guard gate.isOpen, gate.mode == .once, gate.boundChecksum == .revision(replaced) else { continue }
                gate.boundChecksum = .revision(checksum)
                gate.changedAt = now
                gates[kind] = gate
                change.append(
                    [
                        GateFact(
                            action: .bound, actor: Gate.systemActor,
                            reason:
                                "carried over from revision \(replaced) to \(checksum), approved through the rollout gate",
                            checksum: checksum)
                    ], gate: kind)
            }
        }
        rollout.revision = checksum
        rollout.unapprovedRevision = nil
        var gate = gate(.rollout)
        if gate.mode == .once && gate.boundChecksum == nil {
            gate.boundChecksum = .revision(checksum)
            gate.changedAt = now
            gates[.rollout] = gate
            change.append(
                [
                    GateFact(
                        action: .bound, actor: Gate.systemActor,
                        reason: "approves revision \(checksum), which changed during analysis", checksum: checksum)
                ], gate: .rollout)
        }
        change.append(
            [
                GateFact(
                    action: .approved, actor: Gate.systemActor,
                    reason: "revision \(checksum) approved through the rollout gate", checksum: checksum)
            ], gate: .rollout)
        return change
    }

    /// Ends the rollout in progress when the first call of another shows it is over. With
    /// `lastCallIsKnown` (it made a call in every tick, up to its end) what came after its last call
    /// is for the next rollout; otherwise it could have ended later without a call, and what came
    /// since its last call ends with it.
    mutating func inferEndOfRollout(at now: Date, lastCallIsKnown: Bool) -> CanaryChange {
        let lastCall = lastCallIsKnown ? rollout.approvalsSeenAt ?? rollout.startedAt ?? now : now
        return endRollout(outcome: nil, checksum: rollout.revision, lastCall: lastCall, at: now)
    }

    /// Ends the rollout in progress, whose last call was at `lastCall`: what belonged to it closes —
    /// a once-gate it used, or one opened before it last asked that gate (`Rollout.lastChance`) — and
    /// every gate stops waiting. An approval opened after that is for the next rollout.
    public mutating func endRollout(outcome: CanaryPhase?, checksum: Revision?, lastCall: Date, at now: Date)
        -> CanaryChange
    {
        var change = CanaryChange()
        let reason =
            outcome.map { "rollout ended: \($0)" }
            ?? "rollout ended: the next rollout asked confirm-rollout"
        for kind in GateKind.allCases {
            var gate = gate(kind)
            let before = gate
            let facts = gate.endRollout(
                reason: reason, openedBefore: rollout.lastChance(for: kind, lastCall: lastCall), checksum: checksum,
                at: now)
            if gate != before { gates[kind] = gate }
            change.append(facts, gate: kind)
        }
        let cutoff = rollout.lastChance(for: .promotion, lastCall: lastCall)
        rollout.revision = (rollout.isInProgress ? rollout.currentChecksum : nil) ?? checksum
        rollout.stage = .ended
        rollout.unapprovedRevision = nil
        rollout.since = now
        rollout.outcome = outcome
        if outcome == .succeeded { succeededAt = now }
        dryRuns = []
        rollout.promotionPassedAt = nil
        rollout.asked = []
        rollout.approvalsSeenAt = nil
        // What belonged to the rollout ends with it: its request for approval, its overrides, a queue place.
        if let asked = requestedAt, asked <= cutoff {
            requestedBy = []
            requestedAt = nil
        }
        overrides.removeAll { $0.at <= cutoff || $0.expiresAt <= now }
        queuedAt = nil
        return change
    }

    /// The outcome a report announces, if it is one of the reliable end signals: `post-rollout`
    /// (its body's phase) or the "Promotion completed!" and "Canary failed!" events.
    public static func endOutcome(of payload: FlaggerPayload, as action: AuditAction) -> CanaryPhase? {
        if action == .postRollout {
            return payload.phase.flatMap { $0 == .succeeded || $0 == .failed ? $0 : nil }
        }
        return action == .event ? payload.eventMessage.flatMap(RolloutSignal.outcome(ofEvent:)) : nil
    }

    /// The phase a report tells, for `lastPhase`: nil for an event that comes after its rollout
    /// ended (Flagger's last "Post-rollout check … passed" still carries `Progressing`).
    public func reportedPhase(_ payload: FlaggerPayload, as action: AuditAction) -> CanaryPhase? {
        if action == .event, Canary.endOutcome(of: payload, as: action) == nil, rollout.stage == .ended,
            payload.checksum == rollout.revision
        {
            return nil
        }
        return payload.phase
    }

    /// Takes the observed fields (last seen, phase, checksum, last progress check) from `other`
    /// where it saw the canary later.
    public mutating func adoptObservations(from other: Canary) {
        if let seen = other.lastSeen, seen > (lastSeen ?? .distantPast) {
            lastSeen = seen
            lastPhase = other.lastPhase ?? lastPhase
            lastChecksum = other.lastChecksum ?? lastChecksum
        }
        if rollout.isInProgress, let checked = other.rollout.lastProgressCheckAt,
            checked > (rollout.lastProgressCheckAt ?? .distantPast)
        {
            rollout.lastProgressCheckAt = checked
        }
    }

    /// Applies a Flagger report: an end signal ends the rollout (once), a rollout's start closes a
    /// rollback request made before it, and any other event changes nothing but a rollout seen
    /// promoting. Returns what changed.
    public mutating func applyReport(_ payload: FlaggerPayload, as action: AuditAction, at now: Date) -> CanaryChange {
        if action == .event, let weight = payload.eventMessage.flatMap(FlaggerMessage.weight(after:)) {
            trafficWeight = weight
        }
        if let outcome = Canary.endOutcome(of: payload, as: action) {
            // post-rollout and the end event both come at the end of one rollout: the second changes nothing.
            if rollout.stage == .ended, payload.checksum == nil || payload.checksum == rollout.revision {
                return CanaryChange()
            }
            // The report is the rollout's last call; what came since its last check was for it only if
            // a tick could have passed unseen meanwhile (Promoting and Finalising make no checks).
            let lastCall = rollout.isSeenEveryTick ? rollout.approvalsSeenAt ?? now : now
            return endRollout(outcome: outcome, checksum: payload.checksum, lastCall: lastCall, at: now)
        }
        var change = CanaryChange()
        if action == .event, payload.eventMessage?.hasPrefix(RolloutSignal.restartedPrefix) == true,
            !rollout.usesRolloutGate, rollout.isInProgress
        {
            // Without a rollout gate a revision changed during analysis is a new rollout: the last one ends here.
            return endRollout(outcome: nil, checksum: payload.checksum, lastCall: now, at: now)
        }
        if action == .event, payload.eventMessage?.hasPrefix(RolloutSignal.startedPrefix) == true {
            // A rollout starts: no rollback request made before it is for it.
            change.append(
                closeRollbackRequest(
                    reason: "a new rollout started (\(RolloutSignal.startedPrefix))", checksum: payload.checksum,
                    at: now),
                gate: .rollback)
            if rollout.stage != .admitted {
                // Admitted without a rollout gate (or its pass was missed): the one before, if any, is over.
                if rollout.stage == .progressing || rollout.stage == .promoting {
                    change.facts += inferEndOfRollout(at: now, lastCallIsKnown: rollout.isSeenEveryTick).facts
                }
                rollout = Rollout(
                    stage: .admitted, usesRolloutGate: rollout.usesRolloutGate, since: now, startedAt: now)
                rollout.approvalsSeenAt = now
            }
        }
        if action == .event, payload.eventMessage.map(RolloutSignal.isPromotion) == true, rollout.isInProgress {
            // Flagger copied the canary's spec to the primary: promotion passed, whatever hooks ask it.
            rollout.promotionPassedAt = rollout.promotionPassedAt ?? now
            rollout.stage = .promoting
            rollout.since = now
        }
        if action == .event, let phase = payload.phase, phase == .promoting || phase == .finalising,
            rollout.stage == .admitted || rollout.stage == .progressing
        {
            // An event's phase is the status at the start of its tick, so Promoting there is certain.
            rollout.stage = .promoting
            rollout.since = now
        }
        return change
    }

    /// The checksum a rollback request made now belongs to, or why none should be made.
    ///
    /// A request binds to the revision in progress so that it can never fire on another; one made
    /// when no rollback check can come any more is refused unless forced (a forced one binds to the
    /// last revision known, or to none when none is, and closes at the next rollout's start).
    public func rollbackBinding(force: Bool) -> Result<Revision?, RollbackRefusal> {
        if rollout.canRollBack { return .success(rollout.currentChecksum) }
        // Forced, it still belongs to the last rollout known (a check of another revision, or the next
        // confirm-rollout, closes it), so it can never fire on a later release.
        if force { return .success(rollout.stage == .waiting ? nil : rollout.revision) }
        let situation: String
        switch rollout.stage {
        case .promoting:
            situation =
                "\(id) is being promoted (confirm-promotion passed), and Flagger makes no rollback checks while promoting"
        case .waiting:
            situation = "\(id) is held at confirm-rollout, where Flagger makes no rollback checks"
        case .ended:
            situation = "the last rollout of \(id) has ended\(lastPhase.map { " (\($0))" } ?? "")"
        case .idle, .admitted, .progressing:
            let known = lastPhase.map { "its last phase is \($0)" } ?? "Flagger has not reported on it"
            situation = "\(id) is not known to be in a rollout (\(known))"
        }
        return .failure(
            RollbackRefusal(
                message:
                    "\(situation); a rollback request now could fire on a later release, so use --force (\"force\": true) to request it anyway"
            ))
    }
}

extension Rollout {
    /// Whether `check`, a `confirm-rollout` call, shows that the rollout tracked has ended: Flagger
    /// asks it only before a rollout starts (scheduler.go:888-932), so it ends one that progressed;
    /// one only admitted ends when the call is a new rollout's first (`Initialized`, `Succeeded` or
    /// `Failed`, scheduler_hooks.go:47) and not a retry of the call that admitted it (a rollout whose
    /// analysis was skipped makes no other call).
    func isEndedBy(_ check: Check) -> Bool {
        switch stage {
        case .progressing, .promoting: return true
        case .admitted:
            guard let phase = check.phase, [.initialized, .succeeded, .failed].contains(phase) else { return false }
            return phase != admittedPhase || check.checksum != admittedChecksum
        case .idle, .waiting, .ended: return false
        }
    }
}

extension Canary {
    /// Closes an open rollback request (not a sticky rollback gate, the loadtester's), recorded as a reset.
    mutating func closeRollbackRequest(reason: String, checksum: Revision?, at now: Date) -> [GateFact] {
        var gate = gate(.rollback)
        guard gate.isOpen, gate.mode == .once else { return [] }
        let facts = gate.close(actor: Gate.systemActor, reason: reason, action: .reset, checksum: checksum, at: now)
        gates[.rollback] = gate
        return facts
    }
}

/// Why a rollback request was refused.
public struct RollbackRefusal: Error, Sendable, Equatable {
    /// One sentence for the caller.
    public var message: String
}

extension GateKind {
    /// Whether Flagger asks this gate only while a rollout progresses (traffic, promotion, rollback).
    public var isProgressCheck: Bool { self == .traffic || self == .promotion || self == .rollback }

    /// Whether this gate holds a revision that skipped the rollout gate.
    public var isHeldForApprovedRevision: Bool { self == .traffic || self == .promotion }
}
