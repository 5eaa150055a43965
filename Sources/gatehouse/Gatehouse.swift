import ArgumentParser

/// The `gatehouse` command: `serve` runs the service; the other subcommands talk to a running one.
@main
struct Gatehouse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "Durable manual gates for Flagger canaries.",
        subcommands: [
            Serve.self, Open.self, Close.self, Rollback.self, Status.self, Events.self, FreezeCommand.self,
            Unfreeze.self, Freezes.self, Wait.self,
        ]
    )
}
