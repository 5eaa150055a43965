import Foundation
import GRDB
import GatehouseCore
import Logging
import Synchronization

// Checks and Flagger's reports: deciding from memory first, writing only what changes.
extension GateStore {

    /// Decides one check; writes only when the decision changes the canary's gates or rollout (or,
    /// on a store that keeps no copy in memory, when the check tells something new of the canary).
    public func check(_ check: Check, at now: Date = Date()) async throws -> Decision {
        if memory != nil {
            if let decision = try checkInMemory(check, at: now) { return decision }
        } else {
            try requireHealthy()
            if let decision = try await checkReading(check, at: now) { return decision }
        }
        return try await changing(check.canary, at: now) { canary, freezes in
            let freeze = Freeze.applying(to: check.canary, among: freezes, at: now)
            var outcome = canary.deciding(check, freeze: freeze, at: now)
            guard self.needsWrite(outcome, for: check, from: canary, at: now) else {
                return CanaryUpdate(value: outcome.decision)
            }
            outcome.canary.observe(
                phase: check.phase, checksum: check.checksum, progressCheck: check.gate.isProgressCheck, at: now)
            return CanaryUpdate(
                value: outcome.decision, saved: outcome.canary, change: outcome.change, phase: check.phase)
        }
    }

    /// Whether a check's outcome must be written: it changes the canary's gates or rollout, or,
    /// without a copy in memory to hold them until `saveObservations`, what the check observed.
    func needsWrite(_ outcome: CheckOutcome, for check: Check, from canary: Canary, at now: Date) -> Bool {
        outcome.canary.differsDurably(from: canary)
            || (memory == nil
                && canary.wouldObserve(
                    phase: check.phase, checksum: check.checksum, progressCheck: check.gate.isProgressCheck, at: now))
    }

    /// Decides one check from what the database holds, without a lock: the decision when nothing
    /// needs writing (the common case), nil when it must be decided again and written.
    func checkReading(_ check: Check, at now: Date) async throws -> Decision? {
        try await transaction(reads: Records.loading(check.canary, at: now)) { rows in
            let loaded = try Records.loaded(rows)
            guard let canary = loaded.canary else { return Plan(value: nil) }
            let freeze = Freeze.applying(to: check.canary, among: loaded.freezes, at: now)
            let outcome = canary.deciding(check, freeze: freeze, at: now)
            return Plan(value: self.needsWrite(outcome, for: check, from: canary, at: now) ? nil : outcome.decision)
        }
    }

    /// Decides one check from memory alone, without waiting: the decision when it changes nothing
    /// durable (the common case: Flagger asking again), nil when it must be decided again and
    /// written by `check`. Throws `unavailable` while storage cannot answer, as `check` does.
    func checkInMemory(_ check: Check, at now: Date = Date()) throws -> Decision? {
        guard let memory else { return nil }
        try requireHealthy()
        let isProgressCheck = check.gate.isProgressCheck
        // The lock is held only to read the canary and the freeze (and, a few times a minute, to note
        // what the check tells of the canary): every event loop takes it for every check.
        let known = memory.withLock { memory -> (Canary, Freeze?)? in
            guard memory.canaries[check.canary] != nil || memory.canaries.count < maximumCanaries else { return nil }
            var canary = memory.canaries[check.canary] ?? Canary(id: check.canary)
            if canary.wouldObserve(
                phase: check.phase, checksum: check.checksum, progressCheck: isProgressCheck, at: now)
            {
                canary.observe(phase: check.phase, checksum: check.checksum, progressCheck: isProgressCheck, at: now)
                memory.canaries[check.canary] = canary
                memory.unsaved.insert(check.canary)
            }
            return (canary, Freeze.applying(to: check.canary, among: memory.freezes.values, at: now))
        }
        guard let (canary, freeze) = known else { throw fullError(check.canary) }
        let outcome = canary.deciding(check, freeze: freeze, at: now)
        return outcome.canary.differsDurably(from: canary) ? nil : outcome.decision
    }

    /// Records a Flagger `event` or `post-rollout` report. Only `post-rollout` and the "Promotion
    /// completed!" and "Canary failed!" events end a rollout; an event's phase never does (it lags).
    public func report(_ payload: FlaggerPayload, of id: CanaryID, as action: AuditAction, at now: Date = Date())
        async throws
    {
        let message =
            action == .event ? payload.eventMessage : "post-rollout: \(payload.phase?.rawValue ?? "unknown phase")"
        let isRepeat = memory?.withLock { memory -> Bool in
            guard var canary = memory.canaries[id], Self.repeats(payload, message, as: action, of: canary, at: now)
            else { return false }
            canary.observe(phase: canary.reportedPhase(payload, as: action), checksum: payload.checksum, at: now)
            memory.canaries[id] = canary
            memory.unsaved.insert(id)
            return true
        }
        if isRepeat == true { return }

        try await changing(id, at: now) { stored, _ in
            if Self.repeats(payload, message, as: action, of: stored, at: now) {
                // Nothing to record; what it observes is written here only without a copy in memory.
                var canary = stored
                canary.observe(phase: canary.reportedPhase(payload, as: action), checksum: payload.checksum, at: now)
                return CanaryUpdate(value: (), saved: self.memory == nil && canary != stored ? canary : nil)
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
