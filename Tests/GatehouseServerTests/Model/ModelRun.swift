import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore

/// What people, CI and the cluster do between Flagger's ticks, and the ticks themselves.
enum Step: Sendable, Equatable, CustomStringConvertible {
    /// Flagger runs the canary once (one analysis interval).
    case tick
    /// Flagger restarts: the canary's job runs at once (pkg/controller/job.go:35), an extra tick.
    case restart
    /// A new revision of the workload is applied.
    case apply
    /// The metrics analysis passes (true) or fails (false) from now on.
    case metrics(healthy: Bool)
    /// The Canary's owner sets `skipAnalysis`.
    case skipAnalysis(Bool)
    /// The next gate answer is lost on the way back: Flagger sees a connection error.
    case loseNextAnswer
    /// Someone opens a gate on these terms.
    case open(Gate, Terms)
    /// Someone closes a gate.
    case close(Gate)
    /// Someone asks for a rollback.
    case rollback(force: Bool)
    /// Someone opens the gate Flagger was last refused at, for one rollout.
    case approveWaiting
    /// One of the people a two-approver rule names opens the promotion gate.
    case approvePromotion(by: Approver)
    /// Someone freezes the canary's namespace, or lifts that freeze.
    case freeze, unfreeze
    /// CI approves the rollout, the rest of its traffic checks and its promotion, then applies a revision.
    case preapprove

    /// The gates people open.
    enum Gate: String, Sendable, CaseIterable { case rollout, traffic, promotion }

    /// The people a two-approver rule counts.
    enum Approver: String, Sendable, CaseIterable { case alice, bob, carol }

    /// The terms of an opening.
    enum Terms: Sendable, Equatable, CustomStringConvertible {
        case once
        case sticky
        case ttl
        case expiresAt
        case steps(Int)
        case rest

        /// The body of the open request.
        func body(reason: String) -> String {
            switch self {
            case .once: #"{"reason": "\#(reason)"}"#
            case .sticky: #"{"reason": "\#(reason)", "sticky": true}"#
            case .ttl: #"{"reason": "\#(reason)", "ttl": "1h"}"#
            case .expiresAt:
                #"{"reason": "\#(reason)", "expiresAt": "\#(ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600)))"}"#
            case .steps(let count): #"{"reason": "\#(reason)", "steps": \#(count)}"#
            case .rest: #"{"reason": "\#(reason)", "steps": "rest"}"#
            }
        }

        var description: String {
            switch self {
            case .once: ".once"
            case .sticky: ".sticky"
            case .ttl: ".ttl"
            case .expiresAt: ".expiresAt"
            case .steps(let count): ".steps(\(count))"
            case .rest: ".rest"
            }
        }
    }

    var description: String {
        switch self {
        case .tick: ".tick"
        case .restart: ".restart"
        case .apply: ".apply"
        case .metrics(let healthy): ".metrics(healthy: \(healthy))"
        case .skipAnalysis(let skip): ".skipAnalysis(\(skip))"
        case .loseNextAnswer: ".loseNextAnswer"
        case .open(let gate, let terms): ".open(.\(gate.rawValue), \(terms))"
        case .close(let gate): ".close(.\(gate.rawValue))"
        case .rollback(let force): ".rollback(force: \(force))"
        case .approveWaiting: ".approveWaiting"
        case .approvePromotion(let person): ".approvePromotion(by: .\(person.rawValue))"
        case .freeze: ".freeze"
        case .unfreeze: ".unfreeze"
        case .preapprove: ".preapprove"
        }
    }
}

/// One replayable run: a Canary and what happens to it.
struct Scenario: Sendable, CustomStringConvertible {
    var spec: CanarySpec
    var steps: [Step]

    var description: String {
        "Scenario(\n    spec: \(spec),\n    steps: [\(steps.map(\.description).joined(separator: ", "))])"
    }
}

/// How a run reaches Gatehouse: one HTTP connection to the live server.
struct ModelConnection: Sendable {
    let client: TestClient

    func send(_ method: HTTPRequest.Method, _ path: String, _ body: String? = nil, actor: String? = nil)
        async throws -> (Int, String)
    {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let actor { headers[HTTPField.Name("X-Gatehouse-Actor")!] = actor }
        let response = try await client.execute(
            TestClient.Request(
                path, method: method, authority: "localhost", headers: headers,
                body: body.map { ByteBuffer(string: $0) }))
        return (response.status.code, response.body.map { String(buffer: $0) } ?? "")
    }
}

/// Plays one scenario against Gatehouse over HTTP and checks, call by call, the promises the product
/// makes (shared/DESIGN.md, "Trust and scale"), against what truly happened in the model of Flagger.
final class ModelRun: FlaggerObserver {
    let scenario: Scenario
    let namespace: String
    private let connection: ModelConnection
    private var flagger: FlaggerModel!
    /// Broken promises, each a sentence naming the step.
    private(set) var violations: [String] = []
    /// Every call and answer, for the report of a broken promise.
    private(set) var trace: [String] = []

    // The truth, as Flagger's status tells it.
    private var time = 0
    private var step = 0
    private var rolloutNumber = 0
    private var rollouts: [Int: RolloutTruth] = [:]
    private var approvals: [Step.Gate: Approval] = [:]
    private var rollbackRequest: RollbackRequest?
    private var refusedRollbacks: [(at: Int, rollout: Int, step: Int)] = []
    private var rollbackChecks: [(at: Int, rollout: Int)] = []
    private var freezeID: Int?
    private var admissionCallAt: Int?
    /// A person closed the traffic gate last (an automatic rule then holds it until someone opens it).
    private var trafficHeldByPerson = false
    private var approverTurn = 0
    private var gatehouseSawACall = false
    /// The revision the first rollback check of the rollout in progress carried.
    private var firstRevisionChecked: Int?

    /// What is true of one rollout (numbered in the order Flagger started them).
    struct RolloutTruth {
        var startedAt: Int
        /// When Gatehouse first saw a call of this rollout (its admission, or its first progress check).
        var seenAt: Int?
        /// When Gatehouse first saw a call carrying the rollout's present revision.
        var revisionSeenAt: Int?
        /// The revision changed during analysis and nobody has approved it yet (with a rollout hook).
        var heldSince: Int?
        var sawRollbackCheck = false
        var sawTrafficCheck = false
        /// When Gatehouse could tell Flagger promoted: a promotion pass after traffic checks (the
        /// progressive strategy promotes at its first pass), or the "Copying …" event.
        var promotionPassSeenAt: Int?
        var promotedAt: Int?
        var endedAt: Int?
        var endSeenAt: Int?
        /// A new revision replaced it during analysis (no rollout hook: a new rollout).
        var replaced = false
    }

    /// A person's open gate, as the truth attributes it.
    struct Approval {
        var at: Int
        var step: Int
        var sticky: Bool
        var steps: Int?
        /// The rollout it belongs to: the first that can still ask the gate when it is given.
        var rollout: Int
        /// Whether Gatehouse can know which rollout it belongs to (docs/flagger.md).
        var knowable: Bool
        var passes = 0
        /// A changed revision was approved with it (rollout gate), so it is spent.
        var spent = false
        /// The distinct people among a rule's approvers who have opened it since it was last closed.
        var approvers: Set<String> = []
    }

    struct RollbackRequest {
        var at: Int
        var step: Int
        /// The rollout in progress when it was asked, if any, and its revision then.
        var rollout: Int?
        /// Nil when Gatehouse had seen no call of the revision: it is the first the rollout's checks carry.
        var revision: Int?
        var knowable: Bool
        /// Forced before Gatehouse heard of any call of the canary, with nothing that tells it a
        /// rollout starts (no confirm-rollout, no events): it fires at the next rollback check.
        var isForAnyRollout: Bool
    }

    init(_ scenario: Scenario, namespace: String, connection: ModelConnection) {
        self.scenario = scenario
        self.namespace = namespace
        self.connection = connection
    }

    /// Plays every step; returns the broken promises.
    func play() async throws -> [String] {
        let namespace = namespace
        let connection = connection
        var timestamp = 1_763_762_400_000
        flagger = FlaggerModel(spec: scenario.spec) { [unowned self] call in
            timestamp += 5
            let (status, text) = try await connection.send(
                .post, call.hook.path, call.body(namespace: namespace, name: "podinfo", timestamp: timestamp))
            trace.append(
                "  step \(step): \(call.hook.rawValue) \(call.phase.rawValue) \(call.checksum)\(call.eventMessage.map { " \"\($0)\"" } ?? "") → \(status) \(call.hook == .event ? "" : text.prefix(160))"
            )
            return status
        }
        flagger.observer = self
        for (index, action) in scenario.steps.enumerated() {
            step = index
            trace.append("step \(index): \(action)")
            time += 1
            try await perform(action)
        }
        checkRefusedRollbacks()
        // Lift a freeze left in force, as its owner would: freezes of finished runs would pile up.
        if let id = freezeID { _ = try await connection.send(.delete, "/v1/freezes/\(id)") }
        return violations
    }

    private var current: RolloutTruth? {
        get { rollouts[rolloutNumber] }
        set { rollouts[rolloutNumber] = newValue }
    }

    private func violation(_ text: String) {
        violations.append("step \(step) (\(scenario.steps[step])): \(text)")
    }

    private func perform(_ action: Step) async throws {
        switch action {
        case .tick, .restart: try await flagger.tick()
        case .apply: flagger.applied += 1
        case .metrics(let healthy): flagger.healthy = healthy
        case .skipAnalysis(let skip): flagger.skipAnalysis = skip
        case .loseNextAnswer: flagger.answersToLose += 1
        case .open(let gate, let terms): try await open(gate, terms)
        case .close(let gate):
            let (status, text) = try await request(.post, gatePath(gate.rawValue, "close"), #"{}"#)
            expect(status == 200, "closing \(gate): \(status) \(text)")
            approvals[gate] = nil
            if gate == .traffic { trafficHeldByPerson = true }
        case .rollback(let force): try await requestRollback(force: force)
        case .approveWaiting:
            switch flagger.lastRefused {
            case .confirmRollout: try await open(.rollout, .once)
            case .confirmTrafficIncrease: try await open(.traffic, .once)
            case .confirmPromotion:
                if scenario.spec.policy == .twoApprovers {
                    try await open(.promotion, .once, by: nextApprover())
                } else {
                    try await open(.promotion, .once)
                }
            default: break
            }
        case .approvePromotion(let person): try await open(.promotion, .once, by: person)
        case .freeze:
            guard freezeID == nil else { return }
            let (status, text) = try await request(
                .post, "/v1/freezes", #"{"namespace": "\#(namespace)", "reason": "incident"}"#)
            expect(status == 200 || status == 201, "freezing: \(status) \(text)")
            freezeID = (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["id"] as? Int
        case .unfreeze:
            guard let id = freezeID else { return }
            let (status, text) = try await request(.delete, "/v1/freezes/\(id)")
            expect(status == 200, "lifting the freeze: \(status) \(text)")
            freezeID = nil
        case .preapprove:
            try await open(.rollout, .once)
            try await open(.traffic, .rest)
            try await open(.promotion, .once)
            flagger.applied += 1
        }
    }

    /// Sends a person's request (as `actor`, when named), and traces it.
    private func request(_ method: HTTPRequest.Method, _ path: String, _ body: String? = nil, actor: String? = nil)
        async throws -> (Int, String)
    {
        let (status, text) = try await connection.send(method, path, body, actor: actor)
        trace.append("  \(method) \(path) \(body ?? "") → \(status) \(text.prefix(200))")
        return (status, text)
    }

    private func expect(_ condition: Bool, _ text: @autoclosure () -> String) {
        if !condition { violation(text()) }
    }

    private func gatePath(_ gate: String, _ verb: String) -> String {
        "/v1/canaries/\(namespace)/podinfo/gates/\(gate)/\(verb)"
    }

    // MARK: People

    private func nextApprover() -> Step.Approver {
        defer { approverTurn += 1 }
        return Step.Approver.allCases[approverTurn % Step.Approver.allCases.count]
    }

    private func open(_ gate: Step.Gate, _ terms: Step.Terms, by person: Step.Approver? = nil) async throws {
        if gate != .traffic, case .steps = terms { return try await open(gate, .once, by: person) }
        if gate != .traffic, terms == .rest { return try await open(gate, .once, by: person) }
        let (status, text) = try await request(
            .post, gatePath(gate.rawValue, "open"), terms.body(reason: "step \(step)"), actor: person?.rawValue)
        let ruled = gate == .promotion && scenario.spec.policy == .twoApprovers
        if ruled && person == nil {
            // Someone the rule does not name: refused with a sentence, nothing changes.
            expect(status == 403, "an approval from outside the rule's approvers answered \(status) \(text)")
            return
        }
        expect(status == 200, "opening \(gate): \(status) \(text)")
        let steps: Int? = if case .steps(let count) = terms { count } else { nil }
        let belongs = belongsTo(gate)
        var approvers: Set<String> = person.map { [$0.rawValue] } ?? []
        if ruled, let earlier = approvals[gate], !earlier.spent, earlier.rollout == belongs,
            earlier.steps.map({ earlier.passes < $0 }) ?? true
        {
            approvers.formUnion(earlier.approvers)  // the gate was open: this approval adds to it
        }
        approvals[gate] = Approval(
            at: time, step: step, sticky: terms == .sticky, steps: steps, rollout: belongs,
            knowable: isKnowable(gate, belongingTo: belongs), approvers: approvers)
        if gate == .traffic { trafficHeldByPerson = false }
    }

    /// The rollout an approval of `gate` given now is for: the one in progress while it can still
    /// ask that gate, else the next.
    private func belongsTo(_ gate: Step.Gate) -> Int {
        guard flagger.isInProgress, let current else { return rolloutNumber + 1 }
        switch gate {
        case .rollout: return rolloutNumber + 1
        case .traffic, .promotion: return current.promotedAt == nil ? rolloutNumber : rolloutNumber + 1
        }
    }

    /// Whether Gatehouse can tell, from the calls it has seen, which rollout an approval given now is
    /// for (docs/flagger.md): an approval for the next rollout given after one that ended unseen (no
    /// report, no rollback check every tick, no promotion pass) may be taken for that one's, and closed.
    private func isKnowable(_ gate: Step.Gate, belongingTo rollout: Int) -> Bool {
        if gate == .rollout || rolloutNumber == 0 { return true }
        guard let previous = rollouts[rolloutNumber] else { return true }
        if rollout == rolloutNumber { return previous.seenAt != nil || isOverKnowably(rolloutNumber - 1) }
        return isOverKnowably(rolloutNumber)
    }

    /// Whether rollout `number` made no call Gatehouse saw before the next one replaced it: what was
    /// approved during it cannot be told from an approval for the next (docs/flagger.md).
    private func isInvisible(_ number: Int, before next: Int) -> Bool {
        number < next && (number..<next).allSatisfy { rollouts[$0]?.seenAt == nil }
    }

    private func isOverKnowably(_ number: Int) -> Bool {
        guard number > 0, let rollout = rollouts[number] else { return true }
        // A rollback check every tick dates the end only where a confirm-rollout starts the next rollout:
        // without one, the next revision's first check may follow a restart tick that made no call.
        let spec = scenario.spec
        let reportsEnd = spec.hooks.contains(.postRollout) || spec.sendsEvents
        // A rollout replaced by a new revision ends in a tick that makes no call (scheduler.go:328-357).
        return rollout.endSeenAt != nil || rollout.promotionPassSeenAt != nil
            || (rollout.sawRollbackCheck && !rollout.replaced && (spec.hooks.contains(.confirmRollout) || reportsEnd))
    }

    private func requestRollback(force: Bool) async throws {
        let (status, text) = try await request(
            .post, "/v1/canaries/\(namespace)/podinfo/rollback", #"{"reason": "step \#(step)", "force": \#(force)}"#)
        let inProgress = flagger.isInProgress ? rolloutNumber : nil
        let knowable = inProgress != nil && current?.revisionSeenAt != nil
        let spec = scenario.spec
        switch status {
        case 200:
            rollbackRequest = RollbackRequest(
                at: time, step: step, rollout: inProgress, revision: knowable ? flagger.lastApplied : nil,
                knowable: knowable,
                isForAnyRollout: force && !gatehouseSawACall && !spec.sendsEvents
                    && !spec.hooks.contains(.confirmRollout))
        case 409:
            expect(!force, "a forced rollback request was refused: \(text)")
            if let inProgress, knowable { refusedRollbacks.append((time, inProgress, step)) }
        default:
            violation("rollback request answered \(status) \(text)")
        }
    }

    /// A rollback refused while Flagger would still check one in that rollout broke a promise.
    private func checkRefusedRollbacks() {
        for refusal in refusedRollbacks
        where rollbackChecks.contains(where: { $0.rollout == refusal.rollout && $0.at > refusal.at }) {
            violations.append(
                "step \(refusal.step) (\(scenario.steps[refusal.step])): a rollback was refused (409) although Flagger checked rollback again in that rollout"
            )
        }
    }

    // MARK: Flagger's calls

    func rolloutStarted(revision: Int, restarted: Bool) {
        time += 1
        if restarted && scenario.spec.hooks.contains(.confirmRollout) {
            // The same rollout goes on with a revision nobody approved: held until someone does — when
            // Gatehouse saw a call of the replaced revision (checksums never name the revision released).
            if current?.revisionSeenAt != nil { current?.heldSince = time }
            current?.revisionSeenAt = nil
            return
        }
        if let previous = current, previous.endedAt == nil {
            rollouts[rolloutNumber]?.endedAt = time
            rollouts[rolloutNumber]?.replaced = restarted
            // "New revision detected! Restarting analysis" tells Gatehouse, when events reach it.
            if restarted && scenario.spec.sendsEvents { rollouts[rolloutNumber]?.endSeenAt = time }
        }
        rolloutNumber += 1
        // The admission is a call of the rollout, but its checksum is the last revision's (or, after
        // Failed, one applied during the hold may go out under it): no call has named the revision yet.
        // "New revision detected! Scaling up" tells Gatehouse a rollout starts, when events reach it.
        let admitted = restarted ? nil : admissionCallAt ?? (scenario.spec.sendsEvents ? time : nil)
        rollouts[rolloutNumber] = RolloutTruth(startedAt: time, seenAt: admitted)
        firstRevisionChecked = nil
        admissionCallAt = nil
    }

    func promoted() {
        time += 1
        current?.promotedAt = time
        // "Copying … template spec to …-primary" tells Gatehouse, when events reach it.
        if scenario.spec.sendsEvents, current?.promotionPassSeenAt == nil { current?.promotionPassSeenAt = time }
    }

    func rolloutEnded(_ phase: FlaggerPhase, reported: Bool) {
        time += 1
        current?.endedAt = time
        if reported { current?.endSeenAt = time }
    }

    func gateCalled(_ call: FlaggerCall, outcome: GateOutcome) {
        time += 1
        gatehouseSawACall = true
        let approved = (200...202).contains(outcome.status)
        switch call.hook {
        case .confirmRollout:
            if let last = current, last.endedAt != nil, last.endSeenAt == nil { current?.endSeenAt = time }
            if approved { admissionCallAt = time }
            gateAnswered(.rollout, in: rolloutNumber + 1, approved: approved, call: call)
        case .confirmTrafficIncrease, .confirmPromotion, .rollback:
            guard current != nil else { return violation("\(call.hook.rawValue) came outside a rollout") }
            if current?.seenAt == nil { current?.seenAt = time }
            if current?.revisionSeenAt == nil { current?.revisionSeenAt = time }
            switch call.hook {
            case .rollback:
                if current?.sawRollbackCheck != true { firstRevisionChecked = call.revision }
                current?.sawRollbackCheck = true
                rollbackChecks.append((time, rolloutNumber))
                rollbackAnswered(approved: approved, call: call)
            case .confirmTrafficIncrease:
                current?.sawTrafficCheck = true
                gateAnswered(.traffic, in: rolloutNumber, approved: approved, call: call)
            default:
                if approved, current?.sawTrafficCheck == true, current?.promotionPassSeenAt == nil {
                    current?.promotionPassSeenAt = time
                }
                gateAnswered(.promotion, in: rolloutNumber, approved: approved, call: call)
            }
        case .postRollout, .event: break
        }
        expect(
            outcome.lostAnswer || outcome.status == 200 || outcome.status == 403,
            "\(call.hook.rawValue) answered \(outcome.status)")
    }

    /// Checks a rollout, traffic or promotion answer against the approvals people gave.
    private func gateAnswered(_ gate: Step.Gate, in rollout: Int, approved: Bool, call: FlaggerCall) {
        let frozen = freezeID != nil
        var approval = approvals[gate]
        // A revision changed during analysis is approved through the rollout gate (DESIGN: "An unapproved revision").
        var held = false
        if gate != .rollout, current?.heldSince != nil {
            if let opened = approvals[.rollout],
                opened.sticky || (opened.at > (current?.startedAt ?? 0) && !opened.spent),
                opened.at < time
            {
                if !opened.sticky { approvals[.rollout]?.spent = true }
                current?.heldSince = nil
            } else {
                held = true
            }
        }
        let automatic = gate == .traffic && scenario.spec.policy == .automaticTraffic && !trafficHeldByPerson
        let enough =
            gate != .promotion || scenario.spec.policy != .twoApprovers || (approval?.approvers.count ?? 0) >= 2
        let inForce: Bool = {
            if automatic { return true }
            guard let approval, enough else { return false }
            if approval.sticky { return true }
            guard approval.rollout == rollout || isInvisible(approval.rollout, before: rollout), !approval.spent else {
                return false
            }
            return approval.steps.map { approval.passes < $0 } ?? true
        }()
        if approved {
            expect(!frozen, "\(call.hook.rawValue) of \(call.checksum) passed during a freeze")
            expect(!held, "\(call.hook.rawValue) of \(call.checksum) passed for a revision nobody approved")
            if automatic {
                if let given = approval, !given.sticky { approval?.passes += 1 }
            } else if let given = approval {
                expect(
                    inForce,
                    given.rollout != rollout
                        ? "\(call.hook.rawValue) of \(call.checksum) (rollout \(rollout)) passed with the approval given at step \(given.step) for rollout \(given.rollout)"
                        : "\(call.hook.rawValue) of \(call.checksum) passed more often than the \(given.steps ?? 0) steps approved at step \(given.step)"
                )
                if !given.sticky { approval?.passes += 1 }
            } else {
                violation("\(call.hook.rawValue) of \(call.checksum) passed with no approval in force")
            }
            approvals[gate] = approval
        } else if automatic, !frozen, !held {
            violation("\(call.hook.rawValue) of \(call.checksum) was refused although a rule opens it by itself")
        } else if let given = approval, inForce, !frozen, !held, given.sticky || given.knowable {
            violation(
                "\(call.hook.rawValue) of \(call.checksum) (rollout \(rollout)) was refused although approved at step \(given.step) for it"
            )
        }
    }

    /// Checks a rollback answer against the rollback people asked for.
    private func rollbackAnswered(approved: Bool, call: FlaggerCall) {
        let asked =
            rollbackRequest.map {
                $0.isForAnyRollout
                    || ($0.rollout == rolloutNumber && ($0.revision ?? firstRevisionChecked) == call.revision)
            } ?? false
        if approved {
            expect(
                asked,
                rollbackRequest.map {
                    "rollback fired in rollout \(rolloutNumber) for the request made at step \($0.step) \($0.rollout.map { "in rollout \($0)" } ?? "between rollouts")"
                } ?? "rollback fired with no request")
        } else if asked, let request = rollbackRequest, request.knowable, !request.isForAnyRollout {
            violation("the rollback asked at step \(request.step) for rollout \(rolloutNumber) did not fire")
        }
    }
}

/// Generates scenarios from a seed.
struct ScenarioGenerator {
    private var random: SplitMix64

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    mutating func next() -> Scenario {
        Scenario(spec: spec(), steps: steps())
    }

    private mutating func chance(_ percent: Int) -> Bool { random.next(upTo: 100) < percent }

    private mutating func pick<T>(_ options: [T]) -> T { options[random.next(upTo: options.count)] }

    private mutating func spec() -> CanarySpec {
        let strategy: CanarySpec.Strategy
        switch random.next(upTo: 10) {
        case 0...5:
            strategy =
                chance(70)
                ? .canary(stepWeight: pick([20, 25, 50]), stepWeights: [], maxWeight: pick([50, 60]))
                : .canary(stepWeight: 0, stepWeights: pick([[10, 50], [20, 40, 60]]), maxWeight: 0)
        case 6...7: strategy = .blueGreen(iterations: 1 + random.next(upTo: 3), mirror: chance(30))
        default: strategy = .abTesting(iterations: 1 + random.next(upTo: 3))
        }
        var hooks = Set<CanarySpec.Hook>()
        for hook in [CanarySpec.Hook.confirmRollout, .confirmTrafficIncrease, .confirmPromotion, .rollback]
        where chance(75) {
            hooks.insert(hook)
        }
        if hooks.isEmpty { hooks.insert(.confirmPromotion) }
        switch random.next(upTo: 4) {
        case 0: hooks.formUnion([.event, .postRollout])
        case 1: hooks.insert(.event)
        case 2: hooks.insert(.postRollout)
        default: break
        }
        let policy: ModelPolicy =
            switch random.next(upTo: 10) {
            case 0: .automaticTraffic
            case 1: .twoApprovers
            default: .none
            }
        return CanarySpec(
            strategy: strategy, skipAnalysis: chance(8), threshold: 1 + random.next(upTo: 3), hooks: hooks,
            globalEventWebhook: !hooks.contains(.event) && chance(25), retries: chance(25) ? 2 : 0,
            startsSucceeded: chance(80), policy: policy)
    }

    private mutating func steps() -> [Step] {
        var steps: [Step] = chance(85) ? [.apply] : []
        let length = 10 + random.next(upTo: 28)
        while steps.count < length {
            let roll = random.next(upTo: 100)
            switch roll {
            case 0..<44: steps.append(.tick)
            case 44..<58: steps.append(.approveWaiting)
            case 58..<66:
                let gate = pick(Step.Gate.allCases)
                let terms: Step.Terms =
                    gate == .traffic
                    ? pick([.once, .sticky, .ttl, .steps(1), .steps(2), .steps(3), .rest])
                    : pick([.once, .once, .sticky, .ttl, .expiresAt])
                steps.append(.open(gate, terms))
            case 66..<68: steps.append(.approvePromotion(by: pick(Step.Approver.allCases)))
            case 68..<72: steps.append(.close(pick(Step.Gate.allCases)))
            case 72..<77: steps.append(.rollback(force: chance(30)))
            case 77..<84: steps.append(.apply)
            case 84..<88: steps.append(.metrics(healthy: chance(50)))
            case 88..<91: steps.append(.loseNextAnswer)
            case 91..<92: steps.append(.restart)
            case 92..<93: steps.append(.skipAnalysis(chance(30)))
            case 93..<95: steps.append(chance(50) ? .freeze : .unfreeze)
            default: steps.append(.preapprove)
            }
        }
        return steps
    }
}

/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next(upTo bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
