import ArgumentParser
import Foundation
import GatehouseServer

/// `gatehouse token`: make and hash tokens for the access file.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Generate a token, or print a token's SHA-256 for the access file.",
        discussion: """
            The access file stores only the SHA-256 of each token, never the token itself.

            Examples:
              gatehouse token generate
              printf %s "$TOKEN" | gatehouse token hash
            """,
        subcommands: [Generate.self, Hash.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a new random token and the sha256 line for the access file.",
            discussion: """
                Example:
                  gatehouse token generate
                """)

        func run() {
            let token = AccessPolicy.generateToken()
            print("token:  \(token)")
            print("sha256: \(AccessPolicy.hash(of: token))")
        }
    }

    struct Hash: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the SHA-256 of a token read from standard input (or given as an argument).",
            discussion: """
                Example:
                  printf %s "$TOKEN" | gatehouse token hash
                """)

        @Argument(help: "The token; read from standard input when omitted (keeps it out of shell history).")
        var token: String?

        func run() throws {
            let value =
                token
                ?? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            guard !value.isEmpty else { throw ValidationError("no token given") }
            print(AccessPolicy.hash(of: value))
        }
    }
}
