import Foundation
import GatehouseServer
import HTTPTypes
import HummingbirdTesting
import Testing

/// The calls Flagger makes for one canary, from `shared/fixtures/flagger-sequences.json`.
struct FlaggerSequences {
    struct Step {
        var note: String?
        var hook: String?
        var body: String?
    }

    let sequences: [String: [Step]]

    init() throws {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/flagger-sequences", withExtension: "json"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let sequences = try #require(object["sequences"] as? [String: [[String: Any]]])
        self.sequences = try sequences.mapValues { steps in
            try steps.map { step in
                if let note = step["note"] as? String { return Step(note: note) }
                let body = try JSONSerialization.data(withJSONObject: try #require(step["body"]))
                return Step(hook: step["hook"] as? String, body: String(decoding: body, as: UTF8.self))
            }
        }
    }

    /// Replays one sequence; notes become the operator actions they describe. Returns each gate hook and its status.
    func replay(_ name: String, on client: Client, actions: [String: @Sendable () async throws -> Void]) async throws
        -> [(hook: String, status: Int)]
    {
        var results: [(hook: String, status: Int)] = []
        for step in try #require(sequences[name]) {
            if let note = step.note {
                if let action = actions.first(where: { note.contains($0.key) })?.value { try await action() }
                continue
            }
            let hook = try #require(step.hook)
            let path = hook == "event" ? "/v1/flagger/events" : "/v1/flagger/\(hook)"
            let reply = try await client.post(path, step.body)
            if hook == "event" || hook == "post-rollout" {
                #expect(reply.status == .accepted, "\(hook) must always be accepted")
            } else {
                results.append((hook, reply.status.code))
            }
        }
        return results
    }
}

@Suite("Flagger's hook sequences end to end over live HTTP")
struct FlaggerSequenceTests {
    func statuses(_ results: [(hook: String, status: Int)], _ hook: String) -> [Int] {
        results.filter { $0.hook == hook }.map(\.status)
    }

    @Test("three rollouts in a row: promoted through manual gates, rolled back by hand, failed analysis")
    func threeRollouts() async throws {
        let fixtures = try FlaggerSequences()
        try await TestServer().run(.live) { client in
            let open: @Sendable (String, String) async throws -> Void = { gate, body in
                let reply = try await client.post("/v1/canaries/test/podinfo/gates/\(gate)/open", body)
                #expect(reply.status == .ok)
            }

            // 1. c1 waits at confirm-rollout, is approved, advances through three approved steps, waits for promotion.
            let promoted = try await fixtures.replay(
                "promoted-with-manual-gates", on: client,
                actions: [
                    "opens the rollout gate": { try await open("rollout", #"{"reason": "release 1.2"}"#) },
                    "approves 3 traffic steps": { try await open("traffic", #"{"steps": 3}"#) },
                    "opens the promotion gate": { try await open("promotion", "") },
                ])
            #expect(statuses(promoted, "confirm-rollout") == [403, 403, 200])
            #expect(statuses(promoted, "confirm-traffic-increase") == [403, 200, 200, 200])
            #expect(statuses(promoted, "confirm-promotion") == [403, 200])
            #expect(statuses(promoted, "rollback").allSatisfy { $0 == 403 })

            // The Succeeded report reset every once-gate: c1's approvals do not pass c2.
            let afterFirst = try await client.get("/v1/canaries/test/podinfo").json()
            let gates = try #require(afterFirst["gates"] as? [String: [String: Any]])
            #expect(gates.values.allSatisfy { $0["state"] as? String == "closed" })
            #expect(afterFirst["phase"] as? String == "Succeeded")
            #expect(try await client.hook("confirm-rollout", checksum: "c1", phase: "Succeeded").status == .forbidden)

            // 2. c2 is pre-approved, then rolled back by hand mid-analysis: the rollback fires for c2 only.
            try await open("rollout", "")
            try await open("traffic", #"{"sticky": true}"#)
            let rolledBack = try await fixtures.replay(
                "manual-rollback", on: client,
                actions: [
                    "requests a rollback": {
                        let reply = try await client.post(
                            "/v1/canaries/test/podinfo/rollback", #"{"reason": "errors"}"#)
                        #expect(reply.status == .ok)
                    }
                ])
            #expect(statuses(rolledBack, "confirm-rollout") == [200])
            #expect(statuses(rolledBack, "confirm-traffic-increase") == [200])
            #expect(statuses(rolledBack, "rollback") == [403, 200])
            #expect(try await client.hook("rollback", checksum: "c3").status == .forbidden)

            // 3. c3 is approved and fails its analysis; the Failed report closes the rollout gate.
            try await open("rollout", "")
            let failed = try await fixtures.replay("failed-analysis", on: client, actions: [:])
            #expect(statuses(failed, "confirm-rollout") == [200])
            #expect(try await client.hook("confirm-rollout", checksum: "c3", phase: "Failed").status == .forbidden)

            // The sticky traffic gate outlives rollouts, as the user asked.
            let final = try await client.get("/v1/canaries/test/podinfo").json()
            let finalGates = try #require(final["gates"] as? [String: [String: Any]])
            #expect(finalGates["traffic"]?["state"] as? String == "open")
            #expect(final["phase"] as? String == "Failed")
            #expect(final["message"] as? String == "Canary failed! Scaling down podinfo.test")
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
}
