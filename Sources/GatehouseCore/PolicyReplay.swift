import Foundation

/// Replays the gates Flagger passed, as the audit trail recorded them, against other rules: which
/// rollouts each rule would have held, from when, until when, and who or what could have let them go.
///
/// The trail holds what the replay needs: each gate's first answer in a rollout and every change of
/// answer (`approved`, `refused`), each approval (`opened`, by whom), who asked for a release
/// (`requested`), Flagger's events (the canary weight each traffic step reached, the end of each
/// rollout) and post-rollout reports. A gate that passed is judged by each rule at the moment it
/// passed, with the canary as it was then rebuilt from the trail (its approvals, requesters and
/// weight; its labels and analysis as they are now) and the other canaries' rollouts as they were;
/// the rule's own `guards`, the code that answers Flagger, judge it. While a rule holds, it is judged
/// again at each later moment that could change its mind (an entry of that rollout, a window's next
/// change, another canary's rollout ending), until it lets the gate go or the rollout ends.
/// Automatic rules only ever open gates and are not replayed; overrides given under the old rules
/// are not counted (the question is what the new rules hold).
public enum PolicyReplay {
    /// One rollout a rule would have held.
    public struct Held: Sendable, Codable, Equatable {
        /// The canary.
        public var canary: String
        /// The rollout's revision, when the trail names one.
        public var rollout: String?
        /// The gate held.
        public var gate: GateKind
        /// When the gate passed, and the rule would have held it.
        public var from: Date
        /// When the rule would have let it go; nil when it would not have before the rollout ended
        /// (or the replayed time did).
        public var until: Date?
        /// For how long, in seconds (until the rollout's or the replay's end when `until` is nil).
        public var seconds: Int
        /// Who or what could have let it go, in a few words.
        public var unblockedBy: String
        /// The answer Flagger would have had.
        public var message: String
    }

    /// What one rule would have done.
    public struct RuleReport: Sendable, Codable, Equatable {
        public var rule: String
        public var line: Int
        /// How many rollouts it would have held, of how many canaries, for how long in all (seconds).
        public var rolloutsHeld: Int
        public var canaries: Int
        public var seconds: Int
        public var held: [Held]
        /// Why it was not replayed, when it was not (automatic rules).
        public var skipped: String?
    }

    /// The whole replay.
    public struct Report: Sendable, Codable, Equatable {
        public var since: Date
        public var until: Date
        /// Entries read, canaries and rollouts found in them.
        public var entries: Int
        public var canaries: Int
        public var rollouts: Int
        public var rules: [RuleReport]

        /// Whether any rule would have held any rollout.
        public var holdsAny: Bool { rules.contains { !$0.held.isEmpty } }
    }

    /// Replays `entries` (any order; those of `since` ..< `until`) against `policy`. `canaries` are
    /// the canaries as they are now: their labels and analysis, and when one last succeeded before
    /// the replayed time.
    public static func run(
        _ policy: Policy, entries: [AuditEntry], canaries: [Canary], since: Date, until: Date
    ) -> Report {
        let known = Dictionary(canaries.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var byCanary: [CanaryID: [AuditEntry]] = [:]
        for entry in entries where entry.at >= since && entry.at < until {
            guard let namespace = entry.namespace, let name = entry.name,
                let id = try? CanaryID(cluster: entry.cluster ?? "", namespace: namespace, name: name)
            else { continue }
            byCanary[id, default: []].append(entry)
        }
        let releases = byCanary.mapValues { entries in
            Release.split(entries.sorted { ($0.at, $0.id) < ($1.at, $1.id) })
        }
        let world = World(releases: releases, known: known, until: until)
        var reports: [RuleReport] = []
        for rule in policy.rules {
            var report = RuleReport(
                rule: rule.name, line: rule.line, rolloutsHeld: 0, canaries: 0, seconds: 0, held: [])
            if case .automatic = rule.requirement {
                report.skipped = "an automatic rule only opens gates"
                reports.append(report)
                continue
            }
            var enforced = rule
            enforced.enforced = true
            for id in releases.keys.sorted() {
                for (index, release) in releases[id, default: []].enumerated() {
                    for gate in GateKind.policyGates where rule.gates.contains(gate) {
                        if let held = world.judge(enforced, id: id, release: index, gate: gate, since: since) {
                            report.held.append(held)
                        }
                    }
                }
            }
            report.rolloutsHeld = Set(report.held.map { "\($0.canary) \($0.rollout ?? "") \($0.from)" }).count
            report.canaries = Set(report.held.map(\.canary)).count
            report.seconds = report.held.map(\.seconds).reduce(0, +)
            reports.append(report)
        }
        return Report(
            since: since, until: until, entries: byCanary.values.map(\.count).reduce(0, +), canaries: releases.count,
            rollouts: releases.values.map(\.count).reduce(0, +), rules: reports)
    }

    /// Every canary's releases, and how to rebuild one canary or all at a moment.
    struct World {
        let releases: [CanaryID: [Release]]
        let known: [CanaryID: Canary]
        let until: Date

        /// A moment of one release: a time, and how many of its entries (oldest first) had happened
        /// by then. The trail's order is its entries' order (the API gives times to the second).
        struct Moment {
            var at: Date
            var seen: Int
        }

        /// Whether `rule` would have held `gate` of one release: judged when it first passed, then
        /// at each moment that could change the rule's mind.
        func judge(_ rule: PolicyRule, id: CanaryID, release index: Int, gate: GateKind, since: Date) -> Held? {
            let release = releases[id, default: []][index]
            let end = release.end ?? until
            for passed in passes(of: gate, in: release) {
                guard let hold = holds(rule, id: id, release: index, gate: gate, at: passed) else { continue }
                // After each later entry of the release; at a window's next change; when another canary's rollout ends.
                var moments = release.entries.indices.dropFirst(passed.seen).map {
                    Moment(at: release.entries[$0].at, seen: $0 + 1)
                }
                var dates = releases.values.flatMap { $0.compactMap(\.end) }.filter { $0 > passed.at && $0 < end }
                if case .window(let window) = rule.requirement, let change = window.nextChange(after: passed.at) {
                    dates.append(change)
                }
                moments += Set(dates).map { date in
                    Moment(at: date, seen: release.entries.lastIndex { $0.at <= date }.map { $0 + 1 } ?? 0)
                }
                let released =
                    moments
                    .filter { $0.at < end }
                    .sorted { ($0.at, $0.seen) < ($1.at, $1.seen) }
                    .first { self.holds(rule, id: id, release: index, gate: gate, at: $0) == nil }
                return Held(
                    canary: id.description, rollout: release.revision?.text, gate: gate, from: passed.at,
                    until: released?.at,
                    seconds: max(Int(((released?.at ?? end).timeIntervalSince(passed.at)).rounded()), 0),
                    unblockedBy: hold.needed, message: hold.message)
            }
            return nil
        }

        /// When `gate` passed in a release, just before the entry that says so: its answers turning
        /// to approved (the first answer of a rollout and each change of answer are recorded) and,
        /// for traffic, each step Flagger's events report.
        func passes(of gate: GateKind, in release: Release) -> [Moment] {
            release.entries.indices.filter { index in
                let entry = release.entries[index]
                return (entry.gate == gate && entry.action == .approved)
                    || (gate == .traffic && entry.action == .event && advanced(entry) != nil)
            }
            .map { Moment(at: release.entries[$0].at, seen: $0) }
        }

        func advanced(_ entry: AuditEntry) -> Int? { entry.reason.flatMap(FlaggerMessage.advancedWeight) }

        /// The hold `rule` puts on `gate` at `moment`, with the canary rebuilt as it was then.
        func holds(_ rule: PolicyRule, id: CanaryID, release index: Int, gate: GateKind, at moment: Moment) -> Hold? {
            let canary = rebuilt(id, release: index, gate: gate, at: moment)
            let policy = Policy(rules: [rule])
            let needs = policy.needsPeers(canary, gate: gate, at: moment.at)
            let peers =
                needs.isEmpty
                ? CanaryTable()
                : CanaryTable(
                    (needs.rollouts ? Array(releases.keys) : needs.canaries).filter { $0 != id }.compactMap {
                        peer($0, at: moment.at)
                    })
            let guards = canary.guards(
                gate, under: [rule], in: Surroundings(policy: policy, peers: peers), at: moment.at)
            let check = Check(canary: id, gate: gate, checksum: nil)
            return guards.holds.first ?? guards.approvalsHold(on: canary.gate(gate), of: check)
                ?? (gate == .rollout ? guards.queue : nil)
        }

        /// The canary as the trail shows it at `moment` of one release: its approvals of `gate` in the
        /// release, who asked for it, its weight, when it last succeeded, and its labels and analysis
        /// as they are now (without an analysis, the weights its steps reached).
        func rebuilt(_ id: CanaryID, release index: Int, gate: GateKind, at moment: Moment) -> Canary {
            let history = releases[id, default: []]
            let release = history[index]
            let earlier = release.entries.prefix(moment.seen)
            var canary = Canary(id: id)
            let now = known[id]
            canary.labels = now?.labels ?? CanaryLabels()
            if canary.labels.trafficPlan == nil {
                let reached = Set(release.entries.compactMap(advanced)).sorted()
                if !reached.isEmpty { canary.labels.stepWeights = reached }
            }
            var open = Gate.closed(gate)
            open.isOpen = true
            for entry in earlier where entry.gate == gate && entry.action == .opened {
                if !open.approvals.contains(entry.actor) { open.approvals.append(entry.actor) }
                open.openedAt = open.openedAt ?? entry.at
            }
            canary.gates[gate] = open
            canary.requestedBy = Array(Set(earlier.filter { $0.action == .requested }.map(\.actor))).sorted()
            if gate != .rollout,
                let opener = earlier.last(where: { $0.gate == .rollout && $0.action == .opened })?.actor
            {
                var rolloutGate = Gate.closed(.rollout)
                rolloutGate.isOpen = true
                rolloutGate.actor = opener
                canary.gates[.rollout] = rolloutGate
            }
            canary.trafficWeight = earlier.compactMap { $0.reason.flatMap(FlaggerMessage.weight(after:)) }.last
            let succeeded = history[..<index].filter { $0.outcome == .succeeded }.compactMap(\.end).last
            canary.succeededAt =
                succeeded ?? now?.succeededAt.flatMap { $0 < (history.first?.start ?? moment.at) ? $0 : nil }
            canary.rollout =
                gate == .rollout
                ? Rollout(stage: .waiting, since: release.start)
                : Rollout(stage: .progressing, since: release.start, startedAt: release.start)
            canary.lastSeen = moment.at
            return canary
        }

        /// Another canary as it was at `moment`: in a rollout, or after one (with its outcome).
        func peer(_ id: CanaryID, at moment: Date) -> Canary? {
            var canary = Canary(id: id)
            canary.labels = known[id]?.labels ?? CanaryLabels()
            canary.lastSeen = moment
            guard let release = releases[id, default: []].last(where: { $0.start <= moment }) else {
                return known[id] == nil ? nil : canary
            }
            if let end = release.end, end <= moment {
                canary.rollout = Rollout(stage: .ended, since: end, startedAt: release.start, outcome: release.outcome)
            } else {
                canary.rollout = Rollout(stage: .progressing, since: release.start, startedAt: release.start)
            }
            return canary
        }
    }
}
