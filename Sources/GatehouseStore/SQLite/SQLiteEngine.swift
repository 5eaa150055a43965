import Foundation
import GRDB
import GatehouseCore

/// SQLite through GRDB: one writer, whose changes are committed in groups (`GroupCommit`) and
/// applied to memory in commit order before their callers are answered. The file is this process's
/// alone, so memory never has anything to catch up with.
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
            var version: Int64 = 0
            func stamped(_ statement: SQL) throws -> SQL {
                guard statement.isVersioned else { return statement }
                if version == 0 { version = try db.rows(Records.nextVersion).first?.integer("version") ?? 0 }
                return statement.stamped(version)
            }
            let rows = try reads.map { try db.rows(try stamped($0)) as [any StoredRow] }
            let plan = try decide(rows)
            for statement in plan.writes { try db.run(try stamped(statement)) }
            let committed = version
            return (plan.value, { memory in memory.commit(committed, remember: plan.remember) })
        }
    }

    func rows<Value: Sendable>(_ sql: SQL, _ read: @escaping @Sendable (any StoredRow) throws -> Value)
        async throws -> [Value]
    {
        try await snapshot([sql]) { rows in try rows[0].map(read) }
    }

    func snapshot<Value: Sendable>(_ reads: [SQL], _ read: @escaping @Sendable ([[any StoredRow]]) throws -> Value)
        async throws -> Value
    {
        do {
            return try await writer.read { db in try read(try reads.map { try db.rows($0) }) }
        } catch {
            health.markUnavailable(error)
            throw StoreError.unavailable("storage cannot answer right now")
        }
    }

    /// Nothing to do: every change is this process's, in memory once committed.
    func catchUp() async throws {}

    /// Frees pages of deleted rows from the end of the file, 64 pages (256 KiB) per write so
    /// that changes go between them, when the file was made with `auto_vacuum = INCREMENTAL` (every
    /// file Gatehouse creates; an older one reuses its free pages, so it stops growing but does not shrink).
    func reclaimSpace() async throws {
        while true {
            let freed = try await writes.write { db -> (Bool, @Sendable (inout Memory) -> Void) in
                guard try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") == 2,
                    try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0 > 0
                else { return (false, { _ in }) }
                try db.execute(sql: "PRAGMA incremental_vacuum(64)")
                return (true, { _ in })
            }
            guard freed else { return }
            await Task.yield()
        }
    }

    func settle() async {
        await writes.checkpointed()
    }

    /// Nothing to do: the database closes with its last reference.
    func shutDown() {}

    var oldestWait: Duration? { writes.oldestWait }
    var timeout: Duration { writes.timeout }
    var knownProblem: String? { file?.problem }
}
