import ArgumentParser
import Foundation
import GatehouseClient
import GatehouseCore

struct Open: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open a gate of a canary.",
        discussion: """
            Once (the default): the approval belongs to the next rollout that asks. --sticky keeps it open \
            for every rollout until closed.

            Examples:
              gatehouse open rollout podinfo -n test --reason "release 1.4.2" --ttl 2h
              gatehouse open traffic podinfo -n test --steps 3
              gatehouse open traffic podinfo -n test --steps rest

            Flagger asks confirm-traffic-increase once per weight step and once more at maximum weight, \
            before confirm-promotion: --steps N passes the next N of those checks; --steps rest passes \
            every remaining one of this rollout.
              gatehouse open promotion podinfo -n test --sticky --ttl 7d
            """)

    @Argument(help: "rollout, traffic, promotion, rollback or shared.") var gate: GateKind
    @Argument(help: "The canary: NAME (with -n), NAMESPACE/NAME or CLUSTER/NAMESPACE/NAME.") var name: String
    @OptionGroup var namespace: NamespaceOption
    @Option(help: "Why, for the audit trail.") var reason: String?
    @Option(help: "Close by itself after this long, e.g. 90s, 15m, 2h.") var ttl: String?
    @Option(help: "Close by itself at this RFC 3339 time.") var until: String?
    @Option(
        help: ArgumentHelp(
            "Traffic gate: pass this many checks, then close; or 'rest' for the rest of this rollout.",
            valueName: "N|rest")) var steps: TrafficSteps?
    @Flag(help: "Stay open across rollouts until closed.") var sticky = false
    @OptionGroup var client: ClientOptions

    func validate() throws {
        if ttl != nil && until != nil { throw ArgumentParser.ValidationError("give either --ttl or --until, not both") }
        try until.map { try validateTime($0, option: "--until", durationOption: "--ttl") }
    }

    func run() async throws {
        let canary = try namespace.canary(name, client)
        let options = OpenOptions(reason: reason, ttl: ttl, expiresAt: until, steps: steps, sticky: sticky)
        let reply = try await client.call { api throws(ClientError) in try await api.open(gate, of: canary, options) }
        client.show(change: reply) {
            TextRender.change(gate, of: $0)
        }
    }
}

struct Close: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Close a gate of a canary (pause it).",
        discussion: """
            Example:
              gatehouse close promotion podinfo -n test --reason "error budget spent"
            """)

    @Argument(help: "rollout, traffic, promotion, rollback or shared.") var gate: GateKind
    @Argument(help: "The canary: NAME (with -n), NAMESPACE/NAME or CLUSTER/NAMESPACE/NAME.") var name: String
    @OptionGroup var namespace: NamespaceOption
    @Option(help: "Why, for the audit trail.") var reason: String?
    @OptionGroup var client: ClientOptions

    func run() async throws {
        let canary = try namespace.canary(name, client)
        let reply = try await client.call { api throws(ClientError) in
            try await api.close(gate, of: canary, reason: reason)
        }
        client.show(change: reply) {
            TextRender.change(gate, of: $0)
        }
    }
}

struct Rollback: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask Flagger to roll back the canary's current rollout.",
        discussion: """
            Refused (exit 2) when the canary is not known to be in a rollout, unless --force.

            Example:
              gatehouse rollback podinfo -n test --reason "error rate up"
            """)

    @Argument(help: "The canary: NAME (with -n), NAMESPACE/NAME or CLUSTER/NAMESPACE/NAME.") var name: String
    @OptionGroup var namespace: NamespaceOption
    @Option(help: "Why, for the audit trail.") var reason: String?
    @Option(help: "How long the request stays pending (default 1h on the service).") var ttl: String?
    @Flag(help: "Request it even though the canary is not known to be in a rollout.") var force = false
    @OptionGroup var client: ClientOptions

    func run() async throws {
        let canary = try namespace.canary(name, client)
        let options = OpenOptions(reason: reason, ttl: ttl, force: force)
        let reply = try await client.call { api throws(ClientError) in try await api.rollback(canary, options) }
        client.show(change: reply) {
            TextRender.change(.rollback, of: $0)
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show canaries, their gates and what they wait on.",
        discussion: """
            With --watch the view stays on screen and is redrawn in place every --interval until \
            Ctrl-C; when standard output is not a terminal (or with -o json), a new view is printed \
            each time the service's answer changes. A service that cannot be reached is said so in \
            the view, and asked again.

            Examples:
              gatehouse status -A
              gatehouse status -n test
              gatehouse status podinfo -n test
              gatehouse status podinfo -n test --watch
            """)

    @Argument(help: "One canary to show in detail.") var name: String?
    @OptionGroup var namespace: NamespaceOption
    @Flag(name: [.customShort("A"), .long], help: "Every namespace.") var allNamespaces = false
    @Flag(name: [.customShort("w"), .long], help: "Keep watching: redraw the view as it changes (Ctrl-C ends).")
    var watch = false
    @Option(help: "With --watch, how often to ask, e.g. 2s.") var interval = "2s"
    @OptionGroup var client: ClientOptions

    /// One look: the service's answer (what a change is told by) and the view of it.
    struct View {
        var answer: Data
        var text: String
    }

    /// What the view shows: one canary, or the canaries of a namespace (nil: every namespace).
    enum Target {
        case canary(CanaryID)
        case namespace(String?)
    }

    func run() async throws {
        let api = try client.api()
        let target: Target =
            try name.map { .canary(try namespace.canary($0, client)) }
            ?? .namespace(allNamespaces ? nil : try namespace.namespaceOrDefault(client))
        guard watch else {
            do {
                print(try await view(of: target, from: api).text)
            } catch {
                FileHandle.standardError.write(Data("gatehouse: \(error.description)\n".utf8))
                throw ExitCode(error.exitCode)
            }
            return
        }
        let seconds: TimeInterval
        do {
            seconds = try DurationText.seconds(from: interval, field: "--interval")
        } catch {
            throw ArgumentParser.ValidationError(error.message)
        }
        let terminal = isatty(STDOUT_FILENO) == 1 && client.output == .text
        let command = ([Gatehouse.invokedName] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        var last: Data?
        while true {
            let look: View
            do {
                look = try await view(of: target, from: api)
            } catch {
                look = View(
                    answer: Data(error.description.utf8),
                    text: "gatehouse: \(error.description); asking again every \(interval)")
            }
            if terminal {
                // Home, clear the screen, then the frame: the view is redrawn in place, as watch(1) does.
                let header = "Every \(interval): \(command)    \(Timestamp.string(from: Date()))"
                print("\u{1B}[H\u{1B}[2J\(header)\n\n\(look.text)")
            } else if look.answer != last {
                print(look.text + (client.output == .text ? "\n" : ""))
            }
            // Every stream flushed: the frame shows now, not when a buffer fills. Once the terminal
            // or the pipe is gone (a write failed, or the reader hung up while the view did not
            // change and nothing was written), nobody is watching.
            guard fflush(nil) == 0, !Self.outputIsGone() else { throw ExitCode.failure }
            last = look.answer
            try await Task.sleep(for: .seconds(seconds))
        }
    }

    /// Whether standard output's reader is gone: a pipe whose reading end closed, or a terminal
    /// hung up (poll reports an error or a hang-up without anything being written).
    private static func outputIsGone() -> Bool {
        var output = pollfd(fd: STDOUT_FILENO, events: 0, revents: 0)
        return poll(&output, 1, 0) == 1 && output.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0
    }

    /// The view asked for: one canary in detail, or the table of a namespace (or all); the API's
    /// JSON as it came with -o json.
    private func view(of target: Target, from api: GatehouseAPI) async throws(ClientError) -> View {
        let json = client.output == .json
        let scope: String?
        switch target {
        case .canary(let canary):
            let reply = try await api.canary(canary)
            if json { return View(answer: reply.json, text: String(decoding: reply.json, as: UTF8.self)) }
            let events = (try? await api.events(of: canary, limit: 10).value.events) ?? []
            return View(answer: reply.json, text: TextRender.detail(reply.value, events: events))
        case .namespace(let namespace):
            scope = namespace
        }
        let reply = try await api.canaries(namespace: scope, cluster: namespace.cluster)
        if json { return View(answer: reply.json, text: String(decoding: reply.json, as: UTF8.self)) }
        // An empty namespace says where the canaries are, when there are some elsewhere.
        if let scope, reply.value.isEmpty {
            let elsewhere = (try? await api.canaries(cluster: namespace.cluster).value) ?? []
            if !elsewhere.isEmpty {
                let namespaces = Set(elsewhere.map(\.namespace)).sorted()
                return View(
                    answer: reply.json,
                    text:
                        "No canaries in namespace \(scope); \(elsewhere.count) in \(namespaces.count == 1 ? "namespace" : "namespaces") \(namespaces.prefix(5).joined(separator: ", "))\(namespaces.count > 5 ? ", …" : ""). Use -n NAMESPACE, or -A for every namespace."
                )
            }
        }
        let windows = (try? await api.policy().value).flatMap(TextRender.windows)
        return View(answer: reply.json, text: TextRender.table(reply.value) + (windows.map { "\n\n" + $0 } ?? ""))
    }
}

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the audit trail, newest first.",
        discussion: """
            Examples:
              gatehouse events --limit 50
              gatehouse events podinfo -n test
              gatehouse events --action dry-run
            """)

    @Argument(help: "Only this canary's events.") var name: String?
    @OptionGroup var namespace: NamespaceOption
    @Option(help: "Only entries of this action, such as opened, overridden or dry-run.") var action: String?
    @Option(help: "Only entries by this actor.") var actor: String?
    @Option(help: "How many entries (1–500).") var limit = 20
    @OptionGroup var client: ClientOptions

    func run() async throws {
        let canary = try name.map { try namespace.canary($0, client) }
        let reply = try await client.call { api throws(ClientError) in
            try await api.events(of: canary, action: action, actor: actor, limit: limit)
        }
        client.show(reply) {
            TextRender.events($0.events)
        }
    }
}

struct FreezeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "freeze",
        abstract: "Freeze a namespace, or everything: every gate but rollback refuses.",
        discussion: """
            Examples:
              gatehouse freeze -n payments --reason "end of quarter" --for 4h
              gatehouse freeze --all --reason "incident 4711"
              gatehouse freeze --all --cluster eu-1 --reason "eu-1 node upgrade"
            """)

    @Option(name: [.short, .long], help: "The namespace to freeze.") var namespace: String?
    @Flag(help: "Freeze every namespace.") var all = false
    @Option(help: "Freeze only in this cluster (default: in every cluster).") var cluster: String?
    @Option(help: "Why; shown to Flagger and in every refusal.") var reason: String
    @Option(help: "End at this RFC 3339 time.") var until: String?
    @Option(name: .customLong("for"), help: "End after this long, e.g. 4h.") var duration: String?
    @OptionGroup var client: ClientOptions

    func validate() throws {
        if (namespace == nil) == !all { throw ArgumentParser.ValidationError("give either -n NAMESPACE or --all") }
        if until != nil && duration != nil {
            throw ArgumentParser.ValidationError("give either --until or --for, not both")
        }
        try until.map { try validateTime($0, option: "--until", durationOption: "--for") }
    }

    func run() async throws {
        let reply = try await client.call { api throws(ClientError) in
            try await api.freeze(
                Area(cluster: cluster, namespace: namespace), reason: reason, until: until, duration: duration)
        }
        client.show(reply) { "freeze \($0.id) set: \($0.refusal)" }
    }
}

struct Unfreeze: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Lift a freeze.",
        discussion: """
            Example:
              gatehouse unfreeze 3
            """)

    @Argument(help: "The freeze's id, as `gatehouse freezes` shows it.") var id: Int64
    @OptionGroup var client: ClientOptions

    func run() async throws {
        let reply = try await client.call { api throws(ClientError) in try await api.unfreeze(id: id) }
        client.show(reply) {
            "freeze \($0.id) lifted"
        }
    }
}

struct WhoAmI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whoami",
        abstract: "Show who the service takes you for, and what you may do.",
        discussion: """
            The principal's kind (person, workload, shared token), its verified name, the name the
            audit trail records, its groups, and its grants. A CI job can run it with its identity
            token to see which workload it is before it acts.

            Example:
              gatehouse whoami --token "$ID_TOKEN"
            """)

    @OptionGroup var client: ClientOptions

    func run() async throws {
        let reply = try await client.call { api throws(ClientError) in try await api.whoAmI() }
        client.show(reply) { identity in
            var lines = [
                "\(identity.actor): \(identity.kind) \(identity.name)"
                    + (identity.groups.isEmpty ? "" : ", groups \(identity.groups.joined(separator: ", "))"),
                identity.countsAsPerson
                    ? "counts as a person where rules count approvals"
                    : "does not count as a person where rules count approvals",
            ]
            if let grants = identity.grants {
                lines += grants.map { grant in
                    let clusters =
                        grant.clusters == ["*"] ? "" : " (clusters \(grant.clusters.joined(separator: ", ")))"
                    return
                        "may \(grant.actions.joined(separator: ", ")) in namespaces \(grant.namespaces.joined(separator: ", "))\(clusters)"
                }
                if grants.isEmpty { lines.append("may do nothing") }
            } else {
                lines.append("may do everything (no access control)")
            }
            return lines.joined(separator: "\n")
        }
    }
}

struct Freezes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List freezes in force.",
        discussion: """
            Example:
              gatehouse freezes --include-ended
            """)

    @Flag(help: "Also list lifted and ended freezes.") var includeEnded = false
    @OptionGroup var client: ClientOptions

    func run() async throws {
        let reply = try await client.call { api throws(ClientError) in
            try await api.freezes(includingEnded: includeEnded)
        }
        client.show(reply) {
            TextRender.freezes($0)
        }
    }
}

struct Wait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Wait until a canary's rollout reaches a phase (for CI jobs).",
        discussion: """
            Exits 0 when the canary reaches the phase; 6 when the rollout ends the other way (Failed while \
            waiting for Succeeded); 4 on timeout. The previous rollout's final phase does not count: a new \
            rollout must be seen first (a new checksum, or a phase other than Succeeded or Failed).

            Example:
              gatehouse wait podinfo -n test --for Succeeded --timeout 30m
            """)

    @Argument(help: "The canary: NAME (with -n), NAMESPACE/NAME or CLUSTER/NAMESPACE/NAME.") var name: String
    @OptionGroup var namespace: NamespaceOption
    @Option(name: .customLong("for"), help: "The phase to wait for, e.g. Succeeded, WaitingPromotion.")
    var phase: String

    func validate() throws {
        guard CanaryPhase.known.contains(where: { $0.rawValue == phase }) else {
            let known = CanaryPhase.known.map(\.rawValue)
            let asked = phase.lowercased()
            let hint = known.compactMap { phase in
                Lookalike.editDistance(phase.lowercased(), asked, atMost: 3).map { (phase: phase, edits: $0) }
            }.min { $0.edits < $1.edits }?.phase
            throw ArgumentParser.ValidationError(
                "--for '\(phase)' is not a Flagger phase\(hint.map { " (did you mean \($0)?)" } ?? ""); it is one of \(known.joined(separator: ", "))"
            )
        }
    }
    @Option(help: "Give up after this long.") var timeout = "30m"
    @Option(help: "How often to look.") var interval = "5s"
    @OptionGroup var client: ClientOptions

    func run() async throws {
        let canary = try namespace.canary(name, client)
        let target = CanaryPhase(rawValue: phase)
        let (timeout, interval): (TimeInterval, TimeInterval)
        do {
            timeout = try DurationText.seconds(from: self.timeout, field: "--timeout")
            interval = try DurationText.seconds(from: self.interval, field: "--interval")
        } catch {
            throw ArgumentParser.ValidationError(error.message)
        }
        let quiet = client.output == .json
        let reply = try await client.call { api throws(ClientError) in
            try await api.wait(for: target, of: canary, timeout: timeout, interval: interval) { line in
                if !quiet { FileHandle.standardError.write(Data("\(line)\n".utf8)) }
            }
        }
        client.show(reply) { "\($0.namespace)/\($0.name) reached \($0.phase?.rawValue ?? target.rawValue)" }
    }
}

/// Refuses a time that is not RFC 3339 before anything is sent, naming the option and the
/// option that takes a duration instead.
func validateTime(_ text: String, option: String, durationOption: String) throws {
    do {
        _ = try Timestamp.date(from: text, field: option)
    } catch {
        throw ArgumentParser.ValidationError(
            "\(option) '\(text.prefix(40))' is not an RFC 3339 time such as 2026-12-01T09:00:00Z; for a length of time use \(durationOption), e.g. \(durationOption) 1d"
        )
    }
}
