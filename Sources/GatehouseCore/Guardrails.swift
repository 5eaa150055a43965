import Foundation

/// What a check is decided against besides the canary itself: the freezes in force, the policy, and
/// the other canaries its rules look at (rollout slots, dependencies).
public struct Surroundings: Sendable {
    /// The freezes (those not in force are ignored).
    public var freezes: [Freeze]
    /// The policy in force.
    public var policy: Policy
    /// Other canaries, by identity: at least those `Policy.needsPeers` names.
    public var peers: CanaryTable

    /// Creates one.
    public init(freezes: [Freeze] = [], policy: Policy = .none, peers: CanaryTable = CanaryTable()) {
        self.freezes = freezes
        self.policy = policy
        self.peers = peers
    }
}

/// What the policy says of one check, before the gate's own state is weighed.
public struct Guards: Sendable {
    /// Rules holding the gate whatever its state (windows, dependencies).
    public var holds: [Hold] = []
    /// The automatic rule that opens the gate when nothing else holds it, if any.
    public var automatic: String?
    /// The rule counting approvals of the gate, if any, with whom it counts.
    public var approvals: (rule: String, count: Int, from: [String]?)?
    /// Those whose approval does not count: whoever requested the release.
    public var requesters: [String] = []
    /// The rollout slots' refusal, applied only when the check would otherwise admit a rollout.
    public var queue: Hold?
    /// Why an automatic rule did not open the gate this time (a traffic step above its weight).
    public var notes: [String] = []

    /// No rule applies.
    public init() {}

    /// The approvals that count on `gate`: distinct people's, among those the rule allows, not a
    /// requester's. A person approving through a group (`group:NAME`) was judged a member when the
    /// approval was given (`GateStore.requireApprover`), so a rule naming a group counts every person.
    public func countedApprovals(of gate: Gate) -> [String] {
        guard let approvals else { return gate.approvals }
        let throughGroups = approvals.from?.contains { $0.hasPrefix(Principal.groupPrefix) } ?? true
        return gate.approvals.filter { actor in
            Principal.isPerson(actor: actor) && !requesters.contains(actor)
                && (throughGroups || approvals.from?.contains(actor) == true)
        }
    }

    /// The hold of an approvals rule on an open gate with too few approvals, if any.
    public func approvalsHold(on gate: Gate, of check: Check) -> Hold? {
        guard let approvals else { return nil }
        let counted = countedApprovals(of: gate)
        guard counted.count < approvals.count else { return nil }
        let missing = approvals.count - counted.count
        let have = counted.isEmpty ? "no approvals yet" : counted.joined(separator: ", ")
        let candidates = approvals.from.map { $0.filter { !counted.contains($0) && !requesters.contains($0) } }
        let waiting: String
        if let candidates {
            waiting =
                candidates.isEmpty
                ? "no approver left who may give \(missing == 1 ? "it" : "them")"
                : "waiting for \(missing == 1 ? "one" : "\(missing)") of: \(candidates.joined(separator: ", "))"
        } else {
            waiting = "waiting for \(missing) more from anyone who may open it"
        }
        let excluded =
            requesters.isEmpty ? "" : "; \(requesters.joined(separator: ", ")) requested it and cannot approve"
        let tally = "\(counted.count) of \(approvals.count) approvals: \(have); \(waiting)"
        return Hold(
            rule: approvals.rule, kind: .approvals, since: gate.openedAt,
            message:
                "\(check.gate.rawValue) gate of \(check.canary) needs \(approvals.count) approvals from distinct people (rule \(approvals.rule)): \(tally)\(excluded); approve with: gatehouse open \(check.gate.rawValue) \(check.canary.commandLine)",
            needed: tally)
    }
}

extension Canary {
    /// Whether a rule is lifted for this canary at `now` by an override.
    public func isOverridden(_ rule: String, at now: Date) -> Bool {
        overrides.contains { $0.rule == rule && $0.expiresAt > now }
    }

    /// The canaries a dependency rule names for this canary, with those its metadata names.
    public func dependencies(named: [CanaryRef]) -> [CanaryID] {
        var seen = Set<CanaryID>()
        return (named + labels.dependsOn).compactMap { $0.resolved(from: id) }.filter {
            $0 != id && seen.insert($0).inserted
        }
    }

    /// When this canary's release began, for dependencies: its rollout's start, or when it began
    /// waiting at confirm-rollout, or `now` when it has not asked yet.
    func releaseStart(at now: Date) -> Date {
        if rollout.isInProgress, let started = rollout.startedAt { return started }
        if rollout.stage == .waiting, let since = rollout.since { return since }
        return now
    }

    /// Who requested the release in progress: the person or job that asked for approval, and, for
    /// the gates after it, whoever opened the rollout gate that let it in.
    func requesters(for gate: GateKind) -> [String] {
        var people = requestedBy
        let rolloutGate = self.gate(.rollout)
        if gate != .rollout, rolloutGate.isOpen, let opener = rolloutGate.actor, !people.contains(opener),
            opener != Gate.systemActor
        {
            people.append(opener)
        }
        return people
    }

    /// The traffic step Flagger asks `confirm-traffic-increase` for now: from the weight its events
    /// last reported to the weight its analysis (repeated in the webhook metadata) makes next.
    public var trafficStep: TrafficStep {
        guard let plan = labels.trafficPlan else {
            return .unknown(
                "Gatehouse does not know how its analysis moves traffic: add the analysis' stepWeight (or stepWeights) and maxWeight to the traffic webhook's metadata"
            )
        }
        guard let weight = trafficWeight else {
            return .unknown(
                "no event from Flagger has reported its canary weight: add an event webhook to Gatehouse (eventWebhook or an event-type webhook)"
            )
        }
        return .known(from: weight, to: plan.weight(after: weight))
    }

    /// What the policy says of a check of `gate` now: what its enforced rules say.
    public func guards(_ gate: GateKind, in surroundings: Surroundings, at now: Date) -> Guards {
        guards(gate, under: surroundings.policy.rules(for: self).filter(\.enforced), in: surroundings, at: now)
    }

    /// What `rules` (those of the policy that select this canary) say of a check of `gate` now.
    public func guards(_ gate: GateKind, under rules: [PolicyRule], in surroundings: Surroundings, at now: Date)
        -> Guards
    {
        var guards = Guards()
        guard gate.isPolicyGate else { return guards }
        let requesters = requesters(for: gate)
        for rule in rules where rule.gates.contains(gate) {
            guard !isOverridden(rule.name, at: now) else { continue }
            let overriding =
                rule.overriders.isEmpty
                ? ""
                : ", or one of \(rule.overriders.joined(separator: ", ")) overrides it: gatehouse override \(id.commandLine) \(rule.name) --reason TEXT"
            switch rule.requirement {
            case .approvals(let count, let from):
                if guards.approvals == nil {
                    guards.approvals = (rule.name, count, from)
                    guards.requesters = requesters
                }
            case .automatic(let limit):
                if let limit, gate == .traffic, rule.requirement.judgesWeight {
                    let allowed =
                        "rule \(rule.name) lets traffic steps up to \(limit)% canary weight go on by themselves"
                    switch trafficStep {
                    case .known(_, let reach) where reach <= limit: break
                    case .known(let weight, let reach):
                        guards.notes.append("\(allowed); this one goes from \(weight)% to \(reach)%")
                        continue
                    case .unknown(let why):
                        guards.notes.append("\(allowed), but \(why)")
                        continue
                    }
                }
                guards.automatic = guards.automatic ?? rule.name
            case .maxWeight(let limit):
                guard gate == .traffic else { continue }
                let lifting =
                    rule.overriders.isEmpty
                    ? "nobody may lift it (raise the rule's limit)"
                    : "it passes once one of \(rule.overriders.joined(separator: ", ")) overrides it for this rollout: gatehouse override \(id.commandLine) \(rule.name) --reason TEXT"
                let situation: String
                switch trafficStep {
                case .known(_, let reach) where reach <= limit: continue
                case .known(let weight, let reach): situation = "this step would take it from \(weight)% to \(reach)%"
                case .unknown(let why): situation = why
                }
                guards.holds.append(
                    Hold(
                        rule: rule.name, kind: .weight, since: nil,
                        message:
                            "traffic gate of \(id) is held at the weight ceiling (rule \(rule.name): canary weight at most \(limit)%): \(situation); \(lifting)",
                        needed: rule.overriders.isEmpty
                            ? "the rule's limit is raised"
                            : "an override by one of \(rule.overriders.joined(separator: ", "))"))
            case .firstRollout(let count, let from, let since):
                if let succeeded = succeededAt, succeeded >= since ?? .distantPast { continue }
                if guards.approvals == nil {
                    guards.approvals = (rule.name, count, from)
                    guards.requesters = requesters
                    let people = from.map { "one of " + $0.joined(separator: ", ") } ?? "anyone who may open it"
                    guards.notes.append(
                        "rule \(rule.name): the first rollout of \(id) through Gatehouse needs \(count) approval\(count == 1 ? "" : "s") from \(people)"
                    )
                }
            case .window(let window):
                guard !window.allows(at: now) else { continue }
                let change = window.nextChange(after: now)
                let opens = change.map { "the window opens \(window.localTime($0))" } ?? "the window opens"
                guards.holds.append(
                    Hold(
                        rule: rule.name, kind: .window, since: nil,
                        message:
                            "\(gate.rawValue) gate of \(id) is outside its deploy window (rule \(rule.name): \(window.description)); it passes when \(opens)\(overriding)",
                        needed: opens))
            case .dependencies(let named):
                if let hold = dependencyHold(rule, named: named, gate: gate, among: surroundings.peers, at: now) {
                    var hold = hold
                    hold.message += overriding
                    guards.holds.append(hold)
                }
            case .concurrency(let limit, let per, let silence):
                guard gate == .rollout, guards.queue == nil,
                    var hold = queueHold(
                        rule, limit: limit, per: per, silence: silence, among: surroundings.peers, at: now)
                else { continue }
                hold.message += overriding
                guards.queue = hold
            }
        }
        return guards
    }

    private func dependencyHold(
        _ rule: PolicyRule, named: [CanaryRef], gate: GateKind, among peers: CanaryTable, at now: Date
    ) -> Hold? {
        let start = releaseStart(at: now)
        for dependency in dependencies(named: named) {
            let peer = peers[dependency]
            let stage = peer?.rollout.stage
            // An older success does not count: the dependency's rollout must have ended after this
            // release began (it was under way then, or started later).
            if stage == .ended, peer?.rollout.outcome == .succeeded, let ended = peer?.rollout.since, ended >= start {
                continue
            }
            let situation: String
            switch (stage, peer?.rollout.outcome) {
            case (nil, _), (.idle?, _):
                situation = "Gatehouse has not seen \(dependency) in a rollout"
            case (.ended?, .failed?) where (peer?.rollout.since ?? .distantPast) >= start:
                situation = "\(dependency) failed its rollout"
            case (.ended?, _):
                situation = "\(dependency) has not succeeded in a rollout since this release began"
            case (.waiting?, _):
                situation = "\(dependency) is waiting at confirm-rollout"
            default:
                situation = "\(dependency) is still in its rollout"
            }
            let needed = "\(dependency) succeeds in a rollout"
            return Hold(
                rule: rule.name, kind: .dependency, since: start,
                message:
                    "\(gate.rawValue) gate of \(id) waits for \(dependency) (rule \(rule.name)): \(situation); it passes once \(needed)",
                needed: needed)
        }
        return nil
    }

    /// The refusal of a rollout slot: nil when one is free for this canary (or it is in no scope).
    private func queueHold(
        _ rule: PolicyRule, limit: Int, per: ConcurrencyScope, silence: TimeInterval, among peers: CanaryTable,
        at now: Date
    ) -> Hold? {
        guard !rollout.isInProgress, let scope = per.key(of: self) else { return nil }
        let heard = now.addingTimeInterval(-silence)
        let sharing = peers.values.filter { peer in
            peer.id != id && rule.selector.selects(peer.id, labels: peer.labels) && per.key(of: peer) == scope
                && (peer.lastSeen ?? .distantPast) >= heard && !peer.isOverridden(rule.name, at: now)
        }
        let holders = sharing.filter(\.rollout.isInProgress).sorted {
            ($0.rollout.since ?? now, $0.id) < ($1.rollout.since ?? now, $1.id)
        }
        let asked = (rollout.stage == .waiting ? rollout.since : nil) ?? now
        let ahead = sharing.filter { peer in
            peer.rollout.stage == .waiting && peer.queuedAt != nil
                && ((peer.rollout.since ?? now), peer.id) < (asked, id)
        }
        .sorted { ($0.rollout.since ?? now, $0.id) < ($1.rollout.since ?? now, $1.id) }
        guard holders.count + ahead.count >= limit else { return nil }
        let position = holders.count + ahead.count + 1
        let behind = (holders + ahead).map(\.id.description)
        let shown =
            behind.count > 10
            ? behind.prefix(10).joined(separator: ", ") + " and \(behind.count - 10) more"
            : behind.joined(separator: ", ")
        let silent = "is silent for \(DurationText.format(silence))"
        let needed =
            holders.count == 1
            ? "\(holders[0].id) ends its rollout or \(silent)"
            : holders.isEmpty
                ? "the canaries ahead are admitted, then one of their rollouts ends or \(silent)"
                : "one of \(holders.map(\.id.description).prefix(10).joined(separator: ", ")) ends its rollout or \(silent)"
        return Hold(
            rule: rule.name, kind: .queued, since: queuedAt ?? now,
            message:
                "queued: \(Self.ordinal(position)), behind \(shown) (limit \(limit) in \(scope); rule \(rule.name)); admitted when a slot frees: a rollout ends, or a canary is silent for \(DurationText.format(silence))",
            needed: needed, position: position)
    }

    /// 1st, 2nd, 3rd, 4th, 11th, 21st.
    public static func ordinal(_ number: Int) -> String {
        let suffix: String
        switch (number % 10, number % 100) {
        case (1, let tens) where tens != 11: suffix = "st"
        case (2, let tens) where tens != 12: suffix = "nd"
        case (3, let tens) where tens != 13: suffix = "rd"
        default: suffix = "th"
        }
        return "\(number)\(suffix)"
    }
}

/// The traffic step a `confirm-traffic-increase` check asks for, as far as Gatehouse can know it.
public enum TrafficStep: Sendable, Equatable {
    /// From this canary weight to that one.
    case known(from: Int, to: Int)
    /// Not known, and why (in words a person can act on).
    case unknown(String)
}

extension GateKind {
    /// Whether policy rules may hold or open this gate.
    public var isPolicyGate: Bool { GateKind.policyGates.contains(self) }
}
