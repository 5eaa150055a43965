import Foundation
import GatehouseServer
import HummingbirdTesting
import Synchronization
import Testing

/// Plays scenarios on one live Gatehouse, each on a canary of its own namespace, over a few connections.
final class ModelPlayer: Sendable {
    let port: Int
    let label: String
    private let counter = Atomic<Int>(0)

    init(port: Int, label: String) {
        self.port = port
        self.label = label
    }

    /// A fresh namespace for each play, so that replays while shrinking start from nothing; its
    /// prefix selects the scenario's policy rule.
    private func namespace(_ scenario: Scenario) -> String {
        "\(scenario.spec.policy.prefix)-\(label)\(counter.add(1, ordering: .relaxed).newValue)"
    }

    func play(_ scenario: Scenario, on connection: ModelConnection) async throws -> [String] {
        try await ModelRun(scenario, namespace: namespace(scenario), connection: connection).play()
    }

    /// Plays a scenario and returns every call and answer, for the report of a broken promise.
    func trace(_ scenario: Scenario, on connection: ModelConnection) async throws -> String {
        let run = ModelRun(scenario, namespace: namespace(scenario), connection: connection)
        _ = try await run.play()
        return run.trace.joined(separator: "\n")
    }

    /// Removes steps while the scenario still breaks a promise (delta debugging), so that what is
    /// printed is short enough to read and to paste as a regression test.
    func shrink(_ scenario: Scenario, on connection: ModelConnection) async throws -> (Scenario, [String]) {
        var best = scenario
        var violations = try await play(best, on: connection)
        var chunk = max(1, best.steps.count / 2)
        var attempts = 0
        while chunk >= 1 && attempts < 400 {
            var start = 0
            var removedAny = false
            while start < best.steps.count && attempts < 400 {
                var candidate = best
                candidate.steps.removeSubrange(start..<min(best.steps.count, start + chunk))
                attempts += 1
                let found = try await play(candidate, on: connection)
                if !found.isEmpty {
                    best = candidate
                    violations = found
                    removedAny = true
                } else {
                    start += chunk
                }
            }
            if !removedAny { chunk /= 2 }
        }
        return (best, violations)
    }

    /// Opens `count` connections to the service and runs `body` with each, concurrently.
    func withConnections(
        _ count: Int, _ body: @escaping @Sendable (Int, ModelConnection) async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<count {
                group.addTask {
                    let client = TestClient(host: "127.0.0.1", port: self.port)
                    client.connect()
                    do {
                        try await body(worker, ModelConnection(client: client))
                    } catch {
                        try? await client.shutdown()
                        throw error
                    }
                    try await client.shutdown()
                }
            }
            try await group.waitForAll()
        }
    }
}

@Suite(
    "A model of Flagger's scheduler, with people acting at random points, keeps every promise", .timeLimit(.minutes(5)))
struct FlaggerModelTests {
    /// How many runs, and from which seed: `GATEHOUSE_MODEL_RUNS` and `GATEHOUSE_MODEL_SEED` run more or others.
    static let runs = ProcessInfo.processInfo.environment["GATEHOUSE_MODEL_RUNS"].flatMap(Int.init) ?? 2000
    static let seed = ProcessInfo.processInfo.environment["GATEHOUSE_MODEL_SEED"].flatMap(UInt64.init) ?? 20_261_206

    /// A service with the model's policy file.
    static func server() throws -> TestServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-model-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let policy = directory.appendingPathComponent("policy.yaml")
        try ModelPolicy.file.write(to: policy, atomically: true, encoding: .utf8)
        return try TestServer { $0.policyFile = policy.path }
    }

    @Test(
        "random Flagger runs in every mode, hook set and policy, with approvals, rollbacks and freezes at random points"
    )
    func randomRuns() async throws {
        let runs = Self.runs
        let seed = Self.seed
        let failures = Mutex<[String]>([])
        let next = Atomic<Int>(0)
        try await Self.server().run(.live) { client in
            let player = ModelPlayer(port: try #require(client.client.port), label: "")
            try await player.withConnections(4) { _, connection in
                while true {
                    let index = next.add(1, ordering: .relaxed).oldValue
                    guard index < runs, failures.withLock({ $0.count < 3 }) else { return }
                    var generator = ScenarioGenerator(seed: seed &+ UInt64(index))
                    let scenario = generator.next()
                    guard try await !player.play(scenario, on: connection).isEmpty else { continue }
                    let (shrunk, violations) = try await player.shrink(scenario, on: connection)
                    let trace = try await player.trace(shrunk, on: connection)
                    failures.withLock {
                        $0.append(
                            "run \(index) of seed \(seed) breaks a promise; shrunk to:\n\(shrunk)\n"
                                + violations.joined(separator: "\n") + "\nCalls and answers:\n\(trace)")
                    }
                }
            }
        }
        for failure in failures.withLock({ $0 }) { Issue.record(Comment(rawValue: failure)) }
    }

    /// Regression scenarios: each once broke a promise; each is named after what a user relies on.
    static let regressions: [(String, Scenario)] = [
        (
            "an approval given during a rollout that then fails does not promote the next revision (gate hooks only)",
            Scenario(
                spec: CanarySpec(
                    strategy: .canary(stepWeight: 50, stepWeights: [], maxWeight: 50), threshold: 1,
                    hooks: [.confirmRollout, .confirmPromotion, .rollback]),
                steps: [
                    .apply, .open(.rollout, .once), .tick, .tick, .open(.promotion, .once), .metrics(healthy: false),
                    .tick, .tick, .tick, .apply, .metrics(healthy: true), .tick, .open(.rollout, .once), .tick, .tick,
                    .tick, .tick,
                ])
        ),
        (
            "a CI pre-approval of the rest of the traffic checks serves the next rollout (gate hooks only)",
            Scenario(
                spec: CanarySpec(
                    strategy: .canary(stepWeight: 25, stepWeights: [], maxWeight: 50),
                    hooks: [.confirmRollout, .confirmTrafficIncrease, .confirmPromotion]),
                steps: [
                    .apply, .open(.rollout, .once), .open(.traffic, .sticky), .open(.promotion, .once), .tick, .tick,
                    .tick, .tick, .tick, .close(.traffic), .preapprove, .tick, .tick, .tick, .tick, .tick, .tick,
                ])
        ),
        (
            "Blue/Green: a rollback asked after the first promotion pass fires at the next tick",
            Scenario(
                spec: CanarySpec(
                    strategy: .blueGreen(iterations: 1, mirror: false), hooks: [.confirmPromotion, .rollback]),
                steps: [.apply, .open(.promotion, .once), .tick, .tick, .tick, .rollback(force: false), .tick])
        ),
        (
            "skipAnalysis: a CI promotion approval ends with the skipped rollout, not promoting the next analysed one (gate hooks only)",
            Scenario(
                spec: CanarySpec(
                    strategy: .canary(stepWeight: 50, stepWeights: [], maxWeight: 50), skipAnalysis: true,
                    hooks: [.confirmRollout, .confirmPromotion]),
                steps: [
                    .preapprove, .tick, .tick, .skipAnalysis(false), .apply, .tick, .open(.rollout, .once), .tick,
                    .tick, .tick,
                ])
        ),
        (
            "a forced rollback asked after promotion never fires on the next release (gate hooks only)",
            Scenario(
                spec: CanarySpec(
                    strategy: .canary(stepWeight: 50, stepWeights: [], maxWeight: 50),
                    hooks: [.confirmRollout, .confirmPromotion, .rollback]),
                steps: [
                    .preapprove, .tick, .tick, .tick, .tick, .rollback(force: true), .tick, .tick, .preapprove,
                    .tick, .tick, .tick,
                ])
        ),
        (
            "Blue/Green: a promotion approval given between its two promotion checks ends with its rollout when a new revision replaces it",
            Scenario(
                spec: CanarySpec(
                    strategy: .blueGreen(iterations: 1, mirror: false),
                    hooks: [.confirmPromotion, .confirmTrafficIncrease], globalEventWebhook: true, retries: 2),
                steps: [.apply, .tick, .tick, .open(.promotion, .once), .tick, .preapprove, .tick, .tick, .tick])
        ),
        (
            "without a rollout hook, a new revision is a new rollout: the last one's promotion approval does not pass it",
            Scenario(
                spec: CanarySpec(
                    strategy: .canary(stepWeight: 50, stepWeights: [], maxWeight: 50), threshold: 1,
                    hooks: [.confirmPromotion, .rollback]),
                steps: [
                    .apply, .tick, .tick, .metrics(healthy: false), .open(.promotion, .once), .tick, .tick, .tick,
                    .metrics(healthy: true), .apply, .tick, .tick, .tick,
                ])
        ),
    ]

    @Test("regression scenarios found by the model keep every promise", arguments: regressions.indices)
    func regression(index: Int) async throws {
        let (name, scenario) = Self.regressions[index]
        try await Self.server().run(.live) { client in
            let player = ModelPlayer(port: try #require(client.client.port), label: "r")
            try await player.withConnections(1) { _, connection in
                let violations = try await player.play(scenario, on: connection)
                #expect(violations.isEmpty, "\(name):\n\(violations.joined(separator: "\n"))")
            }
        }
    }
}
