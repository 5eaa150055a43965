import ArgumentParser
import Dispatch
import Foundation
import NIOCore
import NIOPosix

/// Starts the command with Swift concurrency running on NIO's event loops, which spares every
/// request a hop between NIO's threads and the concurrency pool; this must happen before any task runs.
@main
enum Main {
    static func main() {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        Task {
            await Gatehouse.main()
            exit(0)
        }
        dispatchMain()
    }
}

/// The `gatehouse` command: `serve` runs the service; the other subcommands talk to a running one.
struct Gatehouse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "Durable manual gates for Flagger canaries.",
        subcommands: [
            Serve.self, Open.self, Close.self, Rollback.self, Status.self, Events.self, FreezeCommand.self,
            Unfreeze.self, Freezes.self, Wait.self, TokenCommand.self, Migrate.self,
        ]
    )
}
