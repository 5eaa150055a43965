import Foundation
import GRDB
import GatehouseCore

/// What a transaction writes and answers, decided from the rows it read.
struct Plan<Value: Sendable>: Sendable {
    var value: Value
    var writes: [SQL] = []
    /// Applied to the in-memory copy once the transaction commits (SQLite keeps one; PostgreSQL none).
    var remember: @Sendable (inout Memory) -> Void = { _ in }
}

/// How the store reaches its database. Every change is one transaction of the same shape: statements
/// whose rows it decides from, then the statements the decision writes; both databases run the same
/// SQL (`Records`, `Tables`, `Outbox`).
protocol StoreEngine: Sendable {
    /// Runs `reads` in order, hands their rows to `decide`, runs the writes it returns, and commits;
    /// throws `unavailable` when storage does not commit within the storage timeout (and then
    /// nothing of it is kept). `locks` name what writers must wait for each other over (a canary; the
    /// rollout slots).
    func transaction<Value: Sendable>(
        locks: [String], reads: [SQL], _ decide: @escaping @Sendable ([[any StoredRow]]) throws -> Plan<Value>
    ) async throws -> Value

    /// The rows of a query, each read by `read`.
    func rows<Value: Sendable>(_ sql: SQL, _ read: @escaping @Sendable (any StoredRow) throws -> Value)
        async throws -> [Value]

    /// How long the oldest unanswered transaction has waited, if any is waiting.
    var oldestWait: Duration? { get }

    /// How long a transaction may take before it fails closed.
    var timeout: Duration { get }

    /// What is wrong with storage that the engine sees without asking the database (a deleted file).
    var knownProblem: String? { get }

    /// Statements after which the ids the database picks for `tables` follow those written explicitly.
    func continuingIDs(of tables: [String]) -> [SQL]
}

/// SQLite through GRDB: one writer, whose changes are committed in groups (`GroupCommit`).
struct SQLiteEngine: StoreEngine {
    let writer: any DatabaseWriter
    let writes: GroupCommit
    let file: DatabaseFile?
    let health: StorageHealth

    /// Nothing: SQLite's AUTOINCREMENT continues after the largest id written.
    func continuingIDs(of tables: [String]) -> [SQL] { [] }

    func transaction<Value: Sendable>(
        locks: [String], reads: [SQL], _ decide: @escaping @Sendable ([[any StoredRow]]) throws -> Plan<Value>
    ) async throws -> Value {
        try await writes.write { db in
            let rows = try reads.map { try db.rows($0) as [any StoredRow] }
            let plan = try decide(rows)
            for statement in plan.writes { try db.run(statement) }
            return (plan.value, plan.remember)
        }
    }

    func rows<Value: Sendable>(_ sql: SQL, _ read: @escaping @Sendable (any StoredRow) throws -> Value)
        async throws -> [Value]
    {
        do {
            return try await writer.read { db in try db.rows(sql).map(read) }
        } catch {
            health.markUnavailable(error)
            throw StoreError.unavailable("storage cannot answer right now")
        }
    }

    var oldestWait: Duration? { writes.oldestWait }
    var timeout: Duration { writes.timeout }
    var knownProblem: String? { file?.problem }
}
