import Foundation
import GRDB
import GatehouseCore
import Logging
import Synchronization

// Checks and Flagger's reports: deciding from memory first, writing only what changes.
extension GateStore {

    /// Decides one check; writes only when the decision changes the canary's gates or rollout.
    public func check(_ check: Check, at now: Date = Date()) async throws -> Decision {
        if let decision = try checkInMemory(check, at: now) { return decision }
        return try await write { db in
            let canary = try self.load(check.canary, in: db)
            let freeze = self.memory.withLock {
                Freeze.applying(to: check.canary.namespace, among: $0.freezes.values, at: now)
            }
            var outcome = canary.deciding(check, freeze: freeze, at: now)
            guard outcome.canary.differsDurably(from: canary) else { return (outcome.decision, { _ in }) }
            outcome.canary.observe(
                phase: check.phase, checksum: check.checksum, progressCheck: check.gate.isProgressCheck, at: now)
            try self.save(outcome.canary, outcome.change, stored: canary, phase: check.phase, in: db, at: now)
            let saved = outcome.canary
            return (outcome.decision, { $0.replace(saved) })
        }
    }

    /// Decides one check from memory alone, without waiting: the decision when it changes nothing
    /// durable (the common case: Flagger asking again), nil when it must be decided again and
    /// written by `check`. Throws `unavailable` while storage cannot answer, as `check` does.
    func checkInMemory(_ check: Check, at now: Date = Date()) throws -> Decision? {
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
            return (canary, Freeze.applying(to: check.canary.namespace, among: memory.freezes.values, at: now))
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
        let isRepeat = memory.withLock { memory -> Bool in
            guard action == .event, var canary = memory.canaries[id], canary.lastMessage == message,
                canary.lastChecksum == payload.checksum
            else { return false }
            var reported = canary
            guard reported.applyReport(payload, as: action, at: now).isEmpty, !reported.differsDurably(from: canary)
            else { return false }
            canary.observe(phase: canary.reportedPhase(payload, as: action), checksum: payload.checksum, at: now)
            memory.canaries[id] = canary
            memory.unsaved.insert(id)
            return true
        }
        if isRepeat { return }

        try await write { db in
            let stored = try self.load(id, in: db)
            var canary = stored
            let wasEnded = canary.rollout.stage == .ended
            let phase = canary.reportedPhase(payload, as: action)
            var change = CanaryChange()
            change.append(
                [GateFact(action: action, actor: Gate.flaggerActor, reason: message, checksum: payload.checksum)],
                gate: nil)
            let ending = canary.applyReport(payload, as: action, at: now)
            change.facts += ending.facts
            canary.observe(phase: phase, checksum: payload.checksum, at: now)
            if action == .event {
                canary.lastMessage = message
                canary.lastEventType = payload.eventType
            }
            try self.save(canary, change, stored: stored, phase: payload.phase, in: db, at: now)
            if !wasEnded, canary.rollout.stage == .ended, let outcome = Canary.endOutcome(of: payload, as: action) {
                try self.enqueue(
                    Notable(
                        kind: outcome == .succeeded ? .succeeded : .failed, canary: canary, gate: nil,
                        fact: GateFact(
                            action: action, actor: Gate.flaggerActor, reason: message, checksum: payload.checksum),
                        freeze: nil, at: now),
                    in: db)
            }
            let reported = canary
            return ((), { $0.replace(reported) })
        }
    }
}
