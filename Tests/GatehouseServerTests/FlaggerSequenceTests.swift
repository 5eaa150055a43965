import Foundation
import GatehouseServer
import HTTPTypes
import HummingbirdTesting
import Testing

/// The calls Flagger makes for one canary, from `shared/fixtures/flagger-sequences.json` (read at
/// Flagger v1.44.0): notes, and each hook with its exact body and, for gate hooks, Flagger's answer.
struct FlaggerSequences: Sendable {
    struct Step: Sendable {
        var note: String?
        var hook: String?
        var body: String?
        /// For gate hooks: whether Flagger went on as if the gate passed.
        var passes: Bool?
    }

    /// Which of a Canary's webhooks point at Gatehouse.
    enum Hooks: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// Gate hooks, `post-rollout` and `event`: endings are reported at once.
        case all
        /// Gate hooks and `post-rollout`, no `event` hook.
        case withoutEvents
        /// Gate hooks only: an ending is inferred from the next `confirm-rollout`.
        case gatesOnly

        func sends(_ hook: String) -> Bool {
            switch self {
            case .all: true
            case .withoutEvents: hook != "event"
            case .gatesOnly: hook != "event" && hook != "post-rollout"
            }
        }

        var testDescription: String {
            switch self {
            case .all: "with event and post-rollout hooks"
            case .withoutEvents: "without an event hook"
            case .gatesOnly: "with gate hooks only"
            }
        }
    }

    /// The scenarios in the fixture's order; each starts where the one before it ended.
    static let order = [
        "promoted-with-manual-gates", "manual-rollback", "failed-analysis", "next-revision-after-failed",
        "preapproved-by-ci", "revision-changed-mid-analysis",
    ]

    let sequences: [String: [Step]]

    init() throws {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/flagger-sequences", withExtension: "json"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let sequences = try #require(object["sequences"] as? [String: [[String: Any]]])
        self.sequences = try sequences.mapValues { steps in
            try steps.map { step in
                if let note = step["note"] as? String { return Step(note: note) }
                let body = try JSONSerialization.data(withJSONObject: try #require(step["body"]), options: .sortedKeys)
                return Step(
                    hook: step["hook"] as? String, body: String(decoding: body, as: UTF8.self),
                    passes: (step["answer"] as? String).map { $0 == "pass" })
            }
        }
        #expect(Set(sequences.keys) == Set(Self.order))
    }

    /// Replays scenarios in order on one canary, with what people do in each one's notes.
    func replay(_ names: some Sequence<String>, on client: Client, hooks: Hooks) async throws {
        let person = Operator(client: client)
        for name in names {
            try await replay(name, on: client, hooks: hooks, actions: person.actions[name] ?? [:])
        }
    }

    /// Replays one scenario with the hooks `hooks` configures. A note that matches a key of
    /// `actions` runs that action (what people and CI do between ticks). Every gate answer must be
    /// the one the fixture records; returns the gate calls made, in order.
    @discardableResult
    func replay(
        _ name: String, on client: Client, hooks: Hooks,
        actions: [String: @Sendable () async throws -> Void] = [:]
    ) async throws -> [(hook: String, status: Int)] {
        var results: [(hook: String, status: Int)] = []
        for (index, step) in try #require(sequences[name]).enumerated() {
            if let note = step.note {
                for (key, action) in actions where note.contains(key) { try await action() }
                continue
            }
            let hook = try #require(step.hook)
            guard hooks.sends(hook) else { continue }
            let path = hook == "event" ? "/v1/flagger/events" : "/v1/flagger/\(hook)"
            let reply = try await client.post(path, step.body)
            if let passes = step.passes {
                #expect(
                    reply.status.code == (passes ? 200 : 403),
                    "\(name) step \(index): \(hook) \(step.body ?? "") answered \(reply.status.code) \(reply.text)")
                results.append((hook, reply.status.code))
            } else {
                // Flagger counts only 200-202 as success for event and post-rollout.
                #expect((200...202).contains(reply.status.code), "\(name) step \(index): \(hook) must pass")
            }
        }
        return results
    }
}

/// What people and CI do in the fixture's notes, through the operator API.
struct Operator: Sendable {
    let client: Client

    func open(_ gate: String, _ body: String = "") async throws {
        let reply = try await client.post("/v1/canaries/test/podinfo/gates/\(gate)/open", body)
        #expect(reply.status == .ok, "opening \(gate): \(reply.text)")
    }

    func gateState(_ gate: String) async throws -> String? {
        let reply = try await client.get("/v1/canaries/test/podinfo")
        if reply.status == .notFound { return "closed" }  // a canary nobody has touched
        let canary = try reply.json()
        let gates = try #require(canary["gates"] as? [String: [String: Any]])
        return gates[gate]?["state"] as? String
    }

    func expectClosed(_ gates: [String], _ comment: Comment) async throws {
        for gate in gates {
            #expect(try await gateState(gate) == "closed", "\(gate): \(comment)")
        }
    }

    /// Audit entries of the canary, oldest first, as "gate action actor checksum".
    func audit() async throws -> [[String: Any]] {
        var entries: [[String: Any]] = []
        var before: Int?
        repeat {
            let page = try await client.get(
                "/v1/canaries/test/podinfo/events?limit=500\(before.map { "&before=\($0)" } ?? "")"
            ).json()
            entries += try #require(page["events"] as? [[String: Any]])
            before = page["next"] as? Int
        } while before != nil
        return entries.reversed()
    }

    /// The actions each scenario's notes describe.
    var actions: [String: [String: @Sendable () async throws -> Void]] {
        [
            "promoted-with-manual-gates": [
                "every gate is closed": {
                    try await expectClosed(["rollout", "traffic", "promotion", "rollback"], "nothing is open yet")
                },
                "someone opens the rollout gate": { try await open("rollout", #"{"reason": "release 1.2"}"#) },
                "someone approves 3 traffic steps": { try await open("traffic", #"{"steps": 3}"#) },
                "1 more traffic step": { try await open("traffic", #"{"steps": 1}"#) },
                "someone opens the promotion gate": { try await open("promotion") },
            ],
            "manual-rollback": [
                "rollout gate open for one rollout, traffic gate open (sticky)": {
                    try await open("rollout")
                    try await open("traffic", #"{"sticky": true}"#)
                },
                "someone requests a rollback": {
                    let reply = try await client.post("/v1/canaries/test/podinfo/rollback", #"{"reason": "errors"}"#)
                    #expect(reply.status == .ok, "rollback request: \(reply.text)")
                },
            ],
            "failed-analysis": [
                "rollout gate open for one rollout, traffic gate open (sticky)": {
                    try await open("rollout")
                    try await open("traffic", #"{"sticky": true}"#)
                }
            ],
            "next-revision-after-failed": [
                "rollout gate closed; traffic gate open (sticky); promotion gate open": {
                    try await open("traffic", #"{"sticky": true}"#)
                    try await open("promotion")
                },
                "someone opens the rollout gate": { try await open("rollout") },
            ],
            "preapproved-by-ci": [
                "CI, before Flagger sees rev5": {
                    try await open("rollout", #"{"reason": "CI pipeline 812"}"#)
                    try await open("traffic", #"{"steps": 4, "reason": "CI pipeline 812"}"#)
                    try await open("promotion", #"{"reason": "CI pipeline 812"}"#)
                }
            ],
            "revision-changed-mid-analysis": [
                "rollout gate open for one rollout, traffic gate open (sticky), promotion gate open": {
                    try await open("rollout")
                    try await open("traffic", #"{"sticky": true}"#)
                    try await open("promotion")
                },
                "someone approves rev7": { try await open("rollout", #"{"reason": "rev7 is fine"}"#) },
            ],
        ]
    }
}

@Suite("Flagger's call sequences end to end over live HTTP", .timeLimit(.minutes(3)))
struct FlaggerSequenceTests {
    @Test(
        "six rollouts in a row get the answers Flagger's sequences assume",
        arguments: FlaggerSequences.Hooks.allCases)
    func sixRolloutsInARow(hooks: FlaggerSequences.Hooks) async throws {
        let fixtures = try FlaggerSequences()
        try await TestServer().run(.live) { client in
            try await fixtures.replay(FlaggerSequences.order, on: client, hooks: hooks)
        }
    }

    @Test(
        "each scenario on its own canary history gets the answers Flagger's sequences assume",
        arguments: FlaggerSequences.order, FlaggerSequences.Hooks.allCases)
    func scenarioAlone(name: String, hooks: FlaggerSequences.Hooks) async throws {
        let fixtures = try FlaggerSequences()
        try await TestServer().run(.live) { client in
            try await fixtures.replay([name], on: client, hooks: hooks)
        }
    }

    @Test(
        "a CI pre-approval survives its own Confirm-rollout check passed event",
        arguments: FlaggerSequences.Hooks.allCases)
    func preApprovalSurvivesItsOwnEvents(hooks: FlaggerSequences.Hooks) async throws {
        let fixtures = try FlaggerSequences()
        try await TestServer().run(.live) { client in
            let person = Operator(client: client)
            try await fixtures.replay(FlaggerSequences.order.prefix(4), on: client, hooks: hooks)
            let start = try await person.audit().count
            try await fixtures.replay(
                "preapproved-by-ci", on: client, hooks: hooks, actions: person.actions["preapproved-by-ci"] ?? [:])
            let entries = try await person.audit().dropFirst(start)
            // Nothing CI opened was reset before the rollout's own end: every step was used by Flagger.
            let consumed = entries.filter { $0["action"] as? String == "consumed" }
            #expect(consumed.count == 4)
            #expect(consumed.allSatisfy { $0["checksum"] as? String == "rev5" })
            let resets = entries.filter { $0["action"] as? String == "reset" }
            if hooks == .gatesOnly {
                #expect(resets.isEmpty, "no end is reported, and the next confirm-rollout has not come yet")
            } else {
                // The end (post-rollout, then "Promotion completed!") closes what the rollout used, once.
                #expect(Set(resets.compactMap { $0["gate"] as? String }) == ["rollout", "promotion"])
                #expect(resets.allSatisfy { $0["reason"] as? String == "rollout ended: Succeeded" })
            }
        }
    }

    @Test(
        "a revision changed during analysis is held at traffic until someone approves it",
        arguments: FlaggerSequences.Hooks.allCases)
    func changedRevisionIsHeld(hooks: FlaggerSequences.Hooks) async throws {
        let fixtures = try FlaggerSequences()
        try await TestServer().run(.live) { client in
            let person = Operator(client: client)
            var actions = person.actions["revision-changed-mid-analysis"] ?? [:]
            actions["someone approves rev7"] = {
                let held = try await client.get("/v1/canaries/test/podinfo").json()
                let rollout = try #require(held["rollout"] as? [String: Any])
                #expect(rollout["unapprovedRevision"] as? String == "rev7")
                #expect((rollout["held"] as? String)?.contains("without passing the rollout gate") == true)
                let refusal = try await client.hook("confirm-traffic-increase", checksum: "rev7")
                #expect(refusal.status == .forbidden)
                #expect(refusal.text.contains("gatehouse open rollout podinfo -n test"))
                try await person.open("rollout", #"{"reason": "rev7 is fine"}"#)
            }
            try await fixtures.replay("revision-changed-mid-analysis", on: client, hooks: hooks, actions: actions)
            let entries = try await person.audit()
            let held = try #require(entries.first { $0["action"] as? String == "held" })
            #expect(held["checksum"] as? String == "rev7")
            #expect(
                entries.contains {
                    $0["gate"] as? String == "rollout" && $0["action"] as? String == "bound"
                        && $0["checksum"] as? String == "rev7"
                })
        }
    }

    @Test("a rollback asked after promotion passed is refused, and a forced one never fires on the next release")
    func lateRollback() async throws {
        let fixtures = try FlaggerSequences()
        try await TestServer().run(.live) { client in
            let person = Operator(client: client)
            try await fixtures.replay(
                "promoted-with-manual-gates", on: client, hooks: .gatesOnly,
                actions: person.actions["promoted-with-manual-gates"] ?? [:])
            let late = try await client.post("/v1/canaries/test/podinfo/rollback", #"{"reason": "too late"}"#)
            #expect(late.status == .conflict)
            let message = try #require(try late.json()["message"] as? String)
            #expect(message.contains("promoted"))
            #expect(message.contains("--force"))

            // The next revision: a rollback asked now could only fire on it, so nothing was opened.
            #expect(try await client.hook("confirm-rollout", checksum: "rev1", phase: "Succeeded").status == .forbidden)
            try await person.open("rollout")
            #expect(try await client.hook("confirm-rollout", checksum: "rev1", phase: "Succeeded").status == .ok)
            #expect(try await client.hook("rollback", checksum: "rev2").status == .forbidden)
        }
    }

    @Test("a rollback request belongs to its rollout: one still open when the next begins does not fire")
    func rollbackBelongsToItsRollout() async throws {
        try await TestServer().run(.live) { client in
            let person = Operator(client: client)
            try await person.open("rollout")
            try await person.open("traffic", #"{"sticky": true}"#)
            #expect(try await client.hook("confirm-rollout", checksum: "rev1", phase: "Succeeded").status == .ok)
            #expect(try await client.hook("rollback", checksum: "rev2").status == .forbidden)
            let request = try await client.post("/v1/canaries/test/podinfo/rollback", #"{"reason": "errors"}"#)
            #expect(request.status == .ok)
            let gates = try #require(try request.json()["gates"] as? [String: [String: Any]])
            #expect(gates["rollback"]?["boundChecksum"] as? String == "rev2")
            // A check of another revision (the canary was promoted and replaced meanwhile) does not roll back.
            #expect(try await client.hook("rollback", checksum: "rev3").status == .forbidden)
            #expect(try await person.gateState("rollback") == "closed")
        }
    }

    @Test("the audit trail keeps the first approval and refusal of each rollout, not every check")
    func auditIsBounded() async throws {
        try await TestServer().run { client in
            for _ in 0..<20 { _ = try await client.hook("confirm-promotion", checksum: "c1") }
            _ = try await client.post("/v1/canaries/test/podinfo/gates/promotion/open", #"{"reason": "looks good"}"#)
            for _ in 0..<20 { _ = try await client.hook("confirm-promotion", checksum: "c1") }
            let page = try await client.get("/v1/canaries/test/podinfo/events").json()
            let actions = try #require(page["events"] as? [[String: Any]]).compactMap { $0["action"] as? String }
            #expect(actions == ["approved", "bound", "opened", "refused"])
        }
    }

    @Test("what the canary waits on, and since when, follows Flagger's refusals")
    func waitingOn() async throws {
        try await TestServer().run { client in
            _ = try await client.hook("confirm-promotion", checksum: "c1")
            let waiting = try await client.get("/v1/canaries/test/podinfo").json()
            let on = try #require(waiting["waitingOn"] as? [String: Any])
            #expect(on["gate"] as? String == "promotion")
            #expect(on["since"] is String)
            _ = try await client.post("/v1/canaries/test/podinfo/gates/promotion/open")
            _ = try await client.hook("confirm-promotion", checksum: "c1")
            #expect(try await client.get("/v1/canaries/test/podinfo").json()["waitingOn"] == nil)
        }
    }

    @Test("approving traffic steps says how many checks it covers; \"rest\" covers the final check too")
    func trafficApprovals() async throws {
        try await TestServer().run { client in
            let steps = try await client.post("/v1/canaries/test/podinfo/gates/traffic/open", #"{"steps": 3}"#)
            let stepsOutcome = try #require(try steps.json()["outcome"] as? String)
            #expect(stepsOutcome.contains("next 3 traffic checks"))
            #expect(stepsOutcome.contains("maximum weight"))

            let rest = try await client.post("/v1/canaries/test/podinfo/gates/traffic/open", #"{"steps": "rest"}"#)
            #expect(rest.status == .ok)
            let restOutcome = try #require(try rest.json()["outcome"] as? String)
            #expect(restOutcome.contains("rest of the traffic checks of the next rollout"))
            for _ in 0..<5 { #expect(try await client.hook("confirm-traffic-increase", checksum: "r1").status == .ok) }

            let wrong = try await client.post("/v1/canaries/test/podinfo/gates/traffic/open", #"{"steps": "all"}"#)
            #expect(wrong.status == .badRequest)
        }
    }
}
