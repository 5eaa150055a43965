import Foundation

/// The guardrails in force: rules, each selecting canaries and holding some of their gates until
/// what it requires is met (approvals, a free rollout slot, a dependency's success, a deploy window),
/// or opening them by itself. One mechanism: every rule answers a check with a `Hold` or nothing.
public struct Policy: Sendable, Equatable {
    /// The rules, in the file's order.
    public var rules: [PolicyRule]

    /// Creates a policy.
    public init(rules: [PolicyRule]) { self.rules = rules }

    /// No rules: every gate is a switch a person flips.
    public static let none = Policy(rules: [])

    /// What `policy check` and the service's log warn of: names no person can have, and rules that
    /// judge weights, which need what only the Canary's own webhooks can give.
    public var warnings: [String] {
        unreachableNames
            + rules.filter(\.requirement.judgesWeight).map { rule in
                let without: String =
                    if case .automatic = rule.requirement { "every step is left to people" } else {
                        "every step is held, and told why"
                    }
                return
                    "line \(rule.line): rule \(rule.name) judges the weight each traffic step reaches: the canaries it selects need an event webhook to Gatehouse and their analysis (stepWeight or stepWeights, and maxWeight) in the traffic webhook's metadata; without them \(without)"
            }
    }

    /// Names in rules' `from:` and `overrideBy:` that no person can ever have: a shared token's, a
    /// workload's, an approval link's or Gatehouse's own (rules count people only), or an empty group.
    public var unreachableNames: [String] {
        rules.flatMap { rule -> [String] in
            var named: [(String, String)] = rule.overriders.map { ("overrideBy", $0) }
            switch rule.requirement {
            case .approvals(_, let from?), .firstRollout(_, let from?, _): named = from.map { ("from", $0) } + named
            default: break
            }
            return named.compactMap { field, name in
                if name == Principal.groupPrefix {
                    return "line \(rule.line): rule \(rule.name)'s \(field) names an empty group"
                }
                guard !Principal.isPerson(actor: name) else { return nil }
                return
                    "line \(rule.line): rule \(rule.name)'s \(field) names \(name), which is not a person (a shared token, a workload or Gatehouse itself); rules count people only, so it never counts"
            }
        }
    }

    /// The rules that select a canary.
    public func rules(for canary: Canary) -> [PolicyRule] {
        rules.filter { $0.selector.selects(canary.id, labels: canary.labels) }
    }

    /// The rule with this name, if any.
    public func rule(named name: String) -> PolicyRule? { rules.first { $0.name == name } }

    /// Whether a rule looks at other canaries (rollout slots, dependencies).
    public var looksAtPeers: Bool {
        rules.contains { rule in
            switch rule.requirement {
            case .concurrency, .dependencies: true
            case .approvals, .automatic, .window, .maxWeight, .firstRollout: false
            }
        }
    }

    /// What the canary's rules need to decide a check of `gate`: whether other canaries are looked at
    /// (a rollout slot's holders and queue, dependencies), so that a store reads them only then.
    public func needsPeers(_ canary: Canary, gate: GateKind, at now: Date) -> PeerNeeds {
        var needs = PeerNeeds()
        for rule in rules(for: canary) where rule.gates.contains(gate) && !canary.isOverridden(rule.name, at: now) {
            switch rule.requirement {
            case .concurrency: needs.rollouts = true
            case .dependencies(let named): needs.canaries += canary.dependencies(named: named)
            case .approvals, .automatic, .window, .maxWeight, .firstRollout: break
            }
        }
        return needs
    }
}

/// Which other canaries a decision looks at.
public struct PeerNeeds: Sendable, Equatable {
    /// Every canary waiting at or in a rollout (for rollout slots).
    public var rollouts = false
    /// These canaries (dependencies).
    public var canaries: [CanaryID] = []

    /// Nothing.
    public init() {}

    /// Whether no other canary is needed.
    public var isEmpty: Bool { !rollouts && canaries.isEmpty }
}

/// One rule of the policy file.
public struct PolicyRule: Sendable, Equatable {
    /// The rule's name, unique in the file; refusals and overrides name it.
    public var name: String
    /// The line of the file where the rule starts.
    public var line: Int
    /// The canaries it applies to.
    public var selector: CanarySelector
    /// The gates it holds or opens (never `rollback`: a rollback is never blocked).
    public var gates: Set<GateKind>
    /// What it requires.
    public var requirement: Requirement
    /// Who may override it for one canary's rollout, with a reason (audited); nobody when empty.
    public var overriders: [String]
    /// Whether it holds gates; a dry-run rule (`enforce: false`) is evaluated on every check the
    /// same way and only records what it would have done.
    public var enforced: Bool

    /// What a rule requires before a gate passes.
    public enum Requirement: Sendable, Equatable {
        /// This many approvals from distinct people among `from` (anyone who may open the gate when
        /// nil); the person who requested the release does not count.
        case approvals(count: Int, from: [String]?)
        /// The gate opens by itself when every other rule allows; with `upToWeight`, a traffic step
        /// only while the weight it reaches is at most that (above it the gate is left to people).
        case automatic(upToWeight: Int?)
        /// At most `limit` canaries of one scope in a rollout at once; a canary not heard from for
        /// `silentAfter` frees its slot.
        case concurrency(limit: Int, per: ConcurrencyScope, silentAfter: TimeInterval)
        /// These canaries must have succeeded with a rollout that started no earlier than this
        /// one's; those the canary's webhook metadata names (`dependsOn`) are added.
        case dependencies([CanaryRef])
        /// A weekly deploy window in a time zone.
        case window(DeployWindow)
        /// Traffic steps that would take the canary weight above `limit` are held until one of the
        /// rule's `overrideBy` lifts it for the rollout.
        case maxWeight(limit: Int)
        /// The canary's first rollout (since it appeared, or since `since`) needs these approvals,
        /// as `approvals` counts them; once a rollout of it succeeded the rule no longer applies.
        case firstRollout(count: Int, from: [String]?, since: Date?)

        /// Whether it needs to know the weight a traffic step reaches.
        public var judgesWeight: Bool {
            switch self {
            case .automatic(let limit?): limit < TrafficPlan.total
            case .maxWeight: true
            default: false
            }
        }

        /// The word the policy file uses for it.
        public var keyword: String {
            switch self {
            case .approvals: "approvals"
            case .automatic: "automatic"
            case .concurrency: "concurrency"
            case .dependencies: "dependsOn"
            case .window: "window"
            case .maxWeight: "maxWeight"
            case .firstRollout: "firstRollout"
            }
        }
    }

    /// Creates a rule.
    public init(
        name: String, line: Int = 0, selector: CanarySelector = CanarySelector(), gates: Set<GateKind>,
        requirement: Requirement, overriders: [String] = [], enforced: Bool = true
    ) {
        self.enforced = enforced
        self.name = name
        self.line = line
        self.selector = selector
        self.gates = gates
        self.requirement = requirement
        self.overriders = overriders
    }

    /// What the rule does, in one sentence (for `gatehouse policy check`).
    public var summary: String {
        let held = GateKind.policyGates.filter { gates.contains($0) }.map(\.rawValue).joined(separator: ", ")
        let dryRun = enforced ? "" : " (dry run: records what it would hold, holds nothing)"
        switch requirement {
        case .approvals(let count, let from):
            let people = from.map { "one of " + $0.joined(separator: ", ") } ?? "anyone who may open it"
            return
                "\(held)\(dryRun): \(count) approval\(count == 1 ? "" : "s") from distinct people (\(people)), not by whoever requested the release"
        case .automatic(nil):
            return "\(held)\(dryRun): opens by itself when every other rule allows"
        case .automatic(let limit?):
            return
                "\(held)\(dryRun): opens by itself for steps up to \(limit)% canary weight when every other rule allows; above, people decide"
        case .maxWeight(let limit):
            let lifting =
                overriders.isEmpty ? "nobody may lift it" : "lifted by one of \(overriders.joined(separator: ", "))"
            return
                "\(held)\(dryRun): holds traffic steps that would take the canary weight above \(limit)% (\(lifting))"
        case .firstRollout(let count, let from, let since):
            let people = from.map { "one of " + $0.joined(separator: ", ") } ?? "anyone who may open it"
            let start = since.map { " since \(Self.day($0))" } ?? ""
            return
                "\(held)\(dryRun): a canary's first rollout\(start), until one succeeds, needs \(count) approval\(count == 1 ? "" : "s") from distinct people (\(people))"
        case .concurrency(let limit, let per, let silence):
            return
                "rollout\(dryRun): at most \(limit) in a rollout at once \(per.phrase), in the order they asked; a canary silent for \(DurationText.format(silence)) frees its slot"
        case .dependencies(let named):
            let listed = named.map(\.description).joined(separator: ", ")
            return
                "\(held)\(dryRun): waits until \(listed.isEmpty ? "the canaries its metadata names (dependsOn)" : listed + " (and those its metadata names)") succeeded in a rollout that was under way or started after this release began"
        case .window(let window):
            return "\(held)\(dryRun): \(window.description)"
        }
    }

    /// `2026-12-01`: a day, in UTC.
    public static func day(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day())
    }
}

/// How a concurrency rule groups canaries.
public enum ConcurrencyScope: String, Sendable, Equatable, CaseIterable {
    /// Each namespace (of each cluster) has its own slots.
    case namespace
    /// Each group (the webhook metadata's `group`) has its own slots; canaries without one are not limited.
    case group
    /// Every canary the rule selects shares the slots.
    case all

    var phrase: String {
        switch self {
        case .namespace: "per namespace"
        case .group: "per group"
        case .all: "among every canary it selects"
        }
    }

    /// The key canaries sharing slots have in common; nil when the canary is in no such scope.
    func key(of canary: Canary) -> String? {
        switch self {
        case .namespace: "namespace \(canary.id.cluster.isEmpty ? "" : canary.id.cluster + "/")\(canary.id.namespace)"
        case .group: canary.labels.group.map { "group \($0)" }
        case .all: "all"
        }
    }
}

/// Which canaries a rule applies to: every listed criterion must match (globs with `*`).
public struct CanarySelector: Sendable, Equatable {
    /// Cluster names; every cluster when nil.
    public var clusters: [String]?
    /// Namespace globs; every namespace when nil.
    public var namespaces: [String]?
    /// Canary name globs; every name when nil.
    public var names: [String]?
    /// Groups, as the webhook metadata's `group` names them; when given, a canary must name one.
    public var groups: [String]?
    /// Teams, as the webhook metadata's `team` names them; when given, a canary must name one.
    public var teams: [String]?

    /// Creates a selector.
    public init(
        clusters: [String]? = nil, namespaces: [String]? = nil, names: [String]? = nil, groups: [String]? = nil,
        teams: [String]? = nil
    ) {
        self.clusters = clusters
        self.namespaces = namespaces
        self.names = names
        self.groups = groups
        self.teams = teams
    }

    /// Whether a canary with these labels is selected.
    public func selects(_ id: CanaryID, labels: CanaryLabels) -> Bool {
        func matches(_ patterns: [String]?, _ value: String?) -> Bool {
            guard let patterns else { return true }
            guard let value else { return false }
            return patterns.contains { Glob.matches($0, value) }
        }
        return matches(clusters, id.cluster) && matches(namespaces, id.namespace) && matches(names, id.name)
            && matches(groups, labels.group) && matches(teams, labels.team)
    }
}

/// Glob matching of names: `*` matches any run of characters, everything else itself.
public enum Glob {
    /// Whether `pattern` matches all of `text`.
    public static func matches(_ pattern: String, _ text: String) -> Bool {
        matches(Substring(pattern), Substring(text))
    }

    private static func matches(_ pattern: Substring, _ text: Substring) -> Bool {
        guard let first = pattern.first else { return text.isEmpty }
        if first == "*" {
            let rest = pattern.dropFirst()
            return text.indices.contains { matches(rest, text[$0...]) } || matches(rest, text[text.endIndex...])
        }
        guard let head = text.first, head == first else { return false }
        return matches(pattern.dropFirst(), text.dropFirst())
    }
}

/// A canary named in a policy: `namespace/name`, or `name` in the namespace of the canary that names it.
public struct CanaryRef: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// The namespace, or nil for "the same one".
    public var namespace: String?
    /// The canary's name.
    public var name: String

    /// Reads `namespace/name` or `name`, or explains what is wrong.
    public init(_ text: String) throws(InvalidInput) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2 else { throw InvalidInput("'\(text)' is not a canary: write namespace/name or name") }
        do {
            if parts.count == 2 {
                try KubernetesName.validateLabel(parts[0], field: "namespace")
                namespace = parts[0]
            }
            try KubernetesName.validateSubdomain(parts[parts.count - 1], field: "name")
        } catch {
            throw InvalidInput("'\(text)' is not a canary: \(error.message)")
        }
        name = parts[parts.count - 1]
    }

    /// The canary this names, seen from `canary` (same cluster; same namespace unless named).
    public func resolved(from canary: CanaryID) -> CanaryID? {
        try? CanaryID(cluster: canary.cluster, namespace: namespace ?? canary.namespace, name: name)
    }

    public var description: String { namespace.map { "\($0)/\(name)" } ?? name }
}

/// What a canary's webhook metadata says of it for the policy: its group, its team, the canaries it
/// depends on, and how its analysis moves traffic (repeated from the Canary's `analysis`). Only these
/// keys are kept (an event's metadata carries much else).
public struct CanaryLabels: Sendable, Equatable, Codable {
    /// `metadata.group`.
    public var group: String?
    /// `metadata.team`.
    public var team: String?
    /// `metadata.dependsOn`: canaries, comma-separated, as `namespace/name` or `name`.
    public var dependsOn: [CanaryRef]
    /// `metadata.maxWeight`: the analysis' maxWeight, 1 to 100.
    public var maxWeight: Int?
    /// `metadata.stepWeight`: the analysis' stepWeight, 1 to 100.
    public var stepWeight: Int?
    /// `metadata.stepWeights`: the analysis' stepWeights, comma-separated, ascending, each 1 to 100.
    public var stepWeights: [Int]?

    /// No labels.
    public init(
        group: String? = nil, team: String? = nil, dependsOn: [CanaryRef] = [], maxWeight: Int? = nil,
        stepWeight: Int? = nil, stepWeights: [Int]? = nil
    ) {
        self.group = group
        self.team = team
        self.dependsOn = dependsOn
        self.maxWeight = maxWeight
        self.stepWeight = stepWeight
        self.stepWeights = stepWeights
    }

    /// The metadata keys read.
    public static let keys = ["group", "team", "dependsOn", "maxWeight", "stepWeight", "stepWeights"]

    /// How the canary's analysis moves traffic, when its metadata says (a step is needed).
    public var trafficPlan: TrafficPlan? {
        TrafficPlan(stepWeight: stepWeight, stepWeights: stepWeights, maxWeight: maxWeight)
    }

    /// These labels with what a webhook's metadata says laid over them: a key present replaces the
    /// label (an empty value clears it); a key absent leaves it. A `dependsOn` that names no valid
    /// canary, and a weight that is not a whole number from 1 to 100 (or weights not ascending), are
    /// ignored whole.
    public func updated(from metadata: [String: String]?) -> CanaryLabels {
        guard let metadata else { return self }
        var labels = self
        if let group = metadata["group"] { labels.group = Self.bounded(group) }
        if let team = metadata["team"] { labels.team = Self.bounded(team) }
        if let listed = metadata["dependsOn"] {
            let refs = listed.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.prefix(20)
            if let parsed = try? refs.map({ (ref: String) throws(InvalidInput) in try CanaryRef(ref) }) {
                labels.dependsOn = parsed
            }
        }
        if let text = metadata["maxWeight"], let one = Self.weights(text), one.count == 1 { labels.maxWeight = one[0] }
        if let text = metadata["stepWeight"], let one = Self.weights(text), one.count == 1 {
            labels.stepWeight = one[0]
        }
        if let text = metadata["stepWeights"], let listed = Self.weights(text) { labels.stepWeights = listed }
        return labels
    }

    /// Weights, comma-separated, each a whole number from 1 to 100, ascending; nil otherwise.
    private static func weights(_ text: String) -> [Int]? {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).prefix(21)
        let values = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.count == parts.count, values.count <= 20,
            values.allSatisfy({ (1...TrafficPlan.total).contains($0) }), zip(values, values.dropFirst()).allSatisfy(<)
        else { return nil }
        return values
    }

    private static func bounded(_ value: String) -> String? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? nil : String(trimmed.prefix(63))
    }

    /// Whether there are none.
    public var isEmpty: Bool { self == CanaryLabels() }
}

/// What a dry-run rule (`enforce: false`) would have done to one gate of a rollout: held a check
/// that passed, or let pass one that was refused. Kept while the difference lasts, so that each is
/// recorded once when it begins and once when it ends.
public struct DryRun: Sendable, Equatable, Codable {
    /// The rule.
    public var rule: String
    /// The gate.
    public var gate: GateKind
    /// Whether the rule would have held the gate (else it would have let it pass).
    public var wouldHold: Bool
    /// The answer Flagger would have had, in one sentence.
    public var message: String
    /// Since when.
    public var since: Date

    /// Creates one.
    public init(rule: String, gate: GateKind, wouldHold: Bool, message: String, since: Date) {
        self.rule = rule
        self.gate = gate
        self.wouldHold = wouldHold
        self.message = message
        self.since = since
    }

    /// In words, for the audit trail and the dashboard.
    public var summary: String {
        "rule \(rule) (dry run) would have \(wouldHold ? "held" : "let pass") the \(gate.rawValue) gate: \(message)"
    }
}

/// Someone lifting one rule for one canary's rollout, with a reason.
public struct Override: Sendable, Equatable, Codable {
    /// The rule lifted.
    public var rule: String
    /// Who lifted it.
    public var actor: String
    /// Why.
    public var reason: String
    /// When.
    public var at: Date
    /// When it ends by itself (it also ends with the rollout).
    public var expiresAt: Date

    /// Creates one.
    public init(rule: String, actor: String, reason: String, at: Date, expiresAt: Date) {
        self.rule = rule
        self.actor = actor
        self.reason = reason
        self.at = at
        self.expiresAt = expiresAt
    }
}

/// A rule holding a gate: which rule, since when, and what would let the gate pass.
public struct Hold: Sendable, Equatable, Codable {
    /// The kinds of hold, one per kind of rule that holds.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// Fewer distinct approvals than the rule asks.
        case approvals
        /// Every rollout slot of the scope is taken: queued.
        case queued
        /// A dependency has not succeeded yet.
        case dependency
        /// Outside the deploy window.
        case window
        /// The traffic step would take the canary weight above a ceiling, or its weight is unknown.
        case weight
    }

    /// The rule's name.
    public var rule: String
    /// What holds.
    public var kind: Kind
    /// Since when it holds, when known.
    public var since: Date?
    /// The whole refusal, in one sentence: the rule and what would unblock it.
    public var message: String
    /// What would unblock it, in a few words.
    public var needed: String
    /// For a queued canary: its place, counting the canaries in a rollout ahead of it.
    public var position: Int?

    /// Creates a hold.
    public init(rule: String, kind: Kind, since: Date?, message: String, needed: String, position: Int? = nil) {
        self.position = position
        self.rule = rule
        self.kind = kind
        self.since = since
        self.message = message
        self.needed = needed
    }
}

extension GateKind {
    /// The gates a rule may hold or open (a rollback is never blocked; the shared gate is the loadtester's).
    public static let policyGates: [GateKind] = [.rollout, .traffic, .promotion]
}
