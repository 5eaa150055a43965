import ArgumentParser
import Foundation
import GatehouseClient
import GatehouseCore
import GatehouseServer
import GatehouseStore
import Logging

struct RequestApproval: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "Ask for a canary's release to be approved (your own approval then does not count).",
        discussion: """
            A CI job that announces a release calls this; where a policy rule counts approvals, the
            one who asked cannot approve.

            Example:
              gatehouse request podinfo -n test --reason "release 1.4.0, pipeline 812"
            """)

    @Argument(help: "The canary: NAME (with -n), NAMESPACE/NAME or CLUSTER/NAMESPACE/NAME.") var name: String
    @OptionGroup var namespace: NamespaceOption
    @Option(help: "What is released, for the audit trail.") var reason: String?
    @OptionGroup var client: ClientOptions

    func run() async throws {
        let canary = try namespace.canary(name, client)
        let reply = try await client.call { api throws(ClientError) in
            try await api.requestApproval(of: canary, reason: reason)
        }
        client.show(reply) { $0.outcome ?? "approval requested for \($0.displayName)" }
    }
}

struct OverrideRule: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "override",
        abstract: "Lift one policy rule for a canary's rollout (if the rule lets you), with a reason.",
        discussion: """
            The override is audited, and ends with the rollout or after --ttl (default 24h).

            Example:
              gatehouse override ledger -n payments no-weekend-promotions --reason INC-2231
            """)

    @Argument(help: "The canary: NAME (with -n), NAMESPACE/NAME or CLUSTER/NAMESPACE/NAME.") var name: String
    @Argument(help: "The rule's name, as the refusal names it.") var rule: String
    @OptionGroup var namespace: NamespaceOption
    @Option(help: "Why (required).") var reason: String
    @Option(help: "How long it lasts at most, such as 2h (default 24h; it also ends with the rollout).") var ttl:
        String?
    @OptionGroup var client: ClientOptions

    func run() async throws {
        let canary = try namespace.canary(name, client)
        let reply = try await client.call { api throws(ClientError) in
            try await api.override(rule: rule, of: canary, reason: reason, ttl: ttl)
        }
        client.show(reply) { $0.outcome ?? "rule \(rule) lifted for \($0.displayName)" }
    }
}

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Work with guardrails policy files.",
        subcommands: [PolicyCheck.self, PolicySimulate.self])

    /// The policy in `file`; one that cannot be read or is not valid says why (with its line) and exits 1.
    static func read(_ file: String) throws -> Policy {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ValidationError("cannot read \(file)")
        }
        do {
            return try PolicyFile.parse(String(decoding: data, as: UTF8.self))
        } catch {
            FileHandle.standardError.write(Data("\(file): \(error.message)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct PolicyCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a policy file, and explain which rules apply to a canary.",
        discussion: """
            Exits 0 when the file is valid, 1 (with the line and what is wrong) when it is not. Needs no
            running service.

            Examples:
              gatehouse policy check policy.yaml
              gatehouse policy check policy.yaml --canary payments/checkout --group payments
            """)

    @Argument(help: "The policy file.") var file: String
    @Option(help: "A canary: NAMESPACE/NAME or CLUSTER/NAMESPACE/NAME; shows the rules that apply to it.")
    var canary: String?
    @Option(help: "The group its webhooks' metadata names.") var group: String?
    @Option(help: "The team its webhooks' metadata names.") var team: String?
    @Option(help: "The canaries its webhooks' metadata names in dependsOn (comma-separated).") var dependsOn: String?
    @Option(help: "The canary weight its analysis steps in (its metadata's stepWeight).") var stepWeight: Int?
    @Option(help: "The canary weight its analysis steps up to (its metadata's maxWeight).") var maxWeight: Int?

    func run() async throws {
        let policy = try PolicyCommand.read(file)
        print("\(file): valid, \(policy.rules.count) rule\(policy.rules.count == 1 ? "" : "s")")
        for warning in policy.warnings {
            FileHandle.standardError.write(Data("\(file): warning: \(warning)\n".utf8))
        }
        guard let canary else {
            for rule in policy.rules { print("  \(rule.name) (line \(rule.line)): \(rule.summary)") }
            return
        }
        let id: CanaryID
        do {
            id = try CanaryID(parsing: canary)
        } catch {
            throw ValidationError(error.message)
        }
        var subject = Canary(id: id)
        var metadata: [String: String] = [:]
        metadata["group"] = group
        metadata["team"] = team
        metadata["dependsOn"] = dependsOn
        metadata["stepWeight"] = stepWeight.map(String.init)
        metadata["maxWeight"] = maxWeight.map(String.init)
        subject.labels = subject.labels.updated(from: metadata)
        let applying = policy.rules(for: subject)
        guard !applying.isEmpty else {
            print("No rule applies to \(id): its gates are switches people flip.")
            return
        }
        print("Rules that apply to \(id):")
        for rule in applying {
            print("  \(rule.name) (line \(rule.line)): \(rule.summary)")
            if case .dependencies(let named) = rule.requirement {
                let all = subject.dependencies(named: named).map(\.description)
                if !all.isEmpty { print("    waits for: \(all.joined(separator: ", "))") }
            }
            if case .window(let window) = rule.requirement {
                let now = Date()
                let state = window.allows(at: now) ? "passes now" : "holds now"
                let change = window.nextChange(after: now).map { ", until \(window.localTime($0))" } ?? ""
                print("    \(state)\(change)")
            }
            if rule.requirement.judgesWeight, let plan = subject.labels.trafficPlan {
                let limit: Int? =
                    switch rule.requirement {
                    case .automatic(let limit): limit
                    case .maxWeight(let limit): limit
                    default: nil
                    }
                var weight = 0
                var held: [String] = []
                while let limit, weight < plan.maximum {
                    let next = plan.weight(after: weight)
                    if next > limit { held.append("\(weight)% → \(next)%") }
                    weight = next
                }
                print(
                    "    with \(plan.description): "
                        + (held.isEmpty ? "no step goes above it" : "steps above it: \(held.joined(separator: ", "))"))
            }
            if !rule.overriders.isEmpty {
                print("    may be overridden by: \(rule.overriders.joined(separator: ", "))")
            }
        }
        let skipped = policy.rules.filter { rule in !applying.contains { $0.name == rule.name } }.map(\.name)
        if !skipped.isEmpty { print("Not applying: \(skipped.joined(separator: ", "))") }
    }
}

struct PolicySimulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Replay the audit trail against a policy file: which rollouts its rules would have held.",
        discussion: """
            Reads the audit trail of the last --since from a running service (a read grant is
            enough) or from a database file, and judges each gate Flagger passed with the file's
            rules (enforced or not), as the service would have. Prints, per rule and per canary, the
            rollouts held, for how long, and who or what could have let them go. Exits 0 when no
            rule would have held anything, 7 when one would have, 1 when the file is not valid.

            Examples:
              gatehouse policy simulate examples/policy.yaml --since 30d
              gatehouse policy simulate policy.yaml --since 7d --database gatehouse.sqlite -o json
            """)

    @Argument(help: "The policy file to try.") var file: String
    @Option(help: "How far back to replay, such as 7d or 30d.") var since = "30d"
    @Option(
        help: "Read this SQLite database file instead of asking a service (a copy, or the file of a stopped service).")
    var database: String?
    @OptionGroup var client: ClientOptions

    /// The exit code when a rule would have held a rollout.
    static let heldExitCode: Int32 = 7

    func run() async throws {
        let policy = try PolicyCommand.read(file)
        let span: TimeInterval
        do {
            span = try DurationText.seconds(from: since, field: "--since")
        } catch {
            throw ValidationError(error.message)
        }
        let until = Date()
        let start = until.addingTimeInterval(-span)
        let (entries, canaries) = try await history(since: start)
        let report = PolicyReplay.run(policy, entries: entries, canaries: canaries, since: start, until: until)
        switch client.output {
        case .json:
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        case .text:
            print(Self.text(report, since: since))
        }
        if report.holdsAny { throw ExitCode(Self.heldExitCode) }
    }

    /// The audit entries since `start` and the canaries as they are now, from the file or the service.
    private func history(since start: Date) async throws -> ([AuditEntry], [Canary]) {
        if let database {
            guard FileManager.default.fileExists(atPath: database) else {
                throw ValidationError("--database \(database): there is no such file")
            }
            var logger = Logger(label: "gatehouse.simulate")
            logger.logLevel = .error
            let store = try GateStore(
                writer: GateStore.openDatabase(atPath: database, busyTimeout: 5), storageTimeout: 600, logger: logger)
            var entries: [AuditEntry] = []
            var before: Int64?
            repeat {
                let page = try await store.events(matching: AuditFilter(since: start), limit: 500, before: before)
                entries += page
                before = page.count == 500 ? page.last?.id : nil
            } while before != nil
            return (entries, try await store.canaries())
        }
        var entries: [AuditEntry] = []
        var before: Int64?
        repeat {
            let page = try await client.call { api throws(ClientError) in
                try await api.events(since: start, before: before, limit: 500)
            }
            entries += page.value.events
            before = page.value.next
        } while before != nil
        let listed = try await client.call { api throws(ClientError) in try await api.canaries() }.value
        let canaries = listed.compactMap { status -> Canary? in
            guard let id = try? CanaryID(cluster: status.cluster ?? "", namespace: status.namespace, name: status.name)
            else { return nil }
            var canary = Canary(id: id)
            canary.labels = status.policy?.labels ?? CanaryLabels()
            canary.succeededAt = status.rollout?.lastSucceededAt
            return canary
        }
        return (entries, canaries)
    }

    /// The report for people.
    static func text(_ report: PolicyReplay.Report, since: String) -> String {
        var lines = [
            "Replayed \(report.entries) audit entries of the last \(since): \(report.rollouts) rollout\(report.rollouts == 1 ? "" : "s") of \(report.canaries) canar\(report.canaries == 1 ? "y" : "ies")."
        ]
        for rule in report.rules {
            if let skipped = rule.skipped {
                lines.append("rule \(rule.name(line: true)): not replayed (\(skipped))")
                continue
            }
            guard !rule.held.isEmpty else {
                lines.append("rule \(rule.name(line: true)): would have held nothing")
                continue
            }
            lines.append(
                "rule \(rule.name(line: true)): would have held \(rule.rolloutsHeld) rollout\(rule.rolloutsHeld == 1 ? "" : "s") of \(rule.canaries) canar\(rule.canaries == 1 ? "y" : "ies"), \(DurationText.format(TimeInterval(rule.seconds))) in all"
            )
            for held in rule.held {
                let rollout = held.rollout.map { " rollout \($0)" } ?? ""
                let end = held.until == nil ? " (not let go before the rollout ended)" : ""
                lines.append(
                    "  \(held.canary)\(rollout) \(held.gate.rawValue) gate: held \(DurationText.format(TimeInterval(held.seconds)))\(end) from \(held.from.formatted(.iso8601)); could be let go by: \(held.unblockedBy)"
                )
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension PolicyReplay.RuleReport {
    fileprivate func name(line: Bool) -> String { line ? "\(rule) (line \(self.line))" : rule }
}
