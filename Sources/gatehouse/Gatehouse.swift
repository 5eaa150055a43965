import ArgumentParser
import Dispatch
import Foundation
import GatehouseClient
import GatehouseCore

/// Starts the command on Swift's own concurrency pool. (NIO's event loops installed as the global
/// executor instead cost a `GET /healthz` a third of its throughput, pinned on one core: every task
/// enqueued on an event loop takes its lock and may wake its selector; docs/benchmarks.md.)
@main
enum Main {
    static func main() {
        let arguments = GlobalOptions.movedAfterCommand(Array(CommandLine.arguments.dropFirst()))
        Task {
            await Gatehouse.main(arguments)
            exit(0)
        }
        dispatchMain()
    }
}

/// The options every client subcommand takes, accepted before the subcommand too, as kubectl takes
/// its own (`kubectl gatehouse -n test status podinfo`, `gatehouse --server URL open ...`).
enum GlobalOptions {
    /// The options that take a value, and may come before the subcommand.
    static let taking: Set<String> = [
        "--server", "--token", "-o", "--output", "--request-timeout", "-n", "--namespace", "--cluster", "--context",
        "--kubeconfig", "--service",
    ]

    /// `arguments` with the options in `taking` (and their values) that come before the first word
    /// moved to the end, before a `--` if there is one; anything else is left as it was.
    static func movedAfterCommand(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var rest = arguments[...]
        while let first = rest.first {
            let name = String(first.prefix { $0 != "=" })
            guard taking.contains(name) else { break }
            if first.contains("=") {
                leading.append(first)
                rest = rest.dropFirst()
            } else if rest.count >= 2 {
                leading += rest.prefix(2)
                rest = rest.dropFirst(2)
            } else {
                break  // no value: the parser says so
            }
        }
        guard !leading.isEmpty, !rest.isEmpty, !rest.first!.hasPrefix("-") else { return arguments }
        var moved = Array(rest)
        moved.insert(contentsOf: leading, at: moved.firstIndex(of: "--") ?? moved.endIndex)
        return moved
    }
}

/// The `gatehouse` command: `serve` runs the service; the other subcommands talk to a running one.
/// Installed as `kubectl-gatehouse` on the PATH, it is also the kubectl plugin `kubectl gatehouse`.
struct Gatehouse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: invokedName,
        abstract: "Durable manual gates for Flagger canaries.",
        version: gatehouseVersion,
        subcommands: [
            Serve.self, Open.self, Close.self, Rollback.self, Status.self, Events.self, FreezeCommand.self,
            Unfreeze.self, Freezes.self, Wait.self, RequestApproval.self, OverrideRule.self, PolicyCommand.self,
            TokenCommand.self, WhoAmI.self, Migrate.self, VersionCommand.self,
        ]
    )

    /// How the user called the command: `kubectl gatehouse` when kubectl started it as its plugin
    /// (its file is named `kubectl-gatehouse`), else `gatehouse`; help and usage say the same.
    static var invokedName: String {
        let file = CommandLine.arguments.first.map { URL(fileURLWithPath: $0).lastPathComponent } ?? ""
        return file == "kubectl-gatehouse" ? "kubectl gatehouse" : "gatehouse"
    }
}

/// `gatehouse version`: this client's version and, when it answers, the service's.
struct VersionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Show the client's version and the service's.",
        discussion: """
            Prints the client's version, then asks the service (--server) for its own. Exits 0 when the \
            service answered, with the code of the failure otherwise (the client's version is printed first).

            Example, from inside the cluster (the Service):
              gatehouse version --server http://gatehouse.gatehouse
            """)

    @OptionGroup var client: ClientOptions

    func run() async throws {
        let api = try client.api()
        if client.output == .text { print("Client: \(gatehouseVersion)") }
        let reply = try await client.call { api throws(ClientError) in try await api.version() }
        switch client.output {
        case .text: print("Server: \(reply.value.version) (\(api.server.absoluteString))")
        case .json:
            let versions = ["client": ServiceVersion(version: gatehouseVersion), "server": reply.value]
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(versions), as: UTF8.self))
        }
    }
}
