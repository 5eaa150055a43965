import Foundation
import GatehouseCore
import Testing

@Suite("Kubernetes names", .timeLimit(.minutes(3)))
struct CanaryIDTests {
    @Test(
        "valid names are accepted",
        arguments: [
            ("test", "podinfo"), ("a", "b"), ("team-1", "api.v2"), ("0", "a-b.c-d.0"), ("a--b", "x--y.z"),
            (String(repeating: "n", count: 63), String(repeating: "x", count: 253)),
        ])
    func accepts(namespace: String, name: String) throws {
        let id = try CanaryID(namespace: namespace, name: name)
        #expect(id.description == "\(namespace)/\(name)")
    }

    @Test(
        "invalid namespaces are refused with a sentence naming the field",
        arguments: [
            "", "Test", "-test", "test-", "te_st", "te.st", String(repeating: "n", count: 64), "tést",
        ])
    func refusesNamespace(namespace: String) {
        #expect {
            try CanaryID(namespace: namespace, name: "podinfo")
        } throws: { error in
            (error as? InvalidInput)?.message.hasPrefix("namespace") == true
        }
    }

    @Test(
        "invalid names are refused",
        arguments: [
            "", "Podinfo", "pod..info", ".podinfo", "podinfo.", "pod info", "pod/info", "pod-.info", "pod.-info",
            "-podinfo", "podinfo-", "pod_info", "pod.info-", ".", "-",
            String(repeating: "x", count: 254),
        ])
    func refusesName(name: String) {
        #expect(throws: InvalidInput.self) { try CanaryID(namespace: "test", name: name) }
    }
}

@Suite("Durations as Kubernetes users write them", .timeLimit(.minutes(3)))
struct DurationTextTests {
    @Test(arguments: [
        ("90s", 90.0), ("15m", 900), ("2h", 7200), ("1h30m", 5400), ("7d", 604_800), ("500ms", 0.5), ("1.5h", 5400),
    ])
    func parses(text: String, seconds: Double) throws {
        #expect(try DurationText.seconds(from: text) == seconds)
    }

    @Test(arguments: ["", "abc", "10", "5x", "-5m", "0s", "m", "1.5.5h", "400d", ".5h", "1.h", " 1h", "1h "])
    func refuses(text: String) {
        #expect(throws: InvalidInput.self) { try DurationText.seconds(from: text) }
    }

    @Test func formats() {
        #expect(DurationText.format(5400) == "1h30m")
        #expect(DurationText.format(45) == "45s")
    }

    @Test func parsesRFC3339() throws {
        let date = try Timestamp.date(from: "2026-11-21T18:00:00Z", field: "expiresAt")
        #expect(Timestamp.string(from: date) == "2026-11-21T18:00:00Z")
        let offset = try Timestamp.date(from: "2026-11-21T20:00:00.500+02:00", field: "expiresAt")
        #expect(abs(offset.timeIntervalSince(date) - 0.5) < 0.001)
        #expect(throws: InvalidInput.self) { try Timestamp.date(from: "tomorrow", field: "expiresAt") }
        // RFC 3339 allows offsets up to ±23:59 and a lower-case t and z.
        #expect(try Timestamp.date(from: "2026-11-22T16:22:00+22:22", field: "since") == date)
        #expect(try Timestamp.date(from: "2026-11-21T00:00:00-18:00", field: "since") == date)
        #expect(try Timestamp.date(from: "2026-11-21t18:00:00z", field: "since") == date)
        for wrong in ["2026-11-21T18:00:00+24:00", "2026-11-21T18:00:00+1-:00", "2026-11-21T18:00:00+-1:00"] {
            #expect(throws: InvalidInput.self, "\(wrong)") { try Timestamp.date(from: wrong, field: "since") }
        }
    }
}

@Suite("Ids alike enough to be meant")
struct LookalikeTests {
    @Test("a name a typo or two away in the same namespace, or the same name elsewhere in the cluster")
    func alike() throws {
        let meant = try CanaryID(namespace: "shop", name: "checkout")
        #expect(Lookalike.distance(of: meant, from: try CanaryID(namespace: "shop", name: "chekout")) == 1)
        #expect(Lookalike.distance(of: meant, from: try CanaryID(namespace: "shop", name: "chcekout")) == 2)
        #expect(Lookalike.distance(of: meant, from: try CanaryID(namespace: "shop", name: "payments")) == nil)
        #expect(Lookalike.distance(of: meant, from: try CanaryID(namespace: "default", name: "checkout")) == 3)
        #expect(Lookalike.distance(of: meant, from: try CanaryID(namespace: "default", name: "chekout")) == nil)
        #expect(Lookalike.distance(of: meant, from: meant) == nil, "the same id is not a lookalike")
        #expect(
            Lookalike.distance(of: meant, from: try CanaryID(cluster: "eu-1", namespace: "shop", name: "checkout"))
                == nil, "another cluster's canary is another canary")
        // Short names allow one edit only: "api" is not "app".
        #expect(Lookalike.editDistance("api", "app", atMost: 1) == 1)
        #expect(
            Lookalike.distance(
                of: try CanaryID(namespace: "a", name: "web"), from: try CanaryID(namespace: "a", name: "api")) == nil)
    }
}
