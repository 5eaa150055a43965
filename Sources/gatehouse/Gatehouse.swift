import ArgumentParser

/// The `gatehouse` command: `serve` runs the service.
@main
struct Gatehouse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "Durable manual gates for Flagger canaries.",
        subcommands: [Serve.self]
    )
}
