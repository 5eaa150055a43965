import Foundation
import GatehouseServer
import HTTPTypes
import Testing

/// Secrets of two clusters' Flagger, and tokens scoped to clusters.
enum ClusterSecrets {
    static let euFlagger = "eu-1-flagger-secret"
    static let usFlagger = "us-1-flagger-secret"
    static let euOperator = "eu-operator-token"
    static let ops = "ops-everywhere-token"

    static let file = """
        flagger:
          - cluster: eu-1
            sha256: \(AccessPolicy.hash(of: euFlagger))
          - cluster: us-1
            sha256: \(AccessPolicy.hash(of: usFlagger))
        tokens:
          - name: eu-operator
            sha256: \(AccessPolicy.hash(of: euOperator))
            clusters: [eu-1]
            namespaces: ["*"]
            actions: [read, open, close, rollback, freeze]
          - name: ops
            sha256: \(AccessPolicy.hash(of: ops))
            namespaces: ["*"]
            actions: [read, open, close, rollback, freeze]
        slack:
          users:
            - id: UEU
              clusters: [eu-1]
              namespaces: ["*"]
              actions: [read, open, freeze]
        """
}

extension Client {
    /// A gate call as one cluster's Flagger makes it: the webhook's metadata carries what its
    /// Canary says (a cluster name, a secret, or both).
    func clusterHook(_ hook: String, metadata: [String: String], checksum: String = "rev1") async throws -> Reply {
        let fields = metadata.sorted { $0.key < $1.key }.map { #""\#($0.key)": "\#($0.value)""# }
        return try await post(
            "/v1/flagger/\(hook)",
            #"{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "\#(checksum)", "metadata": {\#(fields.joined(separator: ", "))}}"#
        )
    }
}

@Suite("Many clusters on one Gatehouse", .timeLimit(.minutes(3)))
struct ClusterTests {
    @Test("canaries of the same namespace and name in two clusters, and in none, have gates of their own")
    func separateCanaries() async throws {
        try await TestServer().run { client in
            for cluster in ["eu-1", "us-1"] {
                #expect(
                    try await client.clusterHook("confirm-promotion", metadata: ["cluster": cluster]).status
                        == .forbidden)
            }
            #expect(try await client.hook("confirm-promotion", checksum: "rev1").status == .forbidden)

            let opened = try await client.post("/v1/canaries/test/podinfo/gates/promotion/open?cluster=eu-1")
            #expect(opened.status == .ok, "\(opened.text)")
            #expect(try opened.json()["cluster"] as? String == "eu-1")

            #expect(try await client.clusterHook("confirm-promotion", metadata: ["cluster": "eu-1"]).status == .ok)
            let other = try await client.clusterHook("confirm-promotion", metadata: ["cluster": "us-1"])
            #expect(other.status == .forbidden)
            #expect(other.text.contains("gatehouse open promotion podinfo -n test --cluster us-1"), "\(other.text)")
            #expect(try await client.hook("confirm-promotion", checksum: "rev1").status == .forbidden)

            let all = try await client.get("/v1/canaries").json()["canaries"] as? [[String: Any]] ?? []
            #expect(all.map { $0["cluster"] as? String ?? "" } == ["", "eu-1", "us-1"])
            let eu = try await client.get("/v1/canaries?cluster=eu-1").json()["canaries"] as? [[String: Any]] ?? []
            #expect(eu.count == 1 && eu.first?["cluster"] as? String == "eu-1")

            let euEvents = try await client.get("/v1/canaries/test/podinfo/events?cluster=eu-1").json()
            let entries = euEvents["events"] as? [[String: Any]] ?? []
            #expect(!entries.isEmpty && entries.allSatisfy { $0["cluster"] as? String == "eu-1" })
            let unnamedEvents = try await client.get("/v1/canaries/test/podinfo/events").json()
            #expect((unnamedEvents["events"] as? [[String: Any]] ?? []).allSatisfy { $0["cluster"] == nil })

            let metrics = try await client.get("/metrics").text
            #expect(
                metrics.contains(
                    #"gatehouse_gate_open{cluster="eu-1",namespace="test",name="podinfo",gate="promotion"} 1"#))

            let bad = try await client.get("/v1/canaries/test/podinfo?cluster=EU_1")
            #expect(bad.status == .badRequest && bad.text.contains("cluster"), "\(bad.text)")
            let badHook = try await client.clusterHook("confirm-promotion", metadata: ["cluster": "Not A Cluster"])
            #expect(badHook.status == .badRequest && badHook.text.contains("cluster"), "\(badHook.text)")
        }
    }

    @Test(
        "each cluster's Flagger secret names its cluster; a mismatched or missing secret is refused and changes nothing"
    )
    func flaggerSecretsNameClusters() async throws {
        try await serverWithAccess(file: ClusterSecrets.file).run { client in
            let eu = try await client.clusterHook("confirm-rollout", metadata: ["token": ClusterSecrets.euFlagger])
            #expect(eu.status == .forbidden)
            let named = try await client.clusterHook(
                "confirm-rollout", metadata: ["token": ClusterSecrets.euFlagger, "cluster": "eu-1"])
            #expect(named.status == .forbidden, "the same canary, named as its secret names it")

            let mismatch = try await client.clusterHook(
                "confirm-rollout", metadata: ["token": ClusterSecrets.euFlagger, "cluster": "us-1"])
            #expect(mismatch.status == .forbidden && mismatch.text.contains("cluster eu-1's"), "\(mismatch.text)")
            let missing = try await client.clusterHook("confirm-rollout", metadata: ["cluster": "eu-1"])
            #expect(missing.status == .forbidden && missing.text.contains("metadata.token"), "\(missing.text)")

            let list = try await client.send(.get, "/v1/canaries", token: ClusterSecrets.ops).json()
            let canaries = list["canaries"] as? [[String: Any]] ?? []
            #expect(canaries.map { $0["cluster"] as? String } == ["eu-1"], "only the calls with a right secret count")

            // A token scoped to eu-1 acts there, and nowhere else.
            let open = try await client.send(
                .post, "/v1/canaries/test/podinfo/gates/rollout/open?cluster=eu-1", token: ClusterSecrets.euOperator)
            #expect(open.status == .ok, "\(open.text)")
            #expect(
                try await client.clusterHook("confirm-rollout", metadata: ["token": ClusterSecrets.euFlagger]).status
                    == .ok)
            let elsewhere = try await client.send(
                .post, "/v1/canaries/test/podinfo/gates/rollout/open?cluster=us-1", token: ClusterSecrets.euOperator)
            #expect(elsewhere.status == .forbidden && elsewhere.text.contains("cluster us-1"), "\(elsewhere.text)")
            let unnamed = try await client.send(
                .post, "/v1/canaries/test/podinfo/gates/rollout/open", token: ClusterSecrets.euOperator)
            #expect(unnamed.status == .forbidden)
            #expect(
                try await client.clusterHook("confirm-rollout", metadata: ["token": ClusterSecrets.usFlagger]).status
                    == .forbidden)
            let seen = try await client.send(.get, "/v1/canaries", token: ClusterSecrets.euOperator).json()
            #expect((seen["canaries"] as? [[String: Any]] ?? []).allSatisfy { $0["cluster"] as? String == "eu-1" })
        }
    }

    @Test("a freeze of one cluster holds only that cluster's canaries; Slack names canaries and freezes by cluster")
    func freezeOneCluster() async throws {
        try await serverWithAccess(file: ClusterSecrets.file) { $0.slackSigningSecret = SlackSigner().secret }.run {
            client in
            for secret in [ClusterSecrets.euFlagger, ClusterSecrets.usFlagger] {
                _ = try await client.clusterHook("confirm-promotion", metadata: ["token": secret])
                let open = try await client.send(
                    .post,
                    "/v1/canaries/test/podinfo/gates/promotion/open?cluster=\(secret == ClusterSecrets.euFlagger ? "eu-1" : "us-1")",
                    token: ClusterSecrets.ops, body: #"{"sticky": true}"#)
                #expect(open.status == .ok, "\(open.text)")
            }
            let refused = try await client.slack("freeze us-1/all maintenance", user: "UEU")
            #expect(refused.type == "ephemeral" && refused.text.contains("cluster us-1"), "\(refused.text)")
            let froze = try await client.slack("freeze eu-1/all node upgrade", user: "UEU")
            #expect(
                froze.type == "in_channel" && froze.text.contains("every namespace of cluster eu-1"), "\(froze.text)")

            let held = try await client.clusterHook("confirm-promotion", metadata: ["token": ClusterSecrets.euFlagger])
            #expect(held.status == .forbidden && held.text.contains("of cluster eu-1 are frozen"), "\(held.text)")
            #expect(
                try await client.clusterHook("confirm-promotion", metadata: ["token": ClusterSecrets.usFlagger]).status
                    == .ok)

            let freezes = try await client.send(.get, "/v1/freezes", token: ClusterSecrets.euOperator).json()
            #expect((freezes["freezes"] as? [[String: Any]] ?? []).map { $0["cluster"] as? String } == ["eu-1"])

            let status = try await client.slack("status eu-1/test/podinfo", user: "UEU")
            #expect(status.text.contains("eu-1/test/podinfo"), "\(status.text)")
            let notYours = try await client.slack("open promotion us-1/test/podinfo", user: "UEU")
            #expect(notYours.type == "ephemeral" && notYours.text.contains("cluster us-1"), "\(notYours.text)")
        }
    }
}
