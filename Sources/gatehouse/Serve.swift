import ArgumentParser
import CMallocArenas
import Foundation
import GatehouseCore
import GatehouseServer
import Hummingbird
import Logging

/// `gatehouse serve`: runs the service until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the Gatehouse service.",
        usage: "gatehouse serve [--OPTION VALUE ...]",
        discussion: """
            \(ServeOption.helpText)

            Example:
              gatehouse serve --port 8080 --database /data/gatehouse.sqlite
            """
    )

    /// The options, read by `ServerArguments` from `ServeOption.all`, where each is declared once.
    @Argument(parsing: .captureForPassthrough, help: .hidden) var options: [String] = []

    func run() async throws {
        // The options are captured whole, so help is asked for among them.
        if options.contains("--help") || options.contains("-h") { throw CleanExit.helpRequest(self) }
        // Linked for its constructor, which has set malloc's arenas before `main` (malloc_arenas.c).
        _ = gatehouse_malloc_arenas()
        let arguments: ServerArguments
        do {
            arguments = try ServerArguments(commandLine: options, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ArgumentParser.ValidationError("\(error)")
        }
        let level = arguments.logLevel
        switch arguments.logFormat ?? (isatty(STDOUT_FILENO) == 1 ? .text : .json) {
        case .json:
            LoggingSystem.bootstrap { label in
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        case .text:
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler(label: label, stream: LogStream(.standardOutput))
                handler.logLevel = level
                return handler
            }
        }
        let logger = Logger(label: "gatehouse")
        // Lines are written by a thread of their own (`LogOutput`): the last ones are waited for.
        do {
            let app: any ApplicationProtocol
            do {
                app = try await buildApplication(arguments, logger: logger)
            } catch let error as GatehouseCore.InvalidInput {
                throw ArgumentParser.ValidationError(error.message)
            }
            try await runUntilStopped(app, logger: logger)
            logger.info("stopped", metadata: ["version": "\(gatehouseVersion)"])
            await LogOutput.standardOutput.flush()
        } catch {
            await LogOutput.standardOutput.flush()
            throw error
        }
    }
}
