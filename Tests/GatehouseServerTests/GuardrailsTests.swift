import Foundation
import GatehouseCore
import HTTPTypes
import Logging
import Testing

@testable import GatehouseServer

/// A service with a policy file beside its database.
func serverWithPolicy(_ policy: String, _ adjust: @escaping (inout ServerArguments) -> Void = { _ in }) throws
    -> TestServer
{
    let server = try TestServer { arguments in
        arguments.policyFile = arguments.databasePath.replacingOccurrences(of: "gatehouse.sqlite", with: "policy.yaml")
        adjust(&arguments)
    }
    try policy.write(toFile: try #require(server.arguments.policyFile), atomically: true, encoding: .utf8)
    return server
}

/// Flagger's calls for one canary of the recorded sequences, renamed, with the webhook metadata a
/// Canary's gate webhooks would carry.
struct CanaryCalls: Sendable {
    let client: Client
    let name: String
    var metadata: [String: String] = [:]

    /// The scenario's calls, in order (notes left out), as this canary sends them.
    func calls(_ scenario: String) throws -> [(hook: String, body: String)] {
        let steps = try #require(try FlaggerSequences().sequences[scenario])
        return try steps.compactMap { step in
            guard let hook = step.hook, var body = step.body else { return nil }
            body = body.replacingOccurrences(of: #""name":"podinfo""#, with: #""name":"\#(name)""#)
            if hook != "event" && hook != "post-rollout" && !metadata.isEmpty {
                let encoded = String(
                    decoding: try JSONSerialization.data(withJSONObject: metadata, options: .sortedKeys), as: UTF8.self)
                body = body.replacingOccurrences(of: #""name":"#, with: #""metadata":\#(encoded),"name":"#)
            }
            return (hook, body)
        }
    }

    /// Sends one call.
    @discardableResult
    func send(_ call: (hook: String, body: String)) async throws -> Client.Reply {
        try await client.post(call.hook == "event" ? "/v1/flagger/events" : "/v1/flagger/\(call.hook)", call.body)
    }

    /// Sends every call of a scenario from `start` on, whatever the answers.
    func replay(_ scenario: String, from start: Int = 0) async throws {
        for call in try calls(scenario).dropFirst(start) { try await send(call) }
    }

    /// The first confirm-rollout of a scenario.
    func confirmRollout(_ scenario: String = "promoted-with-manual-gates") async throws -> Client.Reply {
        try await send(try #require(try calls(scenario).first { $0.hook == "confirm-rollout" }))
    }

    /// The canary as the API shows it.
    func state() async throws -> [String: Any] {
        try await client.get("/v1/canaries/test/\(name)").json()
    }
}

extension Client {
    /// An operator request naming its actor (no access file: `X-Gatehouse-Actor` names people).
    func post(_ path: String, _ body: String? = nil, as actor: String) async throws -> Reply {
        try await send(.post, path, body: body, headers: [ActorHeader.header: actor])
    }
}

@Suite(
    "Guardrails: one policy of approval rules, automatic gates, rollout slots, dependencies and windows",
    .timeLimit(.minutes(3)))
struct GuardrailsTests {
    static let automatic = """
        rules:
          - name: hands-off
            gates: [rollout, traffic, promotion]
            automatic: true

        """

    @Test("closing an automatic gate by hand holds it, even one nobody had opened, until someone opens it")
    func closingAnAutomaticGateHoldsIt() async throws {
        try await serverWithPolicy(Self.automatic).run { client in
            #expect(try await client.hook("confirm-traffic-increase", checksum: "r1").status == .ok)
            // The gate was never opened by anyone: the rule opened it for each check.
            let closed = try await client.post(
                "/v1/canaries/test/podinfo/gates/traffic/close", #"{"reason": "error budget burnt"}"#)
            #expect(closed.status == .ok)
            let held = try await client.hook("confirm-traffic-increase", checksum: "r1")
            #expect(held.status == .forbidden, "\(held.text)")
            #expect(held.text.contains("traffic gate of test/podinfo is closed"))
            #expect(try await client.post("/v1/canaries/test/podinfo/gates/traffic/open").status == .ok)
            #expect(try await client.hook("confirm-traffic-increase", checksum: "r1").status == .ok)
        }
    }

    @Test(
        "three canaries released together with a limit of 2: the third is queued, and admitted when the first's Promotion completed! arrives"
    )
    func rolloutSlots() async throws {
        let server = try serverWithPolicy(
            Self.automatic + """
                  - name: two-at-a-time
                    canaries: {groups: [payments]}
                    concurrency: {limit: 2, per: group, silentAfter: 10m}
                """)
        try await server.run { client in
            let payments = ["group": "payments"]
            let first = CanaryCalls(client: client, name: "cart", metadata: payments)
            let second = CanaryCalls(client: client, name: "checkout", metadata: payments)
            let third = CanaryCalls(client: client, name: "billing", metadata: payments)
            let elsewhere = CanaryCalls(client: client, name: "search")
            #expect(try await first.confirmRollout().status == .ok)
            #expect(try await second.confirmRollout().status == .ok)
            let queued = try await third.confirmRollout()
            #expect(queued.status == .forbidden)
            #expect(
                queued.text.hasPrefix(
                    "queued: 3rd, behind test/cart, test/checkout (limit 2 in group payments; rule two-at-a-time)"),
                "\(queued.text)")
            // A canary in no group is not limited by a per-group rule.
            #expect(try await elsewhere.confirmRollout().status == .ok)

            let waiting = try #require(try await third.state()["waitingOn"] as? [String: Any])
            #expect(waiting["cause"] as? String == "queued")
            let hold = try #require(waiting["hold"] as? [String: Any])
            #expect(hold["rule"] as? String == "two-at-a-time")
            #expect(hold["kind"] as? String == "queued")
            #expect(hold["since"] != nil)
            #expect(
                hold["needed"] as? String == "one of test/cart, test/checkout ends its rollout or is silent for 10m")

            // Flagger asks again each interval: still queued, nothing more recorded.
            #expect(try await third.confirmRollout().status == .forbidden)

            // The first canary goes through the whole recorded rollout, to "Promotion completed!" (its
            // Canary sends Gatehouse no post-rollout hook, which would end the rollout just before).
            let calls = try first.calls("promoted-with-manual-gates").filter { $0.hook != "post-rollout" }
            let completed = try #require(calls.firstIndex { $0.body.contains("Promotion completed!") })
            for call in calls.dropFirst().prefix(completed - 1) { try await first.send(call) }
            let early = try await third.confirmRollout()
            let cartState = try await client.get("/v1/canaries/test/cart").text
            #expect(early.status == .forbidden, "the first rollout has not ended yet: \(early.text) \(cartState)")
            try await first.send(calls[completed])
            #expect(try await third.confirmRollout().status == .ok, "a slot freed when the first rollout ended")
            #expect(try await third.state()["waitingOn"] == nil)

            let audit = try await client.get("/v1/canaries/test/billing/events?limit=50").json()
            let entries = try #require(audit["events"] as? [[String: Any]])
            let refusals = entries.filter { $0["action"] as? String == "refused" }
            #expect(refusals.count == 1, "one refusal recorded for the whole wait")
        }
    }

    @Test(
        "a gate needs approvals from distinct people; repeats count once; the requester and strangers cannot approve; any approver can still close it"
    )
    func distinctApprovers() async throws {
        let server = try serverWithPolicy(
            """
            rules:
              - name: two-approvers
                canaries: {namespaces: ["te*"], names: [podinfo]}
                gates: [promotion]
                approvals: {count: 2, from: [alice, bob, carol]}
            """)
        try await server.run { client in
            let podinfo = CanaryCalls(client: client, name: "podinfo")
            let calls = try podinfo.calls("preapproved-by-ci")
            let promotion = try #require(calls.first { $0.hook == "confirm-promotion" })
            let open = "/v1/canaries/test/podinfo/gates/promotion/open"
            #expect(try await client.post("/v1/canaries/test/podinfo/request", as: "ci-bot").status == .ok)
            #expect(try await client.post("/v1/canaries/test/podinfo/gates/rollout/open", as: "ci-bot").status == .ok)

            let first = try await client.post(open, as: "alice")
            #expect(first.status == .ok)
            // One approval of two is not an open gate, wherever it is shown.
            let firstGate = try #require((try first.json()["gates"] as? [String: [String: Any]])?["promotion"])
            #expect(firstGate["state"] as? String == "approving", "\(firstGate)")
            #expect(firstGate["approvalsCounted"] as? Int == 1 && firstGate["approvalsRequired"] as? Int == 2)
            var answer = try await podinfo.send(promotion)
            #expect(answer.status == .forbidden)
            #expect(answer.text.contains("1 of 2 approvals: alice; waiting for one of: bob, carol"), "\(answer.text)")
            #expect(answer.text.contains("rule two-approvers"))

            #expect(try await client.post(open, as: "alice").status == .ok)
            #expect(try await podinfo.send(promotion).status == .forbidden, "alice's second approval counts once")

            let stranger = try await client.post(open, as: "mallory")
            #expect(stranger.status == .forbidden)
            #expect(stranger.text.contains("not one of the approvers"))
            let requester = try await client.post(open, #"{"reason": "ship it"}"#, as: "ci-bot")
            #expect(requester.status == .forbidden)

            let gates = try #require(try await podinfo.state()["gates"] as? [String: [String: Any]])
            #expect(gates["promotion"]?["approvals"] as? [String] == ["alice"])
            #expect(
                gates["promotion"]?["approvalStatus"] as? String
                    == "1 of 2 approvals: alice; waiting for one of: bob, carol")

            let page = try await client.get("/canaries/test/podinfo")
            #expect(
                page.text.contains("1 of 2 approvals: alice; waiting for one of: bob, carol"),
                "the dashboard shows the tally")
            #expect(page.text.contains(#"<span class="pill approving">1 of 2 approvals</span>"#))
            #expect(page.text.contains("waiting for approvals"))

            // bob asked for approval too: his own does not count.
            #expect(try await client.post("/v1/canaries/test/podinfo/request", as: "bob").status == .ok)
            #expect(try await client.post(open, as: "bob").status == .forbidden)

            let second = try await client.post(open, as: "carol")
            #expect(second.status == .ok)
            let secondGate = try #require((try second.json()["gates"] as? [String: [String: Any]])?["promotion"])
            #expect(secondGate["state"] as? String == "open" && secondGate["approvalsCounted"] as? Int == 2)
            answer = try await podinfo.send(promotion)
            #expect(answer.status == .ok, "\(answer.text)")

            // Any approver may still refuse at once: closing takes every approval away.
            #expect(try await client.post("/v1/canaries/test/podinfo/gates/promotion/close", as: "bob").status == .ok)
            #expect(try await podinfo.send(promotion).status == .forbidden)

            let audit = try await client.get("/v1/canaries/test/podinfo/events?limit=100").json()
            let entries = try #require(audit["events"] as? [[String: Any]])
            let opened = entries.filter { $0["action"] as? String == "opened" && $0["gate"] as? String == "promotion" }
            #expect(Set(opened.compactMap { $0["actor"] as? String }) == ["alice", "carol"])
            #expect(entries.contains { $0["action"] as? String == "requested" && $0["actor"] as? String == "bob" })
        }
    }

    @Test("a promotion waits for the canary it depends on to succeed; a failed dependency says so")
    func dependencies() async throws {
        let server = try serverWithPolicy(
            Self.automatic + """
                  - name: checkout-after-cart
                    canaries: {names: [checkout]}
                    gates: [promotion]
                    dependsOn: [cart]
                """)
        try await server.run { client in
            let cart = CanaryCalls(client: client, name: "cart")
            let checkout = CanaryCalls(client: client, name: "checkout")
            let cartCalls = try cart.calls("promoted-with-manual-gates")
            let completed = try #require(cartCalls.firstIndex { $0.body.contains("Promotion completed!") })
            #expect(try await cart.confirmRollout().status == .ok)
            #expect(try await checkout.confirmRollout().status == .ok)
            let checkoutCalls = try checkout.calls("promoted-with-manual-gates")
            let promotion = try #require(checkoutCalls.first { $0.hook == "confirm-promotion" })
            for call in checkoutCalls where call.hook == "confirm-traffic-increase" || call.hook == "rollback" {
                try await checkout.send(call)
            }
            var answer = try await checkout.send(promotion)
            #expect(answer.status == .forbidden)
            #expect(
                answer.text.contains(
                    "waits for test/cart (rule checkout-after-cart): test/cart is still in its rollout"),
                "\(answer.text)")
            let hold = try #require(
                (try await checkout.state()["waitingOn"] as? [String: Any])?["hold"] as? [String: Any])
            #expect(hold["kind"] as? String == "dependency")
            #expect(hold["needed"] as? String == "test/cart succeeds in a rollout")

            for call in cartCalls.dropFirst().prefix(completed) { try await cart.send(call) }
            answer = try await checkout.send(promotion)
            #expect(answer.status == .ok, "\(answer.text)")
        }
    }

    @Test("a dependency named in the webhook metadata that failed holds the promotion and says it failed")
    func failedDependencyFromMetadata() async throws {
        let server = try serverWithPolicy(
            Self.automatic + """
                  - name: ordered
                    gates: [promotion]
                    dependsOn: []
                """)
        try await server.run { client in
            let cart = CanaryCalls(client: client, name: "cart")
            let checkout = CanaryCalls(client: client, name: "checkout", metadata: ["dependsOn": "test/cart"])
            #expect(try await cart.confirmRollout("failed-analysis").status == .ok)
            #expect(try await checkout.confirmRollout().status == .ok)
            try await cart.replay("failed-analysis", from: 1)
            let promotion = try #require(
                try checkout.calls("promoted-with-manual-gates").first { $0.hook == "confirm-promotion" })
            let answer = try await checkout.send(promotion)
            #expect(answer.status == .forbidden)
            #expect(answer.text.contains("test/cart failed its rollout"), "\(answer.text)")
            let policy = try #require(try await checkout.state()["policy"] as? [String: Any])
            let labels = try #require(policy["labels"] as? [String: Any])
            #expect(labels["dependsOn"] != nil)
            // A rollback is never held by a rule.
            let rollback = try #require(
                try checkout.calls("promoted-with-manual-gates").first { $0.hook == "rollback" })
            #expect(try await checkout.send(rollback).text.contains("no rollback requested"))
        }
    }

    @Test("outside a deploy window the gate is held and says when it opens; someone allowed overrides it, audited")
    func windowAndOverride() async throws {
        // A window open only on the day after tomorrow (UTC): closed now, whenever the test runs.
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let later = calendar.date(byAdding: .day, value: 2, to: Date())!
        let day = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][calendar.component(.weekday, from: later) - 1]
        let server = try serverWithPolicy(
            Self.automatic + """
                  - name: quiet-days
                    gates: [rollout]
                    window: {open: "\(day) 00:00-24:00", timeZone: UTC}
                    overrideBy: [alice]
                """)
        try await server.run { client in
            let podinfo = CanaryCalls(client: client, name: "podinfo")
            let answer = try await podinfo.confirmRollout()
            #expect(answer.status == .forbidden)
            #expect(answer.text.contains("outside its deploy window (rule quiet-days"), "\(answer.text)")
            #expect(answer.text.contains("it passes when the window opens \(day) 00:00 UTC"), "\(answer.text)")
            #expect(answer.text.contains("gatehouse override podinfo -n test quiet-days --reason"))

            let override = "/v1/canaries/test/podinfo/overrides"
            let refused = try await client.post(override, #"{"rule": "quiet-days", "reason": "hotfix"}"#, as: "bob")
            #expect(refused.status == .forbidden)
            #expect(refused.text.contains("bob may not override rule quiet-days; alice may"))
            #expect(try await client.post(override, #"{"rule": "quiet-days"}"#, as: "alice").status == .badRequest)
            #expect(
                try await client.post(override, #"{"rule": "nope", "reason": "x"}"#, as: "alice").status == .notFound)
            let lifted = try await client.post(
                override, #"{"rule": "quiet-days", "reason": "hotfix for INC-7"}"#, as: "alice")
            #expect(lifted.status == .ok, "\(lifted.text)")
            #expect(try await podinfo.confirmRollout().status == .ok)

            let audit = try await client.get("/v1/events?action=overridden").json()
            let entry = try #require((audit["events"] as? [[String: Any]])?.first)
            #expect(entry["actor"] as? String == "alice")
            #expect((entry["reason"] as? String)?.contains("hotfix for INC-7") == true)
        }
    }

    @Test("a broken policy file is refused with its line, and the one in force stays; a good one replaces it")
    func reload() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("policy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("policy.yaml").path
        try Self.automatic.write(toFile: path, atomically: true, encoding: .utf8)
        let control = try PolicyControl(path: path, logger: Logger(label: "test"))
        #expect(control.content.rules.map(\.name) == ["hands-off"])

        try "rules:\n  - name: broken\n    gates: [promotion]\n    automatic: yes please\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        #expect(control.reload() == false)
        #expect(control.content.rules.map(\.name) == ["hands-off"])

        try "rules:\n  - name: slots\n    concurrency: {limit: 3}\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        #expect(control.reload() == true)
        #expect(control.content.rules.map(\.name) == ["slots"])
        #expect(control.reload() == false, "an unchanged file is not read again")
    }

    @Test(
        "bad policy files are refused with the line and a sentence",
        arguments: [
            (
                "rules:\n  - name: a\n    gates: [promotion]\n    approvals: 2\n    automatic: true\n",
                "line 2: rule a needs exactly one of"
            ),
            (
                "rules:\n  - name: a\n    gates: [rollback]\n    automatic: true\n",
                "line 3: a rule concerns rollout, traffic or promotion gates"
            ),
            (
                "rules:\n  - name: a\n    window: {closed: \"Fri 16:00 - Mon 08:00\", timeZone: Mars/Olympus}\n",
                "line 3: 'Mars/Olympus' is not an IANA time zone"
            ),
            (
                "rules:\n  - name: a\n    window: {closed: \"Fri 25:00 - Mon 08:00\", timeZone: UTC}\n",
                "line 3: 'Fri 25:00 - Mon 08:00' is not a span"
            ),
            ("rules:\n  - name: a\n    concurrency: {limit: 0}\n", "line 3: limit is a whole number from 1"),
            (
                "rules:\n  - name: a\n    gates: [promotion]\n    approvals: {count: 3, from: [alice, bob]}\n",
                "line 4: rule a asks for 3 approvals from 2 people"
            ),
            (
                "rules:\n  - name: a\n    automatic: true\n    gates: [traffic]\n  - name: a\n    automatic: true\n    gates: [traffic]\n",
                "line 5: another rule is named a (line 2)"
            ),
            ("rules:\n  - name: a\n    colour: blue\n", "line 3: unknown key 'colour' in a rule"),
            ("rules:\n  - name: a\n    canaries: {namespaces: [x]\n", "line 4: the policy file is not valid YAML"),
            ("rules:\n  - name: a\n    dependsOn: [\"a/b/c\"]\n", "line 3: 'a/b/c' is not a canary"),
        ])
    func badFiles(_ file: String, _ expected: String) throws {
        #expect {
            try PolicyFile.parse(file)
        } throws: { error in
            ((error as? InvalidInput)?.message ?? "").hasPrefix(expected)
        }
    }
}
