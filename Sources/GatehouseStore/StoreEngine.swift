import Foundation
import GatehouseCore

/// What a transaction writes and answers, decided from the rows it read.
struct Plan<Value: Sendable>: Sendable {
    var value: Value
    var writes: [SQL] = []
    /// Applied to the copy in memory once the transaction commits, with the transaction's change
    /// version (0 when it wrote nothing versioned).
    var remember: @Sendable (inout Memory, _ version: Int64) -> Void = { _, _ in }
}

/// How the store reaches its database. Every change is one transaction of the same shape: statements
/// whose rows it decides from, then the statements the decision writes; both databases run the same
/// SQL (`Records`, `Tables`, `Outbox`). Every engine keeps the store's copy in memory (`SharedMemory`)
/// in step with what it commits, and brings it up to date with what others commit (`catchUp`).
protocol StoreEngine: Sendable {
    /// Runs `reads` in order, hands their rows to `decide`, runs the writes it returns, and commits;
    /// throws `unavailable` when storage does not commit within the storage timeout (and then
    /// nothing of it is kept). `locks` name what writers must wait for each other over (a canary; the
    /// rollout slots). A transaction whose statements hold `.changeVersion` takes the next change
    /// version (`Records.nextVersion`) for them; the plan's `remember` is applied to memory after
    /// the commit and before the caller is answered.
    func transaction<Value: Sendable>(
        locks: [String], reads: [SQL], _ decide: @escaping @Sendable ([[any StoredRow]]) throws -> Plan<Value>
    ) async throws -> Value

    /// The rows of a query, each read by `read`.
    func rows<Value: Sendable>(_ sql: SQL, _ read: @escaping @Sendable (any StoredRow) throws -> Value)
        async throws -> [Value]

    /// The rows of `reads`, all read in one snapshot of the database.
    func snapshot<Value: Sendable>(_ reads: [SQL], _ read: @escaping @Sendable ([[any StoredRow]]) throws -> Value)
        async throws -> Value

    /// Returns once memory holds every change committed before the call (by this store or any other
    /// sharing the database); throws `unavailable` when storage cannot say within the storage timeout.
    func catchUp() async throws

    /// How long the oldest unanswered transaction has waited, if any is waiting.
    var oldestWait: Duration? { get }

    /// How long a transaction may take before it fails closed.
    var timeout: Duration { get }

    /// What is wrong with storage that the engine sees without asking the database (a deleted file).
    var knownProblem: String? { get }

    /// Statements after which the ids the database picks for `tables` follow those written explicitly.
    func continuingIDs(of tables: [String]) -> [SQL]

    /// Gives the space of deleted rows back to the file system, a little at a time, where the
    /// database does not do it by itself.
    func reclaimSpace() async throws

    /// Returns once what was committed is in the database file itself, where the engine keeps a
    /// log that a later write would otherwise have to copy first (SQLite's, at 1,000 pages): a long
    /// run of writes, such as pruning, keeps the log short between its steps. At once elsewhere.
    func settle() async

    /// Closes the engine's connections, if it keeps any open.
    func shutDown()
}

extension StoreEngine {
    /// Brings `memory` up to the store's latest change version: nothing when it is there already,
    /// otherwise the changes since (or everything, when the list of forgotten canaries it would need
    /// was pruned), read in one snapshot.
    func catchUpOnce(_ memory: SharedMemory) async throws {
        let latest = try await rows(Records.latestVersion) { row in
            (version: try row.integer("version"), forgottenThrough: try row.integer("forgottenThrough"))
        }
        guard let latest = latest.first else { return }
        let caughtUp = memory.withLock { $0.caughtUp }
        guard latest.version > caughtUp else { return }
        let whole = caughtUp < latest.forgottenThrough
        let changes = try await snapshot(whole ? Records.everything(at: Date()) : Records.changes(since: caughtUp)) {
            rows in try Records.changed(rows, whole: whole)
        }
        memory.withLock { $0.apply(changes) }
    }

    /// Loads everything into `memory`, a page at a time (`PagedLoad`), then catches up with what
    /// other replicas changed meanwhile.
    func load(_ memory: SharedMemory) async throws {
        try await PagedLoad.run(into: memory, from: self)
        try await catchUpOnce(memory)
    }
}
