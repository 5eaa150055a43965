import Foundation
import GatehouseCore
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// PostgreSQL through postgres-nio, shared by several replicas (and clusters).
///
/// Each replica keeps a copy in memory and answers checks from it, after one round trip that makes
/// it current: every change takes the next number of one counter row (`storeVersion`) in its
/// transaction, and a check first reads that number (`catchUp`). When it is the number memory holds,
/// memory already has every change committed before the check began, on any replica; otherwise the
/// rows written since are read, in one snapshot, before the check is answered. Checks that arrive
/// while such a read is in flight share the next one, so under load one read serves many checks.
/// NOTIFY after each change (LISTEN on one connection) lets replicas catch up before they are asked,
/// and take in what the others observed of canaries (saved apart from changes: see `saveObservations`).
///
/// Writers of one canary wait for each other on a transaction-scoped advisory lock, so concurrent
/// decisions are serialised by the database, and a change is decided from its rows read in that
/// transaction, never from memory. A transaction not committed within the storage timeout fails
/// closed: its caller gets `unavailable` and the transaction is rolled back, never committed later
/// (every connection also has that `statement_timeout`).
final class PostgresEngine: StoreEngine {
    let client: PostgresClient
    let timeout: Duration
    let health: StorageHealth
    let logger: Logger
    let memory: SharedMemory
    /// The channel on which each change is announced.
    static let channel = "gatehouse_changes"
    private let running: Task<Void, Never>
    private let listening = Mutex<Task<Void, Never>?>(nil)
    private let inFlight = Mutex<(next: Int, started: [Int: ContinuousClock.Instant])>((0, [:]))
    private let rounds: SharedRounds
    private let observationRounds: SharedRounds

    init(
        configuration: PostgresClient.Configuration, timeout: Duration, health: StorageHealth, logger: Logger,
        memory: SharedMemory
    ) {
        var configuration = configuration
        configuration.options.additionalStartupParameters.append(("statement_timeout", "\(timeout.milliseconds)"))
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.timeout = timeout
        self.health = health
        self.logger = logger
        self.memory = memory
        running = Task { await client.run() }
        rounds = SharedRounds()
        observationRounds = SharedRounds()
        rounds.round = { [unowned self] in try await self.catchUpOnce(self.memory) }
        observationRounds.round = { [unowned self] in try await self.catchUpObservations() }
    }

    /// Takes in what other replicas observed (last seen, phase, checksum) since memory last did.
    /// Not a change checks wait for: it never decides an answer, so it is read in the background.
    private func catchUpObservations() async throws {
        let since = memory.withLock { $0.observedCaughtUp }
        let (observed, saved) = try await snapshot(Records.observations(since: since)) { rows in
            (
                try rows[0].first?.integer("observed") ?? 0,
                try rows[1].map { try Tables.canary.read($0, only: Tables.observedCanaryColumns) }
            )
        }
        memory.withLock { $0.adoptObservations(saved, through: observed) }
    }

    /// Listens for other replicas' changes and catches up as they come, reconnecting after a failure.
    func follow() {
        let task = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                do {
                    try await self.client.withConnection { connection in
                        try await connection.listen(on: Self.channel) { notifications in
                            // Changes made before LISTEN took effect are caught up with once.
                            try? await self.catchUp()
                            try? await self.observationRounds.join()
                            for try await _ in notifications {
                                try? await self.catchUp()
                                try? await self.observationRounds.join()
                            }
                        }
                    }
                } catch {
                    self.logger.debug(
                        "listening for changes failed; again in a second", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        listening.withLock { $0 = task }
    }

    /// Nothing to do: PostgreSQL's autovacuum makes the space of deleted rows reusable.
    func reclaimSpace() async throws {}

    /// Nothing to do: PostgreSQL's own checkpoints never fall to a client's commit.
    func settle() async {}

    /// Closes the connections.
    func shutDown() {
        listening.withLock { $0?.cancel() }
        running.cancel()
    }

    deinit {
        listening.withLock { $0?.cancel() }
        running.cancel()
    }

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

    func catchUp() async throws {
        try await rounds.join()
    }

    /// One statement on its own (no transaction around it: one round trip).
    func rows<Value: Sendable>(_ sql: SQL, _ read: @escaping @Sendable (any StoredRow) throws -> Value)
        async throws -> [Value]
    {
        try await bounded { _ in
            try await self.client.withConnection { connection in
                try await connection.query(sql.postgres, logger: self.logger).collect().map {
                    try read(PostgresRowReader($0))
                }
            }
        }
    }

    /// The reads in one repeatable-read, read-only transaction.
    func snapshot<Value: Sendable>(_ reads: [SQL], _ read: @escaping @Sendable ([[any StoredRow]]) throws -> Value)
        async throws -> Value
    {
        try await bounded { _ in
            try await self.client.withConnection { connection in
                try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: self.logger)
                do {
                    var rows: [[any StoredRow]] = []
                    for sql in reads {
                        rows.append(
                            try await connection.query(sql.postgres, logger: self.logger).collect().map(
                                PostgresRowReader.init))
                    }
                    let value = try read(rows)
                    try await connection.query("COMMIT", logger: self.logger)
                    return value
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: self.logger)
                    throw error
                }
            }
        }
    }

    func transaction<Value: Sendable>(
        locks: [String], reads: [SQL], _ decide: @escaping @Sendable ([[any StoredRow]]) throws -> Plan<Value>
    ) async throws -> Value {
        try await bounded { ticket in try await self.run(locks: locks, reads: reads, decide, ticket: ticket) }
    }

    /// Runs `work` within the storage timeout (see `WriteTicket`), counting it as in flight meanwhile.
    private func bounded<Value: Sendable>(_ work: @escaping @Sendable (WriteTicket) async throws -> Value)
        async throws -> Value
    {
        let id = inFlight.withLock { state -> Int in
            defer { state.next += 1 }
            state.started[state.next] = .now
            return state.next
        }
        defer { _ = inFlight.withLock { $0.started.removeValue(forKey: id) } }
        return try await WriteTicket.answer(within: timeout, health: health) { ticket, answer in
            Task {
                do {
                    let value = try await work(ticket)
                    guard ticket.take() else { return }  // the deadline answered
                    answer.succeed(value)
                } catch {
                    guard ticket.take() else { return }  // the deadline answered
                    answer.fail(self.storeError(error))
                }
            }
        }
    }

    /// One transaction on one connection; rolled back, not committed, when its caller gave up. Once
    /// committed, what it changed is in memory before its caller is answered.
    private func run<Value: Sendable>(
        locks: [String], reads: [SQL], _ decide: @Sendable ([[any StoredRow]]) throws -> Plan<Value>,
        ticket: WriteTicket
    ) async throws -> Value {
        let logger = self.logger
        let (value, remember, version) = try await client.withConnection {
            connection -> (Value, @Sendable (inout Memory, Int64) -> Void, Int64) in
            try await connection.query("BEGIN", logger: logger)
            let value: Value
            let remember: @Sendable (inout Memory, Int64) -> Void
            var version: Int64 = 0
            func stamped(_ statement: SQL) async throws -> SQL {
                guard statement.isVersioned else { return statement }
                if version == 0 {
                    let rows = try await connection.query(Records.nextVersion.postgres, logger: logger).collect()
                    version = try rows.first.map { try PostgresRowReader($0).integer("version") } ?? 0
                }
                return statement.stamped(version)
            }
            do {
                // Always in the same order, so that two transactions never wait for each other's second lock.
                for lock in locks.sorted() {
                    _ = try await connection.query(
                        "SELECT pg_advisory_xact_lock(hashtextextended(\(lock), 0))", logger: logger
                    ).collect()
                }
                var rows: [[any StoredRow]] = []
                for read in reads {
                    let read = try await connection.query(try await stamped(read).postgres, logger: logger).collect()
                    rows.append(read.map(PostgresRowReader.init))
                }
                let plan = try decide(rows)
                for write in plan.writes {
                    _ = try await connection.query(try await stamped(write).postgres, logger: logger).collect()
                }
                if !plan.writes.isEmpty {
                    // Delivered at COMMIT: the other replicas catch up before they are asked.
                    _ = try await connection.query("SELECT pg_notify(\(Self.channel), '')", logger: logger).collect()
                }
                guard ticket.claim() else { throw StoreError.unavailable("storage did not answer in time") }
                value = plan.value
                remember = plan.remember
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
            try await connection.query("COMMIT", logger: logger)
            return (value, remember, version)
        }
        memory.withLock { $0.commit(version, remember: remember) }
        return value
    }

    /// What a caller is told of an error: the store's own refusals as they are; a change the
    /// database refuses (a constraint, a value out of range) fails that request alone; anything
    /// else means storage is failing, and checks fail closed until a probe commits again.
    func storeError(_ error: any Error) -> StoreError {
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
            case .changeVersion: bindings.appendNull()  // never run unstamped (`SQL.stamped`)
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
        return try read(row[name], as: type)
    }

    func positions(of columns: [String]) -> [Int?] {
        var index: [String: Int] = [:]
        for (position, cell) in row.enumerated() where index[cell.columnName] == nil {
            index[cell.columnName] = position
        }
        return columns.map { index[$0.lowercased()] }
    }

    func value(at position: Int?, column: String, as type: StoredType) throws -> StoredValue {
        guard let position else { throw UnreadableRow(description: "no column \(column)") }
        return try read(row[position], as: type)
    }

    private func read(_ cell: PostgresCell, as type: StoredType) throws -> StoredValue {
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

extension Duration {
    /// The duration in whole milliseconds, at least one.
    var milliseconds: Int64 { max(1, components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000) }
}
