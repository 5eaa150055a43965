import Foundation
import GatehouseCore
import Yams

/// Reads the guardrails policy file (YAML): a list of rules, each with a name, the canaries it
/// selects, the gates it concerns and exactly one requirement. Every mistake is refused with the
/// line it is on, in one sentence.
public enum PolicyFile {
    /// The requirements a rule may have, each a key of its own.
    static let requirementKeys = [
        "approvals", "automatic", "concurrency", "dependsOn", "window", "maxWeight", "firstRollout",
    ]

    /// Reads a policy file's text, or explains in one sentence (naming the line) what is wrong.
    public static func parse(_ text: String) throws(InvalidInput) -> Policy {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw InvalidInput(describe(error))
        } catch {
            throw InvalidInput("the policy file cannot be read: \(error)")
        }
        guard let root else { return .none }
        let top = try YAMLReader.mapping(root, "the policy file", allowed: ["rules"])
        guard let rulesNode = top["rules"] else { return .none }
        var rules: [PolicyRule] = []
        for node in try YAMLReader.sequence(rulesNode, "rules") {
            let rule = try rule(node)
            if let earlier = rules.first(where: { $0.name == rule.name }) {
                throw InvalidInput(
                    "line \(rule.line): another rule is named \(rule.name) (line \(earlier.line)); each rule needs a name of its own"
                )
            }
            rules.append(rule)
        }
        return Policy(rules: rules)
    }

    private static func rule(_ node: Node) throws(InvalidInput) -> PolicyRule {
        let line = node.mark?.line ?? 0
        let fields = try YAMLReader.mapping(
            node, "a rule", allowed: ["name", "canaries", "gates", "overrideBy", "enforce"] + requirementKeys)
        guard let nameNode = fields["name"] else { throw InvalidInput("line \(line): a rule needs a name") }
        let name = try YAMLReader.string(nameNode, "name")
        guard !name.isEmpty, name.count <= 63, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) })
        else {
            throw InvalidInput(
                "line \(YAMLReader.line(nameNode)): a rule's name is 1 to 63 letters, digits, '-', '_' or '.' (it is typed in overrides)"
            )
        }
        let given = requirementKeys.filter { fields[$0] != nil }
        guard given.count == 1, let key = given.first, let requirementNode = fields[key] else {
            throw InvalidInput(
                "line \(line): rule \(name) needs exactly one of \(requirementKeys.joined(separator: ", "))\(given.isEmpty ? "" : " (it has \(given.joined(separator: " and ")))")"
            )
        }
        var overriders =
            try fields["overrideBy"].map { node throws(InvalidInput) in try YAMLReader.strings(node, "overrideBy") }
            ?? []
        let requirement = try Self.requirement(key, requirementNode, rule: name, overriders: &overriders)
        let gates = try Self.gates(fields["gates"], for: requirement, rule: name, line: line)
        var enforced = true
        if let enforceNode = fields["enforce"] {
            switch enforceNode.scalar?.string {
            case "true": enforced = true
            case "false": enforced = false
            default:
                throw InvalidInput(
                    "line \(YAMLReader.line(enforceNode)): enforce is true or false (false: a dry run that records what the rule would hold and holds nothing)"
                )
            }
        }
        return PolicyRule(
            name: name, line: line, selector: try selector(fields["canaries"]), gates: gates,
            requirement: requirement, overriders: overriders, enforced: enforced)
    }

    private static func selector(_ node: Node?) throws(InvalidInput) -> CanarySelector {
        guard let node else { return CanarySelector() }
        let fields = try YAMLReader.mapping(
            node, "canaries", allowed: ["clusters", "namespaces", "names", "groups", "teams"])
        func list(_ key: String) throws(InvalidInput) -> [String]? {
            guard let node = fields[key] else { return nil }
            let values = try YAMLReader.strings(node, key)
            guard !values.isEmpty else {
                throw InvalidInput(
                    "line \(YAMLReader.line(node)): \(key) must not be empty (leave it out for every one)")
            }
            return values
        }
        return CanarySelector(
            clusters: try list("clusters"), namespaces: try list("namespaces"), names: try list("names"),
            groups: try list("groups"), teams: try list("teams"))
    }

    private static func gates(_ node: Node?, for requirement: PolicyRule.Requirement, rule: String, line: Int)
        throws(InvalidInput) -> Set<GateKind>
    {
        guard let node else {
            switch requirement {
            case .concurrency, .firstRollout: return [.rollout]
            case .dependencies: return [.promotion]
            case .window: return Set(GateKind.policyGates)
            case .maxWeight, .automatic(upToWeight: _?): return [.traffic]
            case .approvals, .automatic(upToWeight: nil):
                throw InvalidInput(
                    "line \(line): rule \(rule) needs gates: the gates it concerns (rollout, traffic, promotion)")
            }
        }
        var gates = Set<GateKind>()
        for name in try YAMLReader.strings(node, "gates") {
            let gate: GateKind
            do {
                gate = try GateKind(userInput: name)
            } catch {
                throw InvalidInput("line \(YAMLReader.line(node)): \(error.message)")
            }
            guard gate.isPolicyGate else {
                throw InvalidInput(
                    "line \(YAMLReader.line(node)): a rule concerns rollout, traffic or promotion gates; \(name) is never held by a rule (a rollback is never blocked)"
                )
            }
            gates.insert(gate)
        }
        guard !gates.isEmpty else { throw InvalidInput("line \(YAMLReader.line(node)): gates must not be empty") }
        if case .maxWeight = requirement, gates != [.traffic] {
            throw InvalidInput(
                "line \(YAMLReader.line(node)): a maxWeight rule holds traffic steps only (gates: [traffic], or leave it out)"
            )
        }
        if case .automatic(_?) = requirement, !gates.contains(.traffic) {
            throw InvalidInput(
                "line \(YAMLReader.line(node)): upToWeight concerns traffic steps: the rule's gates must include traffic"
            )
        }
        if case .concurrency = requirement, gates != [.rollout] {
            throw InvalidInput(
                "line \(YAMLReader.line(node)): a concurrency rule holds canaries at the rollout gate only (gates: [rollout], or leave it out)"
            )
        }
        return gates
    }

    /// `approvals: N` or `approvals: {count: N, from: [...]}`.
    private static func approvals(_ node: Node, rule: String) throws(InvalidInput) -> (count: Int, from: [String]?) {
        let line = YAMLReader.line(node)
        if node.scalar != nil {
            return (try YAMLReader.integer(node, "approvals", in: 1...20), nil)
        }
        let fields = try YAMLReader.mapping(node, "approvals", allowed: ["count", "from"])
        guard let count = fields["count"] else { throw InvalidInput("line \(line): approvals needs a count") }
        let needed = try YAMLReader.integer(count, "count", in: 1...20)
        let from = try fields["from"].map { node throws(InvalidInput) in try YAMLReader.strings(node, "from") }
        if let from, Set(from).count < needed {
            throw InvalidInput(
                "line \(line): rule \(rule) asks for \(needed) approvals from \(Set(from).count) people; it could never pass"
            )
        }
        return (needed, from)
    }

    private static func requirement(_ key: String, _ node: Node, rule: String, overriders: inout [String])
        throws(InvalidInput) -> PolicyRule.Requirement
    {
        let line = YAMLReader.line(node)
        switch key {
        case "approvals":
            let (count, from) = try approvals(node, rule: rule)
            return .approvals(count: count, from: from)
        case "automatic":
            if node.scalar?.string == "true" { return .automatic(upToWeight: nil) }
            guard node.mapping != nil else {
                throw InvalidInput(
                    "line \(line): automatic is true, or {upToWeight: N} for traffic steps up to N% (leave the rule out to turn it off)"
                )
            }
            let fields = try YAMLReader.mapping(node, "automatic", allowed: ["upToWeight"])
            guard let limit = fields["upToWeight"] else {
                throw InvalidInput(
                    "line \(line): automatic needs upToWeight: the canary weight up to which steps go on")
            }
            return .automatic(upToWeight: try YAMLReader.integer(limit, "upToWeight", in: 1...100))
        case "maxWeight":
            if node.scalar != nil { return .maxWeight(limit: try YAMLReader.integer(node, "maxWeight", in: 1...99)) }
            let fields = try YAMLReader.mapping(node, "maxWeight", allowed: ["limit", "overrideBy"])
            guard let limit = fields["limit"] else {
                throw InvalidInput("line \(line): maxWeight needs a limit: the highest canary weight steps may reach")
            }
            if let lifting = fields["overrideBy"] {
                overriders += try YAMLReader.strings(lifting, "overrideBy").filter { !overriders.contains($0) }
            }
            return .maxWeight(limit: try YAMLReader.integer(limit, "limit", in: 1...99))
        case "firstRollout":
            let fields = try YAMLReader.mapping(node, "firstRollout", allowed: ["approvals", "since"])
            guard let approvalsNode = fields["approvals"] else {
                throw InvalidInput(
                    "line \(line): firstRollout needs approvals: {count: N, from: [people or group:NAME]}")
            }
            let (count, from) = try approvals(approvalsNode, rule: rule)
            var since: Date?
            if let sinceNode = fields["since"] {
                let text = try YAMLReader.string(sinceNode, "since")
                guard let day = try? Date(text + "T00:00:00Z", strategy: .iso8601) else {
                    throw InvalidInput(
                        "line \(YAMLReader.line(sinceNode)): since is a day, YYYY-MM-DD (UTC): rollouts that succeeded before it do not count"
                    )
                }
                since = day
            }
            return .firstRollout(count: count, from: from, since: since)
        case "concurrency":
            let fields = try YAMLReader.mapping(node, "concurrency", allowed: ["limit", "per", "silentAfter"])
            guard let limitNode = fields["limit"] else { throw InvalidInput("line \(line): concurrency needs a limit") }
            let limit = try YAMLReader.integer(limitNode, "limit", in: 1...10_000)
            var per = ConcurrencyScope.all
            if let perNode = fields["per"] {
                let word = try YAMLReader.string(perNode, "per")
                guard let scope = ConcurrencyScope(rawValue: word) else {
                    throw InvalidInput(
                        "line \(YAMLReader.line(perNode)): per is \(ConcurrencyScope.allCases.map(\.rawValue).joined(separator: ", ")), not '\(word)'"
                    )
                }
                per = scope
            }
            var silence: TimeInterval = 30 * 60
            if let silenceNode = fields["silentAfter"] {
                do {
                    silence = try DurationText.seconds(
                        from: try YAMLReader.string(silenceNode, "silentAfter"), field: "silentAfter")
                } catch {
                    throw InvalidInput("line \(YAMLReader.line(silenceNode)): \(error.message)")
                }
                guard silence >= 60 else {
                    throw InvalidInput(
                        "line \(YAMLReader.line(silenceNode)): silentAfter is at least 1m (Flagger calls once per analysis interval)"
                    )
                }
            }
            return .concurrency(limit: limit, per: per, silentAfter: silence)
        case "dependsOn":
            var refs: [CanaryRef] = []
            for name in try YAMLReader.strings(node, "dependsOn") {
                do {
                    refs.append(try CanaryRef(name))
                } catch {
                    throw InvalidInput("line \(line): \(error.message)")
                }
            }
            return .dependencies(refs)
        default:
            let fields = try YAMLReader.mapping(node, "window", allowed: ["open", "closed", "timeZone"])
            let kinds = ["open", "closed"].filter { fields[$0] != nil }
            guard kinds.count == 1, let kind = kinds.first, let spansNode = fields[kind] else {
                throw InvalidInput(
                    "line \(line): a window is either open (gates pass only then) or closed (gates do not pass then): give one of them"
                )
            }
            guard let zoneNode = fields["timeZone"] else {
                throw InvalidInput("line \(line): a window needs a timeZone (an IANA name such as Europe/Berlin)")
            }
            let spans =
                spansNode.scalar != nil
                ? [try YAMLReader.string(spansNode, kind)] : try YAMLReader.strings(spansNode, kind)
            do {
                return .window(
                    try DeployWindow(
                        kind: kind == "open" ? .open : .closed, spans: spans,
                        timeZone: try YAMLReader.string(zoneNode, "timeZone")))
            } catch {
                throw InvalidInput("line \(line): \(error.message)")
            }
        }
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            "line \(mark.line): the policy file is not valid YAML: \(problem)"
        default:
            "the policy file is not valid YAML: \(error)"
        }
    }
}

/// Reads YAML nodes, saying on which line a value is not what it should be.
enum YAMLReader {
    static func line(_ node: Node) -> Int { node.mark?.line ?? 0 }

    /// A mapping's values by key; a key not `allowed` is refused.
    static func mapping(_ node: Node, _ what: String, allowed: [String]) throws(InvalidInput) -> [String: Node] {
        guard let mapping = node.mapping else {
            throw InvalidInput("line \(line(node)): \(what) is a mapping of keys to values")
        }
        var fields: [String: Node] = [:]
        for (key, value) in mapping {
            let name = key.string ?? ""
            guard allowed.contains(name) else {
                throw InvalidInput(
                    "line \(line(key)): unknown key '\(name.prefix(40))' in \(what); expected \(allowed.joined(separator: ", "))"
                )
            }
            guard fields[name] == nil else { throw InvalidInput("line \(line(key)): \(name) is given twice") }
            fields[name] = value
        }
        return fields
    }

    static func sequence(_ node: Node, _ what: String) throws(InvalidInput) -> [Node] {
        guard let sequence = node.sequence else { throw InvalidInput("line \(line(node)): \(what) is a list") }
        return Array(sequence)
    }

    static func string(_ node: Node, _ what: String) throws(InvalidInput) -> String {
        guard let scalar = node.scalar else { throw InvalidInput("line \(line(node)): \(what) is a single value") }
        return scalar.string
    }

    static func strings(_ node: Node, _ what: String) throws(InvalidInput) -> [String] {
        var values: [String] = []
        for item in try sequence(node, what) { values.append(try string(item, what)) }
        return values
    }

    static func integer(_ node: Node, _ what: String, in range: ClosedRange<Int>) throws(InvalidInput) -> Int {
        guard let value = Int(try string(node, what)), range.contains(value) else {
            throw InvalidInput(
                "line \(line(node)): \(what) is a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }
}
