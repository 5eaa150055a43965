import Foundation
import GatehouseServer
import HTTPTypes
import HummingbirdTesting
import Testing

@Suite("Prometheus metrics after Flagger's sequences", .timeLimit(.minutes(3)))
struct MetricsTests {
    func scrape(_ client: Client) async throws -> PrometheusText {
        let reply = try await client.get("/metrics")
        #expect(reply.status == .ok)
        #expect(reply.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
        return try PrometheusText(reply.text)
    }

    @Test("checks by gate and decision, gate states, waiting time, rollbacks, HTTP requests by route")
    func afterSequences() async throws {
        let fixtures = try FlaggerSequences()
        try await TestServer().run(.live) { client in
            let person = Operator(client: client)
            let open: @Sendable (String, String) async throws -> Void = { gate, body in
                try await person.open(gate, body)
            }
            var actions = person.actions["promoted-with-manual-gates"] ?? [:]
            actions["someone opens the promotion gate"] = {
                // scrape while the canary waits for promotion
                let waiting = try await scrape(client)
                let seconds = try #require(
                    waiting.value("gatehouse_waiting_seconds", ["name": "podinfo", "gate": "promotion"]))
                #expect(seconds >= 0)
                #expect(
                    waiting.value("gatehouse_waiting_seconds", ["name": "podinfo", "gate": "rollout"]) == nil,
                    "only the gate waited on has a series")
                #expect(waiting.value("gatehouse_gate_open", ["name": "podinfo", "gate": "promotion"]) == nil)
                try await open("promotion", "")
                let opened = try await scrape(client)
                #expect(opened.value("gatehouse_gate_open", ["name": "podinfo", "gate": "promotion"]) == 1)
            }
            try await fixtures.replay("promoted-with-manual-gates", on: client, hooks: .all, actions: actions)
            let promoted = try await scrape(client)
            func checks(_ gate: String, _ decision: String, in metrics: PrometheusText) -> Double? {
                metrics.value("gatehouse_checks_total", ["gate": gate, "decision": decision])
            }
            #expect(checks("rollout", "refused", in: promoted) == 2)
            #expect(checks("rollout", "approved", in: promoted) == 1)
            #expect(checks("traffic", "refused", in: promoted) == 2)
            #expect(checks("traffic", "approved", in: promoted) == 4)
            #expect(checks("promotion", "refused", in: promoted) == 2)
            #expect(checks("promotion", "approved", in: promoted) == 1)
            #expect(checks("rollback", "refused", in: promoted) == 8)
            #expect(checks("promotion", "unavailable", in: promoted) == 0)
            for gate in ["rollout", "traffic", "promotion", "rollback", "shared"] {
                #expect(promoted.value("gatehouse_gate_open", ["name": "podinfo", "gate": gate]) == nil)
            }
            #expect(promoted.value("gatehouse_waiting_seconds", ["name": "podinfo", "gate": "promotion"]) == nil)
            #expect(promoted.value("gatehouse_canaries") == 1)
            #expect(
                promoted.value(
                    "gatehouse_http_requests_total", ["route": "/v1/flagger/events", "method": "POST", "status": "202"])
                    == Double(
                        fixtures.sequences["promoted-with-manual-gates"]?.filter { $0.hook == "event" }.count ?? -1))
            #expect(
                promoted.value(
                    "gatehouse_http_request_duration_seconds_count",
                    ["route": "/v1/flagger/confirm-traffic-increase", "method": "POST"]) == 6)
            #expect(promoted.value("gatehouse_build_info")?.isZero == false)
            #expect(promoted.value("gatehouse_storage_up") == 1)

            _ = try await client.post("/v1/freezes", #"{"namespace": "other", "reason": "audit"}"#)
            try await fixtures.replay(
                "manual-rollback", on: client, hooks: .all, actions: person.actions["manual-rollback"] ?? [:])
            _ = try await client.get("/v1/canaries/test/podinfo/nothing-here")
            let rolledBack = try await scrape(client)
            #expect(rolledBack.value("gatehouse_rollbacks_requested_total") == 1)
            #expect(rolledBack.value("gatehouse_rollbacks_fired_total") == 1)
            #expect(rolledBack.value("gatehouse_freezes_active") == 1)
            #expect(rolledBack.value("gatehouse_gate_open", ["name": "podinfo", "gate": "traffic"]) == 1)
            #expect(
                rolledBack.samples.filter { $0.name == "gatehouse_http_requests_total" }.allSatisfy {
                    !($0.labels["route"] ?? "").contains("nothing-here")
                }, "routes are patterns, never raw paths")
        }
    }

    @Test("checks that storage cannot answer are counted as unavailable")
    func unavailable() async throws {
        let server = try TestServer { $0.storageTimeout = 0.3 }
        try await server.run { client in
            let lock = try await LockedDatabase.take(path: server.arguments.databasePath)
            #expect(try await client.get("/readyz").status == .serviceUnavailable)
            #expect(try await client.hook("confirm-rollout", checksum: "c1").status == .serviceUnavailable)
            let metrics = try await scrape(client)
            #expect(metrics.value("gatehouse_checks_total", ["gate": "rollout", "decision": "unavailable"]) == 1)
            #expect(metrics.value("gatehouse_storage_up") == 0)
            await lock.unlock()
        }
    }

    @Test("every response carries the request id")
    func requestID() async throws {
        try await TestServer().run { client in
            let first = try await client.hook("confirm-rollout", checksum: "c1")
            let second = try await client.get("/nowhere")
            let ids = [first, second].compactMap { $0.headers[HTTPField.Name("X-Request-Id")!] }
            #expect(ids.count == 2 && ids[0] != ids[1] && ids.allSatisfy { !$0.isEmpty })
        }
    }
}
