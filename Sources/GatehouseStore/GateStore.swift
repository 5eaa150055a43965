import Foundation
import GRDB
import GatehouseCore
import Logging
import Synchronization

/// The durable home of every canary's gates, freezes and audit trail.
///
/// Checks are answered from an in-memory copy kept in step with SQLite by write-through: a check
/// that changes nothing is answered without touching the disk; one that changes something (binding,
/// a used step, an expiry, the first verdict of a rollout) decides again inside one write
/// transaction and updates the copy when that transaction commits.
public final class GateStore: Sendable {
    let writer: any DatabaseWriter
    let memory: SharedMemory
    let health: StorageHealth
    let writes: GroupCommit
    /// How many canaries may be remembered; a new one beyond that is refused.
    let maximumCanaries: Int
    /// The file opened, checked by every probe.
    let file: DatabaseFile?
    /// The readiness probe in flight, if any: `/readyz` never starts a second one.
    let probes = Mutex<Task<Bool, Never>?>(nil)
    let logger: Logger
    /// Which messages facts produce; nil sends none.
    let notifications: (any NotificationPolicy)?

    /// Migrates the database and loads its state into memory.
    ///
    /// A write that has not committed within `storageTimeout` fails with `unavailable` and is
    /// abandoned (see `GroupCommit`).
    public init(
        writer: any DatabaseWriter, storageTimeout: TimeInterval = 5, maximumCanaries: Int = 50_000,
        logger: Logger = Logger(label: "gatehouse.store"), notifications: (any NotificationPolicy)? = nil
    ) throws {
        self.maximumCanaries = maximumCanaries
        try Schema.migrator.migrate(writer)
        self.writer = writer
        self.logger = logger
        self.notifications = notifications
        let memory = SharedMemory(try writer.read(Memory.load))
        let health = StorageHealth(logger: logger)
        self.memory = memory
        self.health = health
        let path = writer.path
        let file = DatabaseFile(path: path)
        self.file = file
        self.writes = GroupCommit(
            writer: writer, timeout: .milliseconds(Int64(storageTimeout * 1000)), file: file,
            probe: path.isEmpty || path == ":memory:" ? nil : WriteProbe(path: path + "-probe"), health: health,
            applyCommitted: { changes in
                memory.withLock { memory in
                    for apply in changes { apply(&memory) }
                }
            })
    }

    /// Opens (creating if needed) the SQLite file at `path` in WAL mode.
    ///
    /// Commits use `synchronous = NORMAL`: an acknowledged change is in the WAL before the answer is
    /// sent, so it survives the process being killed; `full` also survives power loss.
    public static func openDatabase(atPath path: String, busyTimeout: TimeInterval, synchronousFull: Bool = false)
        throws
        -> DatabasePool
    {
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.journalMode = .wal
        // Readers serve only audit pages and freeze history; checks are answered from memory.
        configuration.maximumReaderCount = 2
        let synchronous = synchronousFull ? "FULL" : "NORMAL"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
        }
        return try DatabasePool(path: path, configuration: configuration)
    }

    // MARK: Internals

    func requireHealthy() throws {
        if let problem = health.currentProblem {
            throw StoreError.unavailable(problem)
        }
    }

    /// Runs `body` in a write transaction (see `GroupCommit`); what it returns to apply to memory
    /// runs after the commit, in order, so memory never shows what the database does not hold.
    func write<T: Sendable>(
        _ body: @escaping @Sendable (Database) throws -> (T, @Sendable (inout Memory) -> Void)
    ) async throws -> T {
        try await writes.write(body)
    }

    /// A write transaction whose result needs nothing applied to memory.
    func withWrite<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await write { db in (try body(db), { _ in }) }
    }

    /// A read, failing closed like every other storage access.
    func readRows<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await read(body)
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await writer.read(body)
        } catch {
            health.markUnavailable(error)
            throw StoreError.unavailable("storage cannot answer right now")
        }
    }

    /// The canary as stored, with what memory observed since (not yet saved) laid over it; a new
    /// canary beyond `maximumCanaries` is refused.
    func load(_ id: CanaryID, in db: Database) throws -> Canary {
        if let canary = try stored(id, in: db) { return canary }
        let hasRoom = memory.withLock { $0.canaries[id] != nil || $0.canaries.count < maximumCanaries }
        guard hasRoom else { throw fullError(id) }
        return Canary(id: id)
    }

    /// The canary as stored, if it is, with what memory observed since laid over it.
    func stored(_ id: CanaryID, in db: Database) throws -> Canary? {
        guard var canary = try db.storedCanary(id) else { return nil }
        if let inMemory = memory.withLock({ $0.canaries[id] }) { canary.adoptObservations(from: inMemory) }
        return canary
    }

    func fullError(_ id: CanaryID) -> StoreError {
        .full(
            "Gatehouse already remembers \(maximumCanaries) canaries (--max-canaries), so it does not take on \(id); canaries nobody acted on are forgotten after --forget-canaries-after"
        )
    }

    /// Writes a canary's row, the gates that differ from `stored` (as `load` returned it in this
    /// transaction), the change's audit entries and the notifications they call for.
    func save(
        _ canary: Canary, _ change: CanaryChange, stored: Canary, phase: CanaryPhase?, in db: Database, at now: Date
    ) throws {
        try db.run(Records.save(canary))
        for (kind, gate) in canary.gates where stored.gate(kind) != gate {
            try db.run(Records.save(gate, of: canary.id))
        }
        for (gate, fact) in change.facts {
            try audit(
                fact, namespace: canary.id.namespace, name: canary.id.name, gate: gate,
                phase: phase ?? canary.lastPhase, in: db, at: now)
            if let gate {
                for notable in Notable.from([fact], gate: gate, canary: canary, at: now) {
                    try enqueue(notable, in: db)
                }
            }
        }
    }

    func audit(
        _ fact: GateFact, namespace: String?, name: String?, gate: GateKind?, phase: CanaryPhase?, in db: Database,
        at now: Date
    ) throws {
        try db.run(Records.audit(at: now, namespace: namespace, name: name, gate: gate, fact: fact, phase: phase))
    }
}
