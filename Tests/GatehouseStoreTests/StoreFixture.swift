import Foundation
import GatehouseCore
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import GatehouseStore

/// The databases the store's tests run on: SQLite always, PostgreSQL when `GATEHOUSE_TEST_POSTGRES`
/// names a server to create throwaway databases on (`scripts/with-postgres.sh` starts one).
enum Backend: String, CustomStringConvertible, CaseIterable, Sendable {
    case sqlite, postgres

    static var postgresURL: String? { ProcessInfo.processInfo.environment["GATEHOUSE_TEST_POSTGRES"] }

    static var available: [Backend] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }

    var description: String { rawValue }
}

/// A store on a fresh database of one backend, and what the tests ask of it.
final class StoreFixture: Sendable {
    let backend: Backend
    let sqlite: TemporaryDatabase?
    let postgres: PostgresLocation?
    let store: GateStore
    let podinfo = try! CanaryID(namespace: "test", name: "podinfo")
    private let opened = Mutex<[GateStore]>([])

    init(_ backend: Backend, storageTimeout: TimeInterval = 5, policy: Policy = .none) async throws {
        self.backend = backend
        switch backend {
        case .sqlite:
            let database = try TemporaryDatabase()
            sqlite = database
            postgres = nil
            store = try database.openStore(storageTimeout: storageTimeout, policy: policy)
        case .postgres:
            sqlite = nil
            let location = try await Self.freshPostgresDatabase()
            postgres = location
            store = try await GateStore.postgres(
                location, storageTimeout: storageTimeout, logger: Self.quiet, policy: { policy })
        }
        opened.withLock { $0.append(store) }
    }

    /// Another store on the same database: a restarted process, or another replica.
    func reopen(maximumCanaries: Int = 50_000) async throws -> GateStore {
        let store: GateStore
        if let sqlite {
            store = try sqlite.openStore(maximumCanaries: maximumCanaries)
        } else {
            store = try await GateStore.postgres(
                try #require(postgres), maximumCanaries: maximumCanaries, logger: Self.quiet)
        }
        opened.withLock { $0.append(store) }
        return store
    }

    func check(_ gate: GateKind, _ checksum: Revision, phase: CanaryPhase = .progressing) async throws -> Decision {
        try await store.check(Check(canary: podinfo, gate: gate, checksum: checksum, phase: phase))
    }

    /// How many rows a query counts (`SELECT COUNT(*) AS count …`), read as the store reads.
    func count(_ sql: String) async throws -> Int {
        try await store.rows(SQL(sql)) { Int(try $0.integer("count")) }.first ?? -1
    }

    deinit {
        for store in opened.withLock({ $0 }) { store.shutDown() }
    }

    static let quiet: Logger = {
        var logger = Logger(label: "gatehouse.store.test")
        logger.logLevel = .critical
        return logger
    }()

    /// A new, empty database on the test server.
    static func freshPostgresDatabase() async throws -> PostgresLocation {
        let server = try PostgresLocation(url: try #require(Backend.postgresURL))
        let name = "gatehouse_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let client = PostgresClient(configuration: try server.configuration, backgroundLogger: quiet)
        let running = Task { await client.run() }
        defer { running.cancel() }
        try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        var location = server
        location.database = name
        return location
    }
}
