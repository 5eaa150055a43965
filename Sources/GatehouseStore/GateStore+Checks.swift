import Foundation
import GRDB
import GatehouseCore
import Logging
import Synchronization

// Checks and Flagger's reports: deciding from memory first, writing only what changes.
extension GateStore {

    /// Decides one check; writes only when the decision changes the canary's gates or rollout.
    public func check(_ check: Check, at now: Date = Date()) async throws -> Decision {
        try requireHealthy()
        try await engine.catchUp()
        let known: Canary?
        switch try checkInMemory(check, at: now) {
        case .decided(let decision): return decision
        case .needsWrite(let canary): known = canary
        }
        let policy = policy()
        var labelled = known ?? Canary(id: check.canary)
        labelled.labels = labelled.labels.updated(from: check.metadata)
        return try await changing(
            check.canary, at: now, peers: policy.needsPeers(labelled, gate: check.gate, at: now)
        ) { canary, surroundings in
            var outcome = canary.deciding(check, in: surroundings, at: now)
            guard outcome.canary.differsDurably(from: canary) else { return CanaryUpdate(value: outcome.decision) }
            outcome.canary.observe(
                phase: check.phase, checksum: check.checksum, progressCheck: check.gate.isProgressCheck, at: now)
            return CanaryUpdate(
                value: outcome.decision, saved: outcome.canary, change: outcome.change, phase: check.phase)
        }
    }

    /// What deciding a check from memory found: the answer, or that it must be decided again in a
    /// write transaction (with the canary as memory knew it, when it did).
    enum Reading: Sendable {
        case decided(Decision)
        case needsWrite(Canary?)
    }

    /// Decides one check from memory alone, without waiting: the decision when it changes nothing
    /// durable (the common case: Flagger asking again), `needsWrite` when it must be decided again and
    /// written by `check`. Throws `unavailable` while storage cannot answer, as `check` does.
    func checkInMemory(_ check: Check, at now: Date = Date()) throws -> Reading {
        try requireHealthy()
        let isProgressCheck = check.gate.isProgressCheck
        let policy = policy()
        // The lock is held only to read (every check on every event loop takes it) and, a few times a
        // minute, to note what a check tells of the canary: the canary and the freezes, then the other
        // canaries only when a rule looks at them — a copy of the whole table held while another
        // check writes to it would make that write copy every canary.
        let known = memory.withLock { memory -> Result<(Canary, [Freeze]), StoreError> in
            guard memory.canaries[check.canary] != nil || memory.untouched.count < maximumCanaries else {
                return .failure(fullError(check.canary, onlyAsked: memory.untouched.count))
            }
            return .success((memory.canary(check.canary) ?? Canary(id: check.canary), Array(memory.freezes.values)))
        }
        let (canary, freezes) = try known.get()
        var labelled = canary
        labelled.labels = canary.labels.updated(from: check.metadata)
        let needs = policy.needsPeers(labelled, gate: check.gate, at: now)
        let peers =
            needs.isEmpty
            ? CanaryTable()
            : memory.withLock { memory in
                needs.rollouts ? memory.canaries : CanaryTable(needs.canaries.compactMap { memory.canary($0) })
            }
        let outcome = canary.deciding(check, in: Surroundings(freezes: freezes, policy: policy, peers: peers), at: now)
        if outcome.canary.differsDurably(from: canary) { return .needsWrite(canary) }
        // What the check tells of the canary is noted only once it is answered from memory: a check that
        // must write (and may fail with 503) leaves nothing behind but what its write commits.
        if canary.wouldObserve(phase: check.phase, checksum: check.checksum, progressCheck: isProgressCheck, at: now) {
            memory.withLock { memory in
                memory.observe(check.canary) { canary in
                    canary.observe(
                        phase: check.phase, checksum: check.checksum, progressCheck: isProgressCheck, at: now)
                }
            }
        }
        return .decided(outcome.decision)
    }

    /// Records a Flagger `event` or `post-rollout` report. Only `post-rollout` and the "Promotion
    /// completed!" and "Canary failed!" events end a rollout; an event's phase never does (it lags).
    public func report(_ payload: FlaggerPayload, of id: CanaryID, as action: AuditAction, at now: Date = Date())
        async throws
    {
        let message =
            action == .event ? payload.eventMessage : "post-rollout: \(payload.phase?.rawValue ?? "unknown phase")"
        try requireHealthy()
        try await engine.catchUp()
        let isRepeat = memory.withLock { memory -> Bool in
            guard let canary = memory.canary(id), Self.repeats(payload, message, as: action, of: canary, at: now)
            else { return false }
            memory.observe(id) { canary in
                canary.observe(phase: canary.reportedPhase(payload, as: action), checksum: payload.checksum, at: now)
            }
            return true
        }
        if isRepeat { return }

        try await changing(id, at: now) { stored, _ in
            if Self.repeats(payload, message, as: action, of: stored, at: now) {
                return CanaryUpdate(value: ())  // nothing to record
            }
            var canary = stored
            let wasEnded = canary.rollout.stage == .ended
            let phase = canary.reportedPhase(payload, as: action)
            var change = CanaryChange()
            let fact = GateFact(action: action, actor: Gate.flaggerActor, reason: message, checksum: payload.checksum)
            change.append([fact], gate: nil)
            let ending = canary.applyReport(payload, as: action, at: now)
            change.facts += ending.facts
            canary.observe(phase: phase, checksum: payload.checksum, at: now)
            if action == .event {
                canary.lastMessage = message
                canary.lastEventType = payload.eventType
                canary.lastMessageChecksum = payload.checksum
            }
            var notables: [Notable] = []
            if !wasEnded, canary.rollout.stage == .ended, let outcome = Canary.endOutcome(of: payload, as: action) {
                notables.append(
                    Notable(
                        kind: outcome == .succeeded ? .succeeded : .failed, canary: canary, gate: nil, fact: fact,
                        freeze: nil, at: now))
            }
            return CanaryUpdate(value: (), saved: canary, change: change, phase: payload.phase, notables: notables)
        }
    }

    /// Whether an event repeats the last one reported (Flagger sends the same event every interval
    /// while a canary waits) and changes nothing: it is not recorded again.
    static func repeats(
        _ payload: FlaggerPayload, _ message: String?, as action: AuditAction, of canary: Canary, at now: Date
    )
        -> Bool
    {
        guard action == .event, canary.lastMessage == message, canary.lastChecksum == payload.checksum else {
            return false
        }
        var reported = canary
        return reported.applyReport(payload, as: action, at: now).isEmpty && !reported.differsDurably(from: canary)
    }
}
