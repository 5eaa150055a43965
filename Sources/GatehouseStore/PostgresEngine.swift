import Foundation
import GatehouseCore
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// PostgreSQL through postgres-nio, shared by several replicas (and clusters).
///
/// No replica keeps a copy: every check reads the database, so a gate closed through one replica is
/// closed for the next check any replica answers. Writers of one canary wait for each other on a
/// transaction-scoped advisory lock, so concurrent decisions are serialised by the database. A
/// transaction not committed within the storage timeout fails closed: its caller gets `unavailable`
/// and the transaction is rolled back, never committed later (the server also aborts a statement
/// running past the timeout).
final class PostgresEngine: StoreEngine {
    let client: PostgresClient
    let timeout: Duration
    let health: StorageHealth
    let logger: Logger
    private let running: Task<Void, Never>
    private let inFlight = Mutex<(next: Int, started: [Int: ContinuousClock.Instant])>((0, [:]))

    init(configuration: PostgresClient.Configuration, timeout: Duration, health: StorageHealth, logger: Logger) {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.timeout = timeout
        self.health = health
        self.logger = logger
        running = Task { await client.run() }
    }

    /// Closes the connections.
    func shutDown() {
        running.cancel()
    }

    deinit { running.cancel() }

    var oldestWait: Duration? {
        inFlight.withLock { $0.started.values.min().map { ContinuousClock.now - $0 } }
    }

    var knownProblem: String? { nil }

    /// Moves each table's `id` sequence past its largest id.
    func continuingIDs(of tables: [String]) -> [SQL] {
        tables.map { table in
            SQL(
                "SELECT setval(pg_get_serial_sequence('\(table)', 'id'), COALESCE((SELECT max(id) FROM \(table)), 0) + 1, false)"
            )
        }
    }

    func rows<Value: Sendable>(_ sql: SQL, _ read: @escaping @Sendable (any StoredRow) throws -> Value)
        async throws -> [Value]
    {
        try await transaction(locks: [], reads: [sql]) { rows in Plan(value: try rows[0].map(read)) }
    }

    func transaction<Value: Sendable>(
        locks: [String], reads: [SQL], _ decide: @escaping @Sendable ([[any StoredRow]]) throws -> Plan<Value>
    ) async throws -> Value {
        let id = inFlight.withLock { state -> Int in
            defer { state.next += 1 }
            state.started[state.next] = .now
            return state.next
        }
        defer { _ = inFlight.withLock { $0.started.removeValue(forKey: id) } }
        return try await WriteTicket.answer(within: timeout, health: health) { ticket, answer in
            Task {
                do {
                    answer.succeed(try await self.run(locks: locks, reads: reads, decide, ticket: ticket))
                } catch {
                    guard ticket.take() else { return }  // the deadline answered
                    answer.fail(self.storeError(error))
                }
            }
        }
    }

    /// One transaction on one connection; rolled back, not committed, when its caller gave up.
    private func run<Value: Sendable>(
        locks: [String], reads: [SQL], _ decide: @Sendable ([[any StoredRow]]) throws -> Plan<Value>,
        ticket: WriteTicket
    ) async throws -> Value {
        let logger = self.logger
        let milliseconds = max(
            1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        return try await client.withConnection { connection in
            try await connection.query("BEGIN", logger: logger)
            let value: Value
            do {
                // The server gives up on a statement (a lock wait, a stalled disk) when the caller does.
                try await connection.query(
                    PostgresQuery(unsafeSQL: "SET LOCAL statement_timeout = \(milliseconds)"), logger: logger)
                // Always in the same order, so that two transactions never wait for each other's second lock.
                for lock in locks.sorted() {
                    _ = try await connection.query(
                        "SELECT pg_advisory_xact_lock(hashtextextended(\(lock), 0))", logger: logger
                    ).collect()
                }
                var rows: [[any StoredRow]] = []
                for read in reads {
                    let read = try await connection.query(read.postgres, logger: logger).collect()
                    rows.append(read.map(PostgresRowReader.init))
                }
                let plan = try decide(rows)
                for write in plan.writes {
                    _ = try await connection.query(write.postgres, logger: logger).collect()
                }
                guard ticket.claim() else { throw StoreError.unavailable("storage did not answer in time") }
                value = plan.value
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
            try await connection.query("COMMIT", logger: logger)
            return value
        }
    }

    /// What a caller is told of an error: the store's own refusals as they are; a change the
    /// database refuses (a constraint, a value out of range) fails that request alone; anything
    /// else means storage is failing, and checks fail closed until a probe commits again.
    private func storeError(_ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        if let error = error as? PSQLError, let state = error.serverInfo?[.sqlState],
            state.hasPrefix("23") || state.hasPrefix("22")
        {
            return .rejected("storage refused this change: \(error.serverInfo?[.message] ?? state)")
        }
        health.markUnavailable(error)
        return .unavailable("storage cannot answer right now")
    }
}

extension SQL {
    /// The statement as PostgreSQL takes it: `$1`, `$2`… for the placeholders, `FOR UPDATE` when
    /// it locks the rows it reads, and dates bound in whole milliseconds, as SQLite keeps them.
    var postgres: PostgresQuery {
        var text = ""
        var number = 0
        for character in self.text {
            if character == "?" {
                number += 1
                text += "$\(number)"
            } else {
                text.append(character)
            }
        }
        if locksRows { text += " FOR UPDATE" }
        var bindings = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            switch argument {
            case .null: bindings.appendNull()
            case .text(let value): bindings.append(value)
            case .integer(let value): bindings.append(value)
            case .boolean(let value): bindings.append(value)
            case .date(let date):
                bindings.append(date.inWholeMilliseconds)
            case .blob(let data): bindings.append(ByteBuffer(bytes: data))
            }
        }
        return PostgresQuery(unsafeSQL: text, binds: bindings)
    }
}

/// A PostgreSQL row read as the store reads rows (PostgreSQL folds unquoted names to lower case).
struct PostgresRowReader: StoredRow {
    let row: PostgresRandomAccessRow

    init(_ row: PostgresRow) {
        self.row = row.makeRandomAccess()
    }

    func value(_ column: String, as type: StoredType) throws -> StoredValue {
        let name = column.lowercased()
        guard row.contains(name) else { throw UnreadableRow(description: "no column \(column)") }
        let cell = row[name]
        guard cell.bytes != nil else { return .null }
        return switch type {
        case .text: .text(try cell.decode(String.self))
        case .integer: .integer(try cell.decode(Int64.self))
        case .boolean: .boolean(try cell.decode(Bool.self))
        case .date: .date(try cell.decode(Date.self).inWholeMilliseconds)
        case .blob: .blob(try cell.decode(Data.self))
        }
    }
}

extension Date {
    /// The date rounded to whole milliseconds, as both databases keep dates: written so, and read
    /// back as the same `Date` whichever database held it.
    var inWholeMilliseconds: Date { Date(timeIntervalSince1970: (timeIntervalSince1970 * 1000).rounded() / 1000) }
}
