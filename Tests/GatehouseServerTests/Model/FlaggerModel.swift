import Foundation

// A model of Flagger's scheduler for one canary, written from fluxcd/flagger v1.44.0 (commit 15bd6ad5):
// pkg/controller/scheduler.go (advanceCanary and the strategies), scheduler_hooks.go (the hook calls),
// webhook.go (the payload and the retrying client), events.go (the event webhook) and
// pkg/canary/status.go (what a status sync writes). Line numbers below are of that commit.
// It makes the exact calls Flagger would make to Gatehouse — hook, phase at the start of the tick,
// checksum, event messages — and follows the answers as Flagger does.

/// The settings of a Canary that change which calls Flagger makes.
struct CanarySpec: Sendable, Equatable, CustomStringConvertible {
    /// How the canary is analysed (Canary `spec.analysis`).
    enum Strategy: Sendable, Equatable {
        /// Progressive traffic: `stepWeight` (or `stepWeights`) up to `maxWeight`.
        case canary(stepWeight: Int, stepWeights: [Int], maxWeight: Int)
        /// A/B testing: `iterations` with `match` (scheduler.go:639-680).
        case abTesting(iterations: Int)
        /// Blue/Green: `iterations`, optionally mirroring (scheduler.go:682-748).
        case blueGreen(iterations: Int, mirror: Bool)
    }

    /// A webhook type of the Canary that points at Gatehouse.
    enum Hook: String, Sendable, CaseIterable, Comparable {
        case confirmRollout = "confirm-rollout"
        case confirmTrafficIncrease = "confirm-traffic-increase"
        case confirmPromotion = "confirm-promotion"
        case rollback
        case postRollout = "post-rollout"
        case event

        static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

        /// Gatehouse's path for the hook.
        var path: String { self == .event ? "/v1/flagger/events" : "/v1/flagger/\(rawValue)" }
    }

    var strategy: Strategy
    var skipAnalysis = false
    /// `analysis.threshold`: failed checks before a rollback.
    var threshold = 2
    /// The Canary's webhooks that call Gatehouse.
    var hooks: Set<Hook>
    /// Flagger runs with `--event-webhook` at Gatehouse (used only when the Canary has no `event` hook).
    var globalEventWebhook = false
    /// The gate webhooks' `retries`.
    var retries = 0
    /// Whether the canary starts `Succeeded` (a canary that has been promoted before) or `Initialized`.
    var startsSucceeded = true
    /// The policy rule the canary's namespace falls under (`ModelPolicy.file`).
    var policy: ModelPolicy = .none

    /// Whether Flagger's events reach Gatehouse.
    var sendsEvents: Bool { hooks.contains(.event) || globalEventWebhook }

    var description: String {
        let hookList = hooks.sorted().map { ".\(Self.caseName($0))" }.joined(separator: ", ")
        let strategyText: String
        switch strategy {
        case .canary(let step, let steps, let max):
            strategyText = ".canary(stepWeight: \(step), stepWeights: \(steps), maxWeight: \(max))"
        case .abTesting(let iterations): strategyText = ".abTesting(iterations: \(iterations))"
        case .blueGreen(let iterations, let mirror):
            strategyText = ".blueGreen(iterations: \(iterations), mirror: \(mirror))"
        }
        return
            "CanarySpec(strategy: \(strategyText), skipAnalysis: \(skipAnalysis), threshold: \(threshold), hooks: [\(hookList)], globalEventWebhook: \(globalEventWebhook), retries: \(retries), startsSucceeded: \(startsSucceeded), policy: .\(policy))"
    }

    private static func caseName(_ hook: Hook) -> String {
        switch hook {
        case .confirmRollout: "confirmRollout"
        case .confirmTrafficIncrease: "confirmTrafficIncrease"
        case .confirmPromotion: "confirmPromotion"
        case .rollback: "rollback"
        case .postRollout: "postRollout"
        case .event: "event"
        }
    }
}

/// The guardrails a model run's canary is under, chosen by its namespace's prefix.
enum ModelPolicy: String, Sendable, CaseIterable {
    /// No rule.
    case none
    /// Traffic steps go on by themselves (`automatic: true`) until a person closes the gate.
    case automaticTraffic
    /// Promotion needs two of alice, bob and carol (`approvals: {count: 2, from: …}`).
    case twoApprovers

    /// The prefix of the namespaces the rule selects.
    var prefix: String {
        switch self {
        case .none: "m"
        case .automaticTraffic: "pa"
        case .twoApprovers: "pt"
        }
    }

    /// The policy file the model's service runs with: the rules the model's expectations follow,
    /// and dry-run rules over every canary, which must change no answer.
    static let file = """
        rules:
          - name: model-automatic-traffic
            canaries: {namespaces: ["pa-*"]}
            gates: [traffic]
            automatic: true
          - name: model-two-approvers
            canaries: {namespaces: ["pt-*"]}
            gates: [promotion]
            approvals: {count: 2, from: [alice, bob, carol]}
          # Dry runs over every canary: whatever they would hold, no answer may change.
          - name: model-dry-ceiling
            maxWeight: 10
            enforce: false
          - name: model-dry-two-others
            gates: [rollout, traffic, promotion]
            approvals: {count: 2, from: [zoe, yann]}
            enforce: false
          - name: model-dry-first-rollout
            firstRollout: {approvals: 1}
            enforce: false
        """
}

/// Flagger's canary phases (pkg/apis/flagger/v1beta1/status.go).
enum FlaggerPhase: String, Sendable {
    case initialized = "Initialized"
    case waiting = "Waiting"
    case progressing = "Progressing"
    case waitingPromotion = "WaitingPromotion"
    case promoting = "Promoting"
    case finalising = "Finalising"
    case succeeded = "Succeeded"
    case failed = "Failed"
}

/// One POST Flagger makes to Gatehouse.
struct FlaggerCall: Sendable {
    var hook: CanarySpec.Hook
    var phase: FlaggerPhase
    /// The revision whose checksum the call carries ("r3").
    var revision: Int
    var eventMessage: String?
    var eventType: String?

    var checksum: String { "r\(revision)" }

    /// The JSON body, as `CallWebhook` and `CallEventWebhook` build it (webhook.go:106-150).
    func body(namespace: String, name: String, timestamp: Int) -> String {
        var object: [String: Any] = [
            "name": name, "namespace": namespace, "phase": phase.rawValue, "checksum": checksum,
        ]
        if let eventMessage {
            object["metadata"] = [
                "eventMessage": eventMessage, "eventType": eventType ?? "Normal", "timestamp": String(timestamp),
            ]
        }
        let data = try! JSONSerialization.data(withJSONObject: object, options: .sortedKeys)
        return String(decoding: data, as: UTF8.self)
    }
}

/// What Flagger concluded from a gate call: passed (200-202) or not, and whether it saw the answer at all.
struct GateOutcome: Sendable {
    /// Gatehouse's status code for the last attempt.
    var status: Int
    /// Whether Flagger went on as if the gate passed.
    var passed: Bool
    /// Whether an answer was lost on the way back (Flagger saw a connection error instead).
    var lostAnswer: Bool
}

/// What the model reports as it goes, so that the run can check invariants against the truth.
protocol FlaggerObserver: AnyObject {
    /// A gate hook was called, and Flagger went on as `outcome` says.
    func gateCalled(_ call: FlaggerCall, outcome: GateOutcome)
    /// A rollout started: the status was synced to `Progressing` for a new revision (scheduler.go:904-930),
    /// or, with `restarted`, the revision changed during analysis (scheduler.go:328-357).
    func rolloutStarted(revision: Int, restarted: Bool)
    /// Flagger promoted: the final promotion check passed and the phase became `Promoting`.
    func promoted()
    /// The rollout ended with `phase` (`Succeeded` or `Failed`); `reported` tells whether a
    /// post-rollout call or an end event reached Gatehouse.
    func rolloutEnded(_ phase: FlaggerPhase, reported: Bool)
}

/// Flagger's scheduler for one canary: its status, and one `tick` per analysis interval.
final class FlaggerModel {
    let spec: CanarySpec
    /// The revision the user last applied (the Deployment's spec).
    var applied: Int
    /// The canary's status (pkg/apis/flagger/v1beta1/status.go).
    private(set) var phase: FlaggerPhase
    private(set) var lastApplied: Int
    private(set) var canaryWeight = 0
    private(set) var iterations = 0
    private(set) var failedChecks = 0
    /// Whether the metrics analysis passes this tick.
    var healthy = true
    /// The Canary's `skipAnalysis`, which its owner may change between releases.
    var skipAnalysis: Bool
    /// Gate answers to lose on the way back, one each: the next gate calls see a connection error.
    var answersToLose = 0
    /// Sends one call; returns Gatehouse's status code.
    private let send: (FlaggerCall) async throws -> Int
    weak var observer: (any FlaggerObserver)?
    /// Why the last tick stopped, for people deciding what to approve: the gate refused, if one was.
    private(set) var lastRefused: CanarySpec.Hook?

    init(spec: CanarySpec, send: @escaping (FlaggerCall) async throws -> Int) {
        self.spec = spec
        self.send = send
        phase = spec.startsSucceeded ? .succeeded : .initialized
        skipAnalysis = spec.skipAnalysis
        applied = 0
        lastApplied = 0
    }

    /// Whether a rollout is under way (after the status was synced to `Progressing`).
    var isInProgress: Bool { [.progressing, .waitingPromotion, .promoting, .finalising].contains(phase) }

    /// One run of `advanceCanary` (scheduler.go:158-555) for this canary.
    func tick() async throws {
        lastRefused = nil
        let started = phase
        // shouldAdvance (scheduler.go:852-884): a canary at rest advances only for a new revision; a
        // Failed one first syncs lastAppliedSpec (863), so its calls carry the new checksum.
        if ![.progressing, .waiting, .waitingPromotion, .promoting, .finalising].contains(started) {
            let before = lastApplied
            if started == .failed { lastApplied = applied }
            guard applied != before else { return }
        }
        // checkCanaryStatus (886-932): confirm-rollout before a rollout starts.
        if ![.progressing, .waitingPromotion, .promoting, .finalising].contains(started) {
            if spec.hooks.contains(.confirmRollout) {
                let outcome = try await gate(.confirmRollout, phase: started)
                guard outcome.passed else {
                    // scheduler_hooks.go:49-54: the first refusal sets Waiting and sends one event.
                    if started != .waiting {
                        phase = .waiting
                        try await event(
                            "Halt podinfo.test advancement waiting for approval gatehouse-rollout", .warning,
                            phase: started)
                    }
                    return
                }
                try await event("Confirm-rollout check gatehouse-rollout passed", phase: started)
            }
            // The event is sent from a copy set to Progressing, before the status sync (908-930).
            try await event("New revision detected! Scaling up podinfo.test", phase: .progressing)
            sync(to: .progressing)
            observer?.rolloutStarted(revision: lastApplied, restarted: false)
            return
        }
        // hasCanaryRevisionChanged (328-357): a new revision during analysis restarts it.
        if [.progressing, .waitingPromotion].contains(started) && applied != lastApplied {
            try await event("New revision detected! Restarting analysis for podinfo.test", phase: started)
            sync(to: .progressing)
            observer?.rolloutStarted(revision: lastApplied, restarted: true)
            return
        }
        // shouldSkipAnalysis (364, 767-850): promote at once, no gate but the rollout's.
        if skipAnalysis {
            try await event("Copying podinfo.test template spec to podinfo-primary.test", phase: started)
            phase = .succeeded
            observer?.promoted()
            let reported = try await postRollout(.succeeded, eventPhase: .succeeded)
            let announced = try await event(
                "Promotion completed! Canary analysis was skipped for podinfo.test", phase: .succeeded)
            observer?.rolloutEnded(.succeeded, reported: reported || announced)
            return
        }
        // The rollback hook comes first in every tick while Progressing or WaitingPromotion (369-379).
        if [.progressing, .waitingPromotion].contains(started), spec.hooks.contains(.rollback) {
            let outcome = try await gate(.rollback, phase: started)
            if outcome.passed {
                try await event("Rollback check gatehouse-rollback passed", .warning, phase: started)
                try await event("Rolling back podinfo.test manual webhook invoked", .warning, phase: started)
                try await rollBack(from: started)
                return
            }
            try await event("Rollback hook gatehouse-rollback not signaling a rollback", phase: started)
        }
        if started == .promoting {  // runPromotionTrafficShift (381-391, 557-563)
            try await event("Routing all traffic to primary", phase: started)
            phase = .finalising
            return
        }
        if started == .finalising {  // 393-428
            phase = .succeeded
            let reported = try await postRollout(.succeeded, eventPhase: .succeeded)
            let announced = try await event("Promotion completed! Scaling down podinfo.test", phase: .succeeded)
            observer?.rolloutEnded(.succeeded, reported: reported || announced)
            return
        }
        if failedChecks >= spec.threshold {  // 430-440
            try await rollBack(from: started)
            return
        }
        if canaryWeight == 0 && iterations == 0 {  // 449-459: pre-rollout hooks, no analysis
            try await event("Starting canary analysis for podinfo.test", phase: started)
        } else if !healthy {  // 460-466: a failed analysis ends the tick
            try await event("Halt podinfo.test advancement success rate 91.20% < 99%", .warning, phase: started)
            failedChecks += 1
            return
        }
        switch spec.strategy {
        case .abTesting(let total):  // runAB (639-680)
            if total > iterations {
                iterations += 1
                try await event("Advance podinfo.test canary iteration \(iterations)/\(total)", phase: started)
                return
            }
            guard try await confirmPromotion(started: started, iterationsAfterRefusal: total - 1) else { return }
            if total == iterations { try await promote(started: started) }
        case .blueGreen(let total, let mirror):  // runBlueGreen (682-748)
            if total > iterations {
                iterations += 1
                try await event("Advance podinfo.test canary iteration \(iterations)/\(total)", phase: started)
                return
            }
            guard try await confirmPromotion(started: started, iterationsAfterRefusal: total - 1) else { return }
            if total == iterations {
                // The first pass only routes all traffic to the canary; promotion is asked again next tick.
                try await event(
                    mirror ? "Stop traffic mirroring and route all traffic to canary" : "Routing all traffic to canary",
                    phase: started)
                iterations += 1
                return
            }
            try await promote(started: started)
        case .canary:  // 493-505, runCanary (565-637)
            if ![.promoting, .waitingPromotion, .finalising].contains(started),
                spec.hooks.contains(.confirmTrafficIncrease)
            {
                let outcome = try await gate(.confirmTrafficIncrease, phase: .progressing)
                guard outcome.passed else {
                    try await event(
                        "Halt podinfo.test advancement waiting for traffic increase approval gatehouse-traffic",
                        .warning, phase: started)
                    return
                }
                try await event("Confirm-traffic-increase check gatehouse-traffic passed", phase: started)
            }
            if canaryWeight < maxWeight {
                canaryWeight = min(100, canaryWeight + nextStepWeight)
                try await event("Advance podinfo.test canary weight \(canaryWeight)", phase: started)
                return
            }
            guard try await confirmPromotion(started: started, iterationsAfterRefusal: -1) else { return }
            try await promote(started: started)
        }
    }

    /// maxWeight (scheduler.go:41-52).
    private var maxWeight: Int {
        guard case .canary(_, let steps, let max) = spec.strategy else { return 100 }
        if let last = steps.last { return min(100, last) }
        return max > 0 ? max : 100
    }

    /// nextStepWeight (scheduler.go:58-89).
    private var nextStepWeight: Int {
        guard case .canary(let step, let steps, _) = spec.strategy else { return 0 }
        if step > 0 || steps.isEmpty { return step }
        let maxStep = 100 - canaryWeight
        if maxStep == 0 { return 1 }
        if canaryWeight == 0 { return min(maxStep, steps[0]) }
        for index in 0..<(steps.count - 1) where steps[index] == canaryWeight {
            return min(maxStep, steps[index + 1] - canaryWeight)
        }
        return maxStep
    }

    /// runConfirmPromotionHooks (scheduler_hooks.go:67-93): a refusal sets WaitingPromotion once,
    /// then each later refusal sets the iterations back by one.
    private func confirmPromotion(started: FlaggerPhase, iterationsAfterRefusal: Int) async throws -> Bool {
        guard spec.hooks.contains(.confirmPromotion) else { return true }
        let outcome = try await gate(.confirmPromotion, phase: .progressing)
        guard outcome.passed else {
            if started != .waitingPromotion {
                phase = .waitingPromotion
                try await event(
                    "Halt podinfo.test advancement waiting for promotion approval gatehouse-promotion", .warning,
                    phase: started)
            } else {
                iterations = iterationsAfterRefusal
            }
            return false
        }
        try await event("Confirm-promotion check gatehouse-promotion passed", phase: started)
        return true
    }

    /// Copies the canary's spec to the primary and sets Promoting (scheduler.go:623-636).
    private func promote(started: FlaggerPhase) async throws {
        try await event("Copying podinfo.test template spec to podinfo-primary.test", phase: started)
        phase = .promoting
        observer?.promoted()
    }

    /// rollback (scheduler.go:948-998): the in-memory canary keeps the tick's phase and checksum.
    private func rollBack(from started: FlaggerPhase) async throws {
        if failedChecks >= spec.threshold {
            try await event(
                "Rolling back podinfo.test failed checks threshold reached \(failedChecks)", .warning, phase: started)
        }
        let announced = try await event("Canary failed! Scaling down podinfo.test", .warning, phase: .failed)
        let revision = lastApplied
        sync(to: .failed)
        let reported = try await postRollout(.failed, eventPhase: started, revision: revision)
        observer?.rolloutEnded(.failed, reported: reported || announced)
    }

    /// SyncStatus (pkg/canary/status.go:32-70): phase, counters reset, lastAppliedSpec = the spec applied now.
    private func sync(to newPhase: FlaggerPhase) {
        phase = newPhase
        canaryWeight = 0
        iterations = 0
        failedChecks = 0
        lastApplied = applied
    }

    /// runPostRolloutHooks (scheduler_hooks.go:111-124); returns whether Gatehouse was told.
    @discardableResult
    private func postRollout(_ result: FlaggerPhase, eventPhase: FlaggerPhase, revision: Int? = nil) async throws
        -> Bool
    {
        guard spec.hooks.contains(.postRollout) else { return false }
        let call = FlaggerCall(hook: .postRollout, phase: result, revision: revision ?? lastApplied)
        let status = try await send(call)
        try await event("Post-rollout check notify passed", phase: eventPhase, revision: revision)
        return (200...202).contains(status)
    }

    private enum EventType: String {
        case normal = "Normal"
        case warning = "Warning"
    }

    /// sendEventToWebhook (events.go:44-66): the Canary's event hook, or else the global one. Returns
    /// whether Gatehouse was told.
    @discardableResult
    private func event(
        _ message: String, _ type: EventType = .normal, phase eventPhase: FlaggerPhase, revision: Int? = nil
    ) async throws -> Bool {
        guard spec.sendsEvents else { return false }
        let call = FlaggerCall(
            hook: .event, phase: eventPhase, revision: revision ?? lastApplied, eventMessage: message,
            eventType: type.rawValue)
        return (200...202).contains(try await send(call))
    }

    /// CallWebhook (webhook.go:49-122) with go-retryablehttp: connection errors, 429 and 5xx but 501 are
    /// retried `retries` times; only 200-202 pass (webhook.go:86-88).
    private func gate(_ hook: CanarySpec.Hook, phase callPhase: FlaggerPhase) async throws -> GateOutcome {
        let call = FlaggerCall(hook: hook, phase: callPhase, revision: lastApplied)
        var attempt = 0
        while true {
            let status = try await send(call)
            let lost = answersToLose > 0
            if lost { answersToLose -= 1 }
            let retryable = lost || status == 429 || (status >= 500 && status != 501)
            let retries = retryable && attempt < spec.retries
            let outcome = GateOutcome(
                status: status, passed: !retries && !lost && (200...202).contains(status), lostAnswer: lost)
            // Every attempt reached Gatehouse, which answered it: each is reported.
            observer?.gateCalled(call, outcome: outcome)
            if retries {
                attempt += 1
                continue
            }
            if !outcome.passed { lastRefused = hook }
            return outcome
        }
    }
}
