import Foundation
import GatehouseServer
import HTTPTypes
import HummingbirdTesting
import Testing

/// Liveness and readiness as an orchestrator reads them when storage breaks.
@Suite("Health when storage breaks", .timeLimit(.minutes(1)))
struct StorageHealthTests {
    @Test(
        "a deleted database file fails liveness (so the orchestrator restarts the service) and readiness, and checks fail closed"
    )
    func deletedDatabaseFailsLiveness() async throws {
        let server = try TestServer()
        try await server.run(.live) { client in
            #expect(try await client.post("/v1/canaries/test/podinfo/gates/promotion/open").status == .ok)
            #expect(try await client.get("/healthz").status == .ok)
            try FileManager.default.removeItem(atPath: server.arguments.databasePath)

            let liveness = try await client.get("/healthz")
            #expect(liveness.status == .serviceUnavailable)
            #expect(liveness.text.contains("needs a restart"))
            #expect(liveness.text.contains("deleted"))
            #expect(try await client.get("/readyz").status == .serviceUnavailable)
            let metrics = try PrometheusText(try await client.get("/metrics").text)
            #expect(metrics.value("gatehouse_storage_up") == 0)
            // A check that would bind the open gate cannot be written anywhere that lasts: 503, never 200.
            #expect(try await client.hook("confirm-promotion", checksum: "r1").status == .serviceUnavailable)
        }
    }
}
