import Foundation
import HTTPTypes
import Testing

@Suite("flagger-loadtester compatible endpoints", .timeLimit(.minutes(3)))
struct LoadtesterCompatibilityTests {
    let body = #"{"name": "podinfo","namespace":"test"}"#

    @Test("approve and halt answer as the loadtester does")
    func fixedAnswers() async throws {
        try await TestServer().run { client in
            let approve = try await client.post("/gate/approve", body)
            #expect(approve.status == .ok && approve.text == "OK")
            let halt = try await client.post("/gate/halt", body)
            #expect(halt.status == .forbidden && halt.text == "Forbidden")
        }
    }

    @Test(
        "the gate and rollback gate: check, open, close with the loadtester's codes and bodies",
        arguments: ["gate", "rollback"])
    func openCheckClose(prefix: String) async throws {
        try await TestServer().run { client in
            let closed = try await client.post("/\(prefix)/check", body)
            #expect(closed.status == .forbidden && closed.text == "Forbidden")
            let open = try await client.post("/\(prefix)/open", body)
            #expect(open.status == .accepted && open.text.isEmpty)
            let approved = try await client.post("/\(prefix)/check", body)
            #expect(approved.status == .ok && approved.text == "Approved")
            let close = try await client.post("/\(prefix)/close", body)
            #expect(close.status == .accepted && close.text.isEmpty)
            #expect(try await client.post("/\(prefix)/check", body).status == .forbidden)
        }
    }

    @Test("a gate opened the loadtester way is sticky: it passes every revision and hook type until closed")
    func sticky() async throws {
        try await TestServer().run { client in
            _ = try await client.post("/gate/open", body)
            for checksum in ["c1", "c2", "c3"] {
                let payload =
                    #"{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "\#(checksum)"}"#
                #expect(try await client.post("/gate/check", payload).status == .ok)
            }
            let state = try await client.get("/v1/canaries/test/podinfo").json()
            let shared = try #require((state["gates"] as? [String: [String: Any]])?["shared"])
            #expect(shared["mode"] as? String == "sticky")
            #expect(shared["actor"] as? String == "loadtester-api")
        }
    }

    @Test("the loadtester gate and the native gates are separate")
    func separateGates() async throws {
        try await TestServer().run { client in
            _ = try await client.post("/gate/open", body)
            #expect(try await client.hook("confirm-rollout", checksum: "c1").status == .forbidden)
            _ = try await client.post("/v1/canaries/test/podinfo/gates/rollout/open")
            #expect(try await client.post("/gate/close", body).status == .accepted)
            #expect(try await client.hook("confirm-rollout", checksum: "c1").status == .ok)
        }
    }
}
