import ArgumentParser
import Foundation
import GatehouseStore
import Logging

/// `gatehouse migrate`: copies an installation's SQLite file into an empty PostgreSQL database.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a SQLite installation's gates, freezes and audit trail into PostgreSQL.",
        discussion: """
            Stop the service (or scale it to zero) first, so that nothing changes the file meanwhile.
            The copy is one transaction: all of it, or nothing. The target must be empty (a fresh
            database; the schema is created as `gatehouse serve` creates it).

            Example:
              PGPASSWORD=… gatehouse migrate --from /data/gatehouse.sqlite \\
                --to 'postgres://gatehouse@db.example:5432/gatehouse?sslmode=verify-full'
            """)

    @Option(help: "The SQLite file of the installation to copy.") var from: String
    @Option(help: "The PostgreSQL database: postgres://USER@HOST:PORT/DB?sslmode=….") var to: String
    @Option(help: "A file holding the database password (else the URL's, or PGPASSWORD).") var passwordFile: String?

    func run() async throws {
        guard FileManager.default.fileExists(atPath: from) else {
            throw ValidationError("--from \(from): there is no such file")
        }
        var password = ProcessInfo.processInfo.environment["PGPASSWORD"]
        if let passwordFile {
            guard let data = FileManager.default.contents(atPath: passwordFile) else {
                throw ValidationError("--password-file \(passwordFile) cannot be read")
            }
            password = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var logger = Logger(label: "gatehouse.migrate")
        logger.logLevel = .error
        do {
            let location = try PostgresLocation(url: to, password: password)
            let source = try GateStore(
                writer: GateStore.openDatabase(atPath: from, busyTimeout: 5), storageTimeout: 600, logger: logger)
            // A copy is one long transaction: it may take far longer than a check may.
            let target = try await GateStore.postgres(location, storageTimeout: 3600, logger: logger)
            defer { target.shutDown() }
            let copied = try await source.copyEverything(to: target)
            print("\(copied) from \(from) to \(location)")
        } catch let error as DatabaseSetupError {
            throw Self.failure(error.description)
        } catch let error as StoreError {
            throw Self.failure(error.message)
        }
    }

    /// Says why on stderr, in one line, and exits 1: nothing was copied.
    private static func failure(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("gatehouse migrate: \(message); nothing was copied\n".utf8))
        return ExitCode(1)
    }
}
