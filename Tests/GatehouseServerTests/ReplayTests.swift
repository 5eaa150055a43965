import Foundation
import GatehouseCore
import GatehouseStore
import Testing

@testable import GatehouseServer

/// A history recorded the way a service records it: Flagger's recorded calls for podinfo.test,
/// sent to a store on a real SQLite file at known moments (ticks 60 s apart, calls 10 ms apart),
/// with people acting 30 s into the tick their note follows.
struct RecordedHistory {
    let store: GateStore
    let directory: URL
    /// The first tick.
    static let start = Date(timeIntervalSince1970: 1_794_999_960)  // on a whole minute: windows are in minutes

    /// Who does what the scenario's notes say.
    static let people: [String: (GateKind, OpenRequest, String)] = [
        "someone opens the rollout gate": (.rollout, OpenRequest(reason: "release 1.4"), "dana"),
        "someone approves 3 traffic steps": (.traffic, OpenRequest(steps: 3), "erin"),
        "someone approves 1 more traffic step (the extra check at max weight)": (
            .traffic, OpenRequest(steps: 1), "erin"
        ),
        "someone opens the promotion gate": (.promotion, OpenRequest(reason: "metrics fine"), "alice"),
    ]

    init(_ scenario: String = "promoted-with-manual-gates") async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try GateStore(
            writer: try GateStore.openDatabase(
                atPath: directory.appendingPathComponent("g.sqlite").path, busyTimeout: 5))
        let podinfo = try CanaryID(namespace: "test", name: "podinfo")
        var tick = Self.start.addingTimeInterval(-60)
        var call = 0
        for step in try #require(try FlaggerSequences().sequences[scenario]) {
            if let note = step.note {
                if note.hasPrefix("tick:") {
                    tick = tick.addingTimeInterval(60)
                    call = 0
                } else if let (gate, request, person) = Self.people[note] {
                    _ = try await store.open(gate, of: podinfo, request, actor: person, at: tick.addingTimeInterval(30))
                }
                continue
            }
            guard let hook = step.hook, let body = step.body else { continue }
            call += 1
            let at = tick.addingTimeInterval(Double(call) / 100)
            let payload = try JSONDecoder().decode(FlaggerPayload.self, from: Data(body.utf8))
            switch hook {
            case "event": try await store.report(payload, of: podinfo, as: .event, at: at)
            case "post-rollout": try await store.report(payload, of: podinfo, as: .postRollout, at: at)
            default:
                let gate = try #require(GateKind.flaggerGates.first { $0.hook == hook })
                _ = try await store.check(
                    Check(canary: podinfo, gate: gate, checksum: payload.checksum, phase: payload.phase), at: at)
            }
        }
    }

    /// Every entry since the start, as `policy simulate --database` reads them.
    func entries() async throws -> [AuditEntry] {
        try await store.events(matching: AuditFilter(since: Self.start.addingTimeInterval(-60)), limit: 500)
    }

    func replay(_ policy: String) async throws -> PolicyReplay.Report {
        PolicyReplay.run(
            try PolicyFile.parse(policy), entries: try await entries(), canaries: try await store.canaries(),
            since: Self.start.addingTimeInterval(-60), until: Self.start.addingTimeInterval(3600))
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

@Suite("policy simulate: replaying a recorded history against new rules", .timeLimit(.minutes(2)))
struct ReplayTests {
    /// When the tick `index` (1 is the first) began.
    static func tick(_ index: Int) -> Date { RecordedHistory.start.addingTimeInterval(Double(index - 1) * 60) }

    @Test("each kind of rule holds the rollouts, for the time and with the way out, that the history implies")
    func knownAnswers() async throws {
        let history = try await RecordedHistory()
        defer { history.remove() }
        let report = try await history.replay(
            """
            rules:
              - name: ceiling-20
                maxWeight: {limit: 20, overrideBy: [alice]}
              - name: two-for-promotion
                gates: [promotion]
                approvals: {count: 2, from: [alice, bob]}
              - name: rollout-by-dana
                gates: [rollout]
                approvals: {count: 1, from: [dana]}
              - name: onboarding
                firstRollout: {approvals: {count: 1, from: [pat]}}
              - name: alone
                gates: [traffic]
                automatic: true
                enforce: false
            """)
        let trail = try await history.entries().reversed().map {
            "\($0.at.timeIntervalSince(RecordedHistory.start)) \($0.action) \($0.gate?.rawValue ?? "") \($0.reason ?? "")"
        }
        #expect(report.rollouts == 1 && report.canaries == 1, "\(trail.joined(separator: "\n"))")
        let rules = Dictionary(uniqueKeysWithValues: report.rules.map { ($0.rule, $0) })

        // Flagger went 0, 10, 20, 30: the step from 20% (tick 7) is above the ceiling, and nothing
        // in the history lifts it before the rollout ends (post-rollout, tick 13).
        let ceiling = try #require(rules["ceiling-20"]?.held.first)
        #expect(rules["ceiling-20"]?.held.count == 1)
        #expect(ceiling.gate == .traffic && ceiling.canary == "test/podinfo" && ceiling.rollout == "rev1")
        #expect(abs(ceiling.from.timeIntervalSince(Self.tick(7))) < 1, "\(ceiling.from)")
        #expect(ceiling.until == nil && (359...361).contains(ceiling.seconds), "\(ceiling)")
        #expect(ceiling.unblockedBy == "an override by one of alice")
        #expect(ceiling.message.contains("this step would take it from 20% to 30%"))

        // Only alice opened the promotion gate (tick 10, 30 s in): a second person never came.
        let promotion = try #require(rules["two-for-promotion"]?.held.first)
        #expect(abs(promotion.from.timeIntervalSince(Self.tick(11))) < 1, "passed at tick 11: \(promotion.from)")
        #expect(promotion.until == nil && promotion.unblockedBy.contains("waiting for one of: bob"), "\(promotion)")

        // dana opened the rollout gate: the rule would not have held it.
        #expect(rules["rollout-by-dana"]?.held.isEmpty == true)
        // No rollout of podinfo succeeded before: its first one needs pat, who never approved.
        let first = try #require(rules["onboarding"]?.held.first)
        #expect(first.gate == .rollout && abs(first.from.timeIntervalSince(Self.tick(3))) < 1, "\(first)")
        #expect(first.unblockedBy.contains("waiting for one of: pat"))
        #expect(rules["alone"]?.skipped == "an automatic rule only opens gates")
        #expect(report.holdsAny)
    }

    @Test("a window lets a held gate go when it opens; a rule the history satisfies holds nothing")
    func windowsAndSatisfiedRules() async throws {
        let history = try await RecordedHistory()
        defer { history.remove() }
        // Closed from the first tick for 5 minutes (UTC): the rollout gate passed at tick 3, inside it.
        let opens = Self.tick(1).addingTimeInterval(300)
        let format = Date.ISO8601FormatStyle(timeZone: .gmt)
        let weekday = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][
            Calendar(identifier: .gregorian).dateComponents(in: .gmt, from: opens).weekday! - 1]
        let from = Self.tick(1).formatted(format.timeSeparator(.colon).time(includingFractionalSeconds: false))
            .prefix(5)
        let until = opens.formatted(format.time(includingFractionalSeconds: false)).prefix(5)
        let report = try await history.replay(
            """
            rules:
              - name: quiet
                gates: [rollout]
                window: {closed: "\(weekday) \(from)-\(until)", timeZone: UTC}
              - name: one-for-promotion
                gates: [promotion]
                approvals: {count: 1, from: [alice]}
            """)
        let quiet = try #require(report.rules.first { $0.rule == "quiet" }?.held.first, "\(report)")
        #expect(quiet.until == opens, "let go when the window opens: \(quiet)")
        #expect(abs(Double(quiet.seconds) - opens.timeIntervalSince(Self.tick(3))) <= 1)
        #expect(report.rules.first { $0.rule == "one-for-promotion" }?.held.isEmpty == true)
    }
}
