import Foundation
import GatehouseCore
import Testing

@Suite("Gate rules", .timeLimit(.minutes(3)))
struct DecisionTests {
    let canary = try! CanaryID(namespace: "test", name: "podinfo")
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func check(_ gate: GateKind, _ checksum: Revision, on state: Gate, freeze: Freeze? = nil, at time: Date? = nil)
        -> Decision
    {
        Decision(
            for: Check(canary: canary, gate: gate, checksum: checksum), gate: state, freeze: freeze, at: time ?? now)
    }

    func opened(_ kind: GateKind, _ request: OpenRequest = OpenRequest()) -> Gate {
        var gate = Gate.closed(kind)
        _ = gate.open(request, actor: "alice", at: now)
        return gate
    }

    @Test("every gate is closed until someone opens it", arguments: GateKind.allCases)
    func closedByDefault(kind: GateKind) {
        let decision = check(kind, "c1", on: .closed(kind))
        #expect(!decision.isApproved)
        #expect(decision.facts.map(\.action) == [.refused])
    }

    @Test("the refusal says how to open the gate", arguments: [GateKind.rollout, .traffic, .promotion])
    func refusalSentence(kind: GateKind) {
        let decision = check(kind, "c1", on: .closed(kind))
        #expect(
            decision.message
                == "\(kind.rawValue) gate of test/podinfo is closed; open it with: gatehouse open \(kind.rawValue) podinfo -n test"
        )
    }

    @Test("a once-gate binds to the first checksum and keeps passing it", arguments: GateKind.allCases)
    func onceBinds(kind: GateKind) {
        let first = check(kind, "c1", on: opened(kind))
        #expect(first.isApproved)
        #expect(first.gate.boundChecksum == "c1")
        #expect(first.facts.map(\.action) == [.bound, .approved])
        let again = check(kind, "c1", on: first.gate)
        #expect(again.isApproved)
        #expect(!again.changes(first.gate), "a repeated check must not need a write")
    }

    @Test("another checksum finds a once-gate closed, and the gate closes itself", arguments: GateKind.allCases)
    func onceResets(kind: GateKind) {
        let first = check(kind, "c1", on: opened(kind))
        let next = check(kind, "c2", on: first.gate)
        #expect(!next.isApproved)
        #expect(!next.gate.isOpen)
        #expect(next.facts.map(\.action) == [.reset, .refused])
    }

    @Test("a sticky gate passes every rollout until closed", arguments: GateKind.allCases)
    func sticky(kind: GateKind) {
        var gate = opened(kind, OpenRequest(isSticky: true))
        for checksum: Revision in ["c1", "c2", "c3"] {
            let decision = check(kind, checksum, on: gate)
            #expect(decision.isApproved)
            #expect(decision.gate.boundChecksum == nil)
            gate = decision.gate
        }
    }

    @Test("an expired gate is closed and the expiry is recorded", arguments: GateKind.allCases)
    func expiry(kind: GateKind) {
        let gate = opened(kind, OpenRequest(expiresAt: now.addingTimeInterval(60), isSticky: true))
        #expect(check(kind, "c1", on: gate, at: now.addingTimeInterval(59)).isApproved)
        let late = check(kind, "c1", on: gate, at: now.addingTimeInterval(60))
        #expect(!late.isApproved)
        #expect(late.message.contains("expired") || kind == .rollback)
        #expect(late.facts.first?.action == .expired)
    }

    @Test("traffic steps pass that many checks, then the gate closes")
    func steps() {
        var gate = opened(.traffic, OpenRequest(steps: 3))
        for left in [2, 1, 0] {
            let decision = check(.traffic, "c1", on: gate)
            #expect(decision.isApproved)
            #expect(decision.gate.remainingSteps == (left == 0 ? nil : left))
            #expect(decision.gate.isOpen == (left > 0))
            gate = decision.gate
        }
        #expect(!check(.traffic, "c1", on: gate).isApproved)
    }

    @Test("a freeze refuses every gate but rollback, whatever its state", arguments: GateKind.allCases)
    func freeze(kind: GateKind) {
        let freeze = Freeze(id: 7, namespace: "test", reason: "black friday", actor: "bob", createdAt: now)
        let decision = check(kind, "c1", on: opened(kind, OpenRequest(isSticky: true)), freeze: freeze)
        if kind == .rollback {
            #expect(decision.isApproved)
        } else {
            #expect(!decision.isApproved)
            #expect(decision.message.contains("black friday"))
            #expect(decision.message.contains("gatehouse unfreeze 7"))
        }
    }

    @Test("a freeze of another namespace, a lifted or an ended freeze does not apply")
    func freezeScope() throws {
        let canary = try CanaryID(namespace: "test", name: "podinfo")
        let other = Freeze(id: 1, namespace: "prod", reason: "r", actor: "a", createdAt: now)
        let lifted = Freeze(id: 2, namespace: nil, reason: "r", actor: "a", createdAt: now, liftedAt: now)
        let ended = Freeze(id: 3, namespace: nil, reason: "r", actor: "a", createdAt: now, endsAt: now)
        #expect(Freeze.applying(to: canary, among: [other, lifted, ended], at: now) == nil)
        let everything = Freeze(id: 4, namespace: nil, reason: "r", actor: "a", createdAt: now)
        #expect(Freeze.applying(to: canary, among: [other, everything], at: now)?.id == 4)
    }

    @Test("a freeze of one cluster holds that cluster's canaries only; one of no cluster holds every cluster's")
    func freezeOfACluster() throws {
        let inEU = try CanaryID(cluster: "eu-1", namespace: "test", name: "podinfo")
        let inUS = try CanaryID(cluster: "us-1", namespace: "test", name: "podinfo")
        let unnamed = try CanaryID(namespace: "test", name: "podinfo")
        let euOnly = Freeze(id: 1, cluster: "eu-1", namespace: nil, reason: "r", actor: "a", createdAt: now)
        #expect(Freeze.applying(to: inEU, among: [euOnly], at: now)?.id == 1)
        #expect(Freeze.applying(to: inUS, among: [euOnly], at: now) == nil)
        #expect(Freeze.applying(to: unnamed, among: [euOnly], at: now) == nil)
        #expect(euOnly.refusal.hasPrefix("deployments to every namespace of cluster eu-1 are frozen"))
        let testEverywhere = Freeze(id: 2, namespace: "test", reason: "r", actor: "a", createdAt: now)
        for canary in [inEU, inUS, unnamed] {
            #expect(Freeze.applying(to: canary, among: [testEverywhere], at: now)?.id == 2)
        }
    }

    @Test("repeated refusals are recorded once per rollout", arguments: GateKind.allCases)
    func firstRefusalOnly(kind: GateKind) {
        let first = check(kind, "c1", on: .closed(kind))
        let again = check(kind, "c1", on: first.gate)
        #expect(again.facts.isEmpty)
        #expect(!again.changes(first.gate))
        let nextRollout = check(kind, "c2", on: again.gate)
        #expect(nextRollout.facts.map(\.action) == [.refused])
    }

    @Test(
        "the end of a rollout closes once-gates opened before its last call, and keeps sticky and later ones",
        arguments: GateKind.allCases)
    func endOfRollout(kind: GateKind) {
        var once = opened(kind)
        #expect(once.endRollout(reason: "ended", openedBefore: now, checksum: "c1", at: now).map(\.action) == [.reset])
        #expect(!once.isOpen)
        var sticky = opened(kind, OpenRequest(isSticky: true))
        #expect(sticky.endRollout(reason: "ended", openedBefore: now, checksum: "c1", at: now).isEmpty)
        #expect(sticky.isOpen)
        var forNext = opened(kind)
        let lastCall = now.addingTimeInterval(-1)
        #expect(forNext.endRollout(reason: "ended", openedBefore: lastCall, checksum: "c1", at: now).isEmpty)
        #expect(forNext.isOpen)
    }

    @Test("gate names parse from the gate or the hook name")
    func gateNames() throws {
        #expect(try GateKind(userInput: "promotion") == .promotion)
        #expect(try GateKind(userInput: "confirm-traffic-increase") == .traffic)
        #expect(throws: InvalidInput.self) { try GateKind(userInput: "deploy") }
    }
}

@Suite("What a Flagger call tells of a canary", .timeLimit(.minutes(3)))
struct ObservationTests {
    @Test("a new phase, a new checksum or a second gone by is news; a repeat within the second is not")
    func news() throws {
        let now = Date()
        var canary = Canary(id: try CanaryID(namespace: "test", name: "podinfo"))
        #expect(canary.wouldObserve(phase: nil, checksum: nil, at: now), "never seen")
        canary.observe(phase: .progressing, checksum: "c1", at: now)
        #expect(!canary.wouldObserve(phase: .progressing, checksum: "c1", at: now.addingTimeInterval(0.5)))
        #expect(!canary.wouldObserve(phase: nil, checksum: nil, at: now.addingTimeInterval(0.5)))
        #expect(canary.wouldObserve(phase: .promoting, checksum: "c1", at: now.addingTimeInterval(0.5)))
        #expect(canary.wouldObserve(phase: .progressing, checksum: "c2", at: now.addingTimeInterval(0.5)))
        #expect(canary.wouldObserve(phase: .progressing, checksum: "c1", at: now.addingTimeInterval(1)))
    }
}
