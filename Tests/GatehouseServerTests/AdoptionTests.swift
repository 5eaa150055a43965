import Foundation
import GatehouseCore
import HTTPTypes
import Testing

@testable import GatehouseServer

/// Drives one canary through a recorded Flagger sequence, call by call, keeping the canary weight
/// its events reported and each traffic check's answer.
struct TrafficDriver {
    let calls: [(hook: String, body: String)]
    let canary: CanaryCalls
    var next = 0
    var weight = 0
    /// Whether Flagger's event webhook points at Gatehouse (else events are not sent).
    var sendsEvents = true

    init(_ canary: CanaryCalls, scenario: String = "promoted-with-manual-gates") throws {
        self.canary = canary
        calls = try canary.calls(scenario)
    }

    /// Sends calls up to and including the next traffic check made at `weight`; its answer.
    mutating func trafficCheck(at wanted: Int) async throws -> Client.Reply {
        while next < calls.count {
            let call = calls[next]
            next += 1
            if call.hook == "event" {
                if let message = call.body.firstMatch(of: /"eventMessage":"([^"]*)"/)?.output.1,
                    let reported = FlaggerMessage.weight(after: String(message))
                {
                    weight = reported
                }
                if !sendsEvents { continue }
            }
            let reply = try await canary.send(call)
            if call.hook == "confirm-traffic-increase", weight == wanted { return reply }
        }
        Issue.record("the sequence has no traffic check at weight \(wanted)")
        throw CancellationError()
    }

    /// Sends the rest of the sequence.
    mutating func finish() async throws {
        for call in calls[next...] where sendsEvents || call.hook != "event" { try await canary.send(call) }
        next = calls.count
    }
}

@Suite(
    "Guardrails you can adopt safely: weight ceilings, steps automatic up to a weight, a first-rollout check, dry runs",
    .timeLimit(.minutes(3)))
struct AdoptionTests {
    /// What the recorded canary's analysis says (stepWeight 10, maxWeight 30), as its gate webhooks repeat it.
    static let analysis = ["stepWeight": "10", "maxWeight": "30"]

    /// Every gate opens by itself: what holds is the rule under test.
    static let handsOff = GuardrailsTests.automatic

    @Test("A weight ceiling lets steps up to it go and holds the one above, naming the weights; an override lifts it")
    func weightCeiling() async throws {
        let server = try serverWithPolicy(
            Self.handsOff + """
                  - name: at-most-20
                    maxWeight: {limit: 20, overrideBy: [alice]}
                """)
        try await server.run { client in
            let podinfo = CanaryCalls(client: client, name: "podinfo", metadata: Self.analysis)
            var flagger = try TrafficDriver(podinfo)
            #expect(try await flagger.trafficCheck(at: 0).status == .ok, "0% → 10%")
            #expect(try await flagger.trafficCheck(at: 10).status == .ok, "10% → 20%")
            let held = try await flagger.trafficCheck(at: 20)
            #expect(held.status == .forbidden)
            #expect(
                held.text.contains(
                    "traffic gate of test/podinfo is held at the weight ceiling (rule at-most-20: canary weight at most 20%): this step would take it from 20% to 30%"
                ), "\(held.text)")
            #expect(held.text.contains("gatehouse override podinfo -n test at-most-20 --reason"), "\(held.text)")
            let state = try await podinfo.state()
            let hold = try #require((state["waitingOn"] as? [String: Any])?["hold"] as? [String: Any])
            #expect(hold["kind"] as? String == "weight" && hold["rule"] as? String == "at-most-20")
            #expect((state["policy"] as? [String: Any])?["trafficWeight"] as? Int == 20)

            let override = "/v1/canaries/test/podinfo/overrides"
            #expect(
                try await client.post(override, #"{"rule": "at-most-20", "reason": "x"}"#, as: "bob").status
                    == .forbidden)
            let lifted = try await client.post(
                override, #"{"rule": "at-most-20", "reason": "INC-12 load test"}"#, as: "alice")
            #expect(lifted.status == .ok, "\(lifted.text)")
            #expect(
                try await podinfo.send(try #require(flagger.calls.last { $0.hook == "confirm-traffic-increase" }))
                    .status == .ok)
        }
    }

    @Test("Steps go on by themselves up to a weight; above it people decide, and the refusal says why")
    func automaticUpToWeight() async throws {
        let server = try serverWithPolicy(
            """
            rules:
              - name: hands-off-gates
                gates: [rollout, promotion]
                automatic: true
              - name: first-steps-alone
                automatic: {upToWeight: 10}

            """)
        try await server.run { client in
            let podinfo = CanaryCalls(client: client, name: "podinfo", metadata: Self.analysis)
            var flagger = try TrafficDriver(podinfo)
            #expect(try await flagger.trafficCheck(at: 0).status == .ok, "0% → 10% goes by itself")
            let held = try await flagger.trafficCheck(at: 10)
            #expect(held.status == .forbidden)
            #expect(
                held.text.contains(
                    "rule first-steps-alone lets traffic steps up to 10% canary weight go on by themselves; this one goes from 10% to 20%"
                ), "\(held.text)")
            #expect(held.text.contains("gatehouse open traffic podinfo -n test"), "\(held.text)")
            let opened = try await client.post(
                "/v1/canaries/test/podinfo/gates/traffic/open", #"{"steps": "rest", "reason": "looks good"}"#,
                as: "carol")
            #expect(opened.status == .ok, "\(opened.text)")
            #expect(try await flagger.trafficCheck(at: 20).status == .ok)
        }
    }

    @Test("Where Gatehouse cannot know the weight a step reaches, a weight rule holds and says what is missing")
    func unknownWeightIsHeld() async throws {
        let policy =
            Self.handsOff + """
                  - name: at-most-20
                    maxWeight: 20
                """
        // No analysis in the metadata.
        try await serverWithPolicy(policy).run { client in
            var flagger = try TrafficDriver(CanaryCalls(client: client, name: "podinfo"))
            let held = try await flagger.trafficCheck(at: 0)
            #expect(held.status == .forbidden)
            #expect(
                held.text.contains(
                    "Gatehouse does not know how its analysis moves traffic: add the analysis' stepWeight (or stepWeights) and maxWeight to the traffic webhook's metadata"
                ), "\(held.text)")
        }
        // No event webhook to Gatehouse.
        try await serverWithPolicy(policy).run { client in
            var flagger = try TrafficDriver(CanaryCalls(client: client, name: "podinfo", metadata: Self.analysis))
            flagger.sendsEvents = false
            let held = try await flagger.trafficCheck(at: 0)
            #expect(held.status == .forbidden)
            #expect(held.text.contains("no event from Flagger has reported its canary weight: add an event webhook"))
        }
    }

    @Test("A canary's first rollout needs the platform team's approval; once one succeeded, the rule lets it be")
    func firstRollout() async throws {
        let server = try serverWithPolicy(
            Self.handsOff + """
                  - name: onboarding
                    firstRollout: {approvals: {count: 1, from: [pat, quinn]}}
                """)
        try await server.run { client in
            let podinfo = CanaryCalls(client: client, name: "podinfo")
            let asked = try await podinfo.confirmRollout()
            #expect(asked.status == .forbidden)
            #expect(
                asked.text.contains(
                    "rule onboarding: the first rollout of test/podinfo through Gatehouse needs 1 approval from one of pat, quinn"
                ), "\(asked.text)")
            let open = "/v1/canaries/test/podinfo/gates/rollout/open"
            let refused = try await client.post(open, as: "bob")
            #expect(refused.status == .forbidden)
            #expect(refused.text.contains("bob is not one of the approvers"), "\(refused.text)")
            #expect(try await client.post(open, #"{"reason": "first deploy, pairing"}"#, as: "pat").status == .ok)
            #expect(try await podinfo.confirmRollout().status == .ok)
            // The rest of the rollout: it succeeds.
            var flagger = try TrafficDriver(podinfo)
            try await flagger.finish()
            let ended = try await podinfo.state()
            #expect((ended["rollout"] as? [String: Any])?["stage"] as? String == "ended")
            #expect(ended["phase"] as? String == "Succeeded")

            // The next release starts by itself: the canary is no longer new.
            let next = try await podinfo.send(
                (
                    "confirm-rollout",
                    #"{"name":"podinfo","namespace":"test","phase":"Succeeded","checksum":"rev1"}"#
                ))
            #expect(next.status == .ok, "\(next.text)")
        }
    }

    @Test("A dry-run rule holds nothing and records what it would have held: audit, canary, dashboard, metric")
    func dryRun() async throws {
        let server = try serverWithPolicy(
            Self.handsOff + """
                  - name: at-most-10
                    maxWeight: 10
                    enforce: false
                """)
        try await server.run { client in
            let podinfo = CanaryCalls(client: client, name: "podinfo", metadata: Self.analysis)
            var flagger = try TrafficDriver(podinfo)
            #expect(try await flagger.trafficCheck(at: 0).status == .ok)
            #expect((try await podinfo.state()["policy"] as? [String: Any])?["dryRuns"] == nil, "0% → 10% is allowed")
            #expect(try await flagger.trafficCheck(at: 10).status == .ok, "a dry run never holds")

            let dryRuns = try #require(
                (try await podinfo.state()["policy"] as? [String: Any])?["dryRuns"] as? [[String: Any]])
            #expect(dryRuns.count == 1)
            #expect(dryRuns.first?["rule"] as? String == "at-most-10" && dryRuns.first?["wouldHold"] as? Bool == true)
            #expect((dryRuns.first?["message"] as? String)?.contains("from 10% to 20%") == true)
            #expect(try await flagger.trafficCheck(at: 20).status == .ok)
            let audit = try await client.get("/v1/events?action=dry-run").json()
            let entries = try #require(audit["events"] as? [[String: Any]])
            #expect(entries.count == 1, "recorded once while the difference lasts: \(entries)")
            #expect(
                (entries.first?["reason"] as? String)?.hasPrefix(
                    "rule at-most-10 (dry run) would have held the traffic gate: traffic gate of test/podinfo is held at the weight ceiling"
                ) == true)
            let page = try await Visitor(client).get("/canaries/test/podinfo").text
            #expect(page.contains("Dry run</span> Rule <strong>at-most-10</strong> would have held the traffic gate"))
            let metrics = try await client.get("/metrics").text
            #expect(
                metrics.contains(
                    #"gatehouse_policy_dry_run_canaries{rule="at-most-10",gate="traffic",would="hold"} 1"#),
                "\(metrics)")

            // The rollout ends: what the rule would have held ends with it.
            try await flagger.finish()
            #expect((try await podinfo.state()["policy"] as? [String: Any])?["dryRuns"] == nil)
        }
    }

    @Test(
        "the new fields are checked with their line",
        arguments: [
            (
                "rules:\n  - name: a\n    gates: [promotion]\n    maxWeight: 50\n",
                "line 3: a maxWeight rule holds traffic steps only"
            ),
            ("rules:\n  - name: a\n    maxWeight: {limit: 100}\n", "line 3: limit is a whole number from 1 to 99"),
            ("rules:\n  - name: a\n    maxWeight: {overrideBy: [alice]}\n", "line 3: maxWeight needs a limit"),
            (
                "rules:\n  - name: a\n    gates: [promotion]\n    automatic: {upToWeight: 30}\n",
                "line 3: upToWeight concerns traffic steps"
            ),
            ("rules:\n  - name: a\n    automatic: {upTo: 30}\n", "line 3: unknown key 'upTo' in automatic"),
            (
                "rules:\n  - name: a\n    firstRollout: {approvals: 1, since: yesterday}\n",
                "line 3: since is a day, YYYY-MM-DD"
            ),
            ("rules:\n  - name: a\n    firstRollout: {since: 2026-12-01}\n", "line 3: firstRollout needs approvals"),
            (
                "rules:\n  - name: a\n    gates: [traffic]\n    automatic: true\n    enforce: maybe\n",
                "line 5: enforce is true or false"
            ),
        ])
    func badFiles(_ file: String, _ expected: String) throws {
        #expect {
            try PolicyFile.parse(file)
        } throws: { error in
            ((error as? InvalidInput)?.message ?? "").hasPrefix(expected)
        }
    }

    @Test(
        "policy check says what the new rules do, warns what weight rules need, and which steps a canary's analysis holds"
    )
    func summaries() throws {
        let policy = try PolicyFile.parse(
            """
            rules:
              - name: ceiling
                maxWeight: {limit: 50, overrideBy: [alice]}
                enforce: false
              - name: onboarding
                firstRollout: {approvals: {count: 1, from: ["group:platform"]}, since: 2026-12-01}
            """)
        #expect(
            policy.rules[0].summary
                == "traffic (dry run: records what it would hold, holds nothing): holds traffic steps that would take the canary weight above 50% (lifted by one of alice)"
        )
        #expect(
            policy.rules[1].summary
                == "rollout: a canary's first rollout since 2026-12-01, until one succeeds, needs 1 approval from distinct people (one of group:platform)"
        )
        #expect(policy.warnings.count == 1)
        #expect(
            policy.warnings.first?.hasPrefix("line 2: rule ceiling judges the weight each traffic step reaches") == true
        )
    }
}
