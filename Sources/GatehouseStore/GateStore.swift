import Foundation
import GRDB
import GatehouseCore
import Logging
import Synchronization

/// The durable home of every canary's gates, freezes and audit trail.
///
/// Checks are answered from a copy in memory, on every engine: a check that changes nothing is
/// answered without a write (on PostgreSQL, after the one round trip that makes the copy current;
/// see `StoreEngine.catchUp`); one that changes something (binding, a used step, an expiry, the first
/// verdict of a rollout) decides again inside one write transaction, from the rows as stored, and
/// the copy takes the change when that transaction commits.
public final class GateStore: Sendable {
    let engine: any StoreEngine
    /// The copy in memory.
    let memory: SharedMemory
    let health: StorageHealth
    /// How many canaries may be remembered; a new one beyond that is refused.
    let maximumCanaries: Int
    /// The readiness probe in flight, if any: `/readyz` never starts a second one.
    let probes = Mutex<Task<Bool, Never>?>(nil)
    let logger: Logger
    /// Which messages facts produce; nil sends none.
    let notifications: (any NotificationPolicy)?
    /// The guardrails policy in force (re-read by the caller when its file changes).
    let policy: @Sendable () -> Policy

    /// Migrates the SQLite database and loads its state into memory.
    ///
    /// A write that has not committed within `storageTimeout` fails with `unavailable` and is
    /// abandoned (see `GroupCommit`).
    public convenience init(
        writer: any DatabaseWriter, storageTimeout: TimeInterval = 5, maximumCanaries: Int = 50_000,
        logger: Logger = Logger(label: "gatehouse.store"), notifications: (any NotificationPolicy)? = nil,
        policy: @escaping @Sendable () -> Policy = { .none }
    ) throws {
        try Schema.migrator.migrate(writer)
        let memory = SharedMemory()
        let health = StorageHealth(logger: logger)
        let path = writer.path
        let file = DatabaseFile(path: path)
        let writes = GroupCommit(
            writer: writer, timeout: .milliseconds(Int64(storageTimeout * 1000)), file: file,
            probe: path.isEmpty || path == ":memory:" ? nil : WriteProbe(path: path + "-probe"), health: health,
            checkpointer: writer is DatabasePool ? Checkpointer(path: path) : nil,
            applyCommitted: { changes in
                memory.withLock { memory in
                    for apply in changes { apply(&memory) }
                }
            })
        // In one read transaction: nothing else writes the file meanwhile anyway.
        try writer.read { db in
            try PagedLoad.run(into: memory) { reads in try reads.map { try db.rows($0) } }
        }
        self.init(
            engine: SQLiteEngine(writer: writer, writes: writes, file: file, health: health), memory: memory,
            health: health, maximumCanaries: maximumCanaries, logger: logger, notifications: notifications,
            policy: policy)
    }

    init(
        engine: any StoreEngine, memory: SharedMemory, health: StorageHealth, maximumCanaries: Int, logger: Logger,
        notifications: (any NotificationPolicy)?, policy: @escaping @Sendable () -> Policy
    ) {
        self.policy = policy
        self.engine = engine
        self.memory = memory
        self.health = health
        self.maximumCanaries = maximumCanaries
        self.logger = logger
        self.notifications = notifications
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
        // Readers serve only audit pages, freeze history and loading; checks are answered from memory.
        configuration.maximumReaderCount = 2
        let synchronous = synchronousFull ? "FULL" : "NORMAL"
        configuration.prepareDatabase { db in
            // Takes effect only in a file with no tables yet: one Gatehouse creates gives the space
            // of pruned audit entries back (`reclaimSpace`).
            if !db.configuration.readonly {
                try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
                // Checkpoints are made off the writer (`Checkpointer`). Under writes that never pause
                // none of them can finish, and the log would grow without end: at 1,000 pages the
                // writer finishes one itself (little is left to copy by then), and the log starts over.
                // At 10,000, pruning 10 M entries went faster but a write behind that checkpoint
                // waited 94 ms (p99; 24 ms at 1,000).
                try db.execute(sql: "PRAGMA wal_autocheckpoint = 1000")
                try db.execute(sql: "PRAGMA journal_size_limit = 67108864")
            }
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
            // Readers keep 512 KiB of pages rather than 2 MiB: they serve audit pages and freeze
            // history (indexed, a page at a time) and the load at start-up, which reads the canaries
            // and gates in key order (v12) and was no slower for it (100,000 canaries: ready 1.92 s).
            if db.configuration.readonly { try db.execute(sql: "PRAGMA cache_size = -512") }
        }
        return try DatabasePool(path: path, configuration: configuration)
    }

    // MARK: Internals

    func requireHealthy() throws {
        if let problem = health.currentProblem {
            throw StoreError.unavailable(problem)
        }
    }

    /// Runs one transaction (see `StoreEngine.transaction`); once it commits, each audit entry it
    /// appended is logged at info, so that every change of state is in the log once.
    func transaction<Value: Sendable>(
        locks: [String] = [], reads: [SQL] = [],
        _ decide: @escaping @Sendable ([[any StoredRow]]) throws -> Plan<Value>
    ) async throws -> Value {
        let (value, entries) = try await engine.transaction(locks: locks, reads: reads) { rows in
            let plan = try decide(rows)
            return Plan(
                value: (plan.value, plan.writes.compactMap(\.auditEntry)), writes: plan.writes, remember: plan.remember)
        }
        for entry in entries { logger.info("\(entry.sentence)", metadata: entry.logMetadata) }
        return value
    }

    /// Runs statements in one transaction.
    func run(_ writes: [SQL]) async throws {
        try await transaction { _ in Plan(value: (), writes: writes) }
    }

    /// The rows of a query, failing closed like every other storage access.
    func rows<Value: Sendable>(_ sql: SQL, _ read: @escaping @Sendable (any StoredRow) throws -> Value)
        async throws -> [Value]
    {
        try await engine.rows(sql, read)
    }

    /// Changes one canary in one transaction. `decide` sees the canary as stored (with what memory
    /// observed since laid over it), the freezes in force, the policy and the other canaries `peers`
    /// names, and says what to answer and what, if anything, to save. `token`, when given, is used in
    /// the same transaction: the change fails (`gone`) if it was used already. A new canary beyond
    /// `maximumCanaries` is refused. Changes that may take a rollout slot wait for each other.
    func changing<Value: Sendable>(
        _ id: CanaryID, at now: Date, token: SingleUse? = nil, peers: PeerNeeds = PeerNeeds(),
        _ decide: @escaping @Sendable (_ stored: Canary, _ surroundings: Surroundings) throws -> CanaryUpdate<Value>
    ) async throws -> Value {
        let reads =
            Records.loading(id, at: now) + Records.peerReads(peers) + (token.map { Records.use($0, at: now) } ?? [])
        let locks = [id.description] + (peers.rollouts ? [Records.rolloutSlotsLock] : [])
        let policy = self.policy()
        return try await transaction(locks: locks, reads: reads) { rows in
            if token != nil, rows.last?.isEmpty != false {
                throw StoreError.gone("this link was already used; nothing was done")
            }
            let loaded = try Records.loaded(rows)
            let surroundings = Surroundings(
                freezes: loaded.freezes, policy: policy, peers: try Records.peers(peers, in: rows))
            let (inMemory, onlyAsked) = self.memory.withLock { ($0.canary(id), $0.untouched.count) }
            let canary = self.overlaid(loaded.canary, inMemory: inMemory) ?? Canary(id: id)
            let update = try decide(canary, surroundings)
            // A new canary that only asks counts against the cap; one acted on, or that sent an event, never does.
            if loaded.canary == nil, inMemory == nil, update.saved?.isUntouched ?? true,
                onlyAsked >= self.maximumCanaries
            {
                throw self.fullError(id, onlyAsked: onlyAsked)
            }
            guard let saved = update.saved else { return Plan(value: update.value) }
            let writes =
                try self.writes(saving: saved, change: update.change, stored: canary, phase: update.phase, at: now)
                + update.notables.flatMap { self.enqueueing($0) }
            return Plan(value: update.value, writes: writes, remember: { $0.replace(saved, version: $1) })
        }
    }

    /// The canary as stored, with what memory observed since (not yet saved) laid over it.
    func overlaid(_ stored: Canary?, inMemory: Canary?) -> Canary? {
        guard var stored else { return nil }
        if let inMemory { stored.adoptObservations(from: inMemory) }
        return stored
    }

    /// The refusal of a new canary that only asks, when `onlyAsked` canaries that only asked are remembered.
    func fullError(_ id: CanaryID, onlyAsked: Int) -> StoreError {
        .full(
            "Gatehouse already remembers \(onlyAsked) canaries that only asked (--max-canaries \(maximumCanaries)), so it does not take on \(id) until one is forgotten (--forget-canaries-after) or a gate of it is opened; canaries acted on, or that passed a gate or sent an event, are not counted, and with a Flagger secret (GATEHOUSE_FLAGGER_TOKEN) only Flagger can ask"
        )
    }

    /// The statements that write a canary's row, the gates that differ from `stored`, the change's
    /// audit entries and the notifications they call for.
    func writes(saving canary: Canary, change: CanaryChange, stored: Canary, phase: CanaryPhase?, at now: Date) throws
        -> [SQL]
    {
        var writes = [Records.save(canary)]
        // Every kind: a gate closed back to how it was never touched leaves the set, and its row goes.
        for kind in GateKind.allCases where stored.gate(kind) != canary.gate(kind) {
            writes.append(Records.save(canary.gate(kind), of: canary.id))
        }
        for (gate, fact) in change.facts {
            writes.append(
                Records.audit(at: now, of: canary.id, gate: gate, fact: fact, phase: phase ?? canary.lastPhase))
            if let gate {
                for notable in Notable.from([fact], gate: gate, canary: canary, at: now) {
                    writes += enqueueing(notable)
                }
            }
        }
        return writes
    }
}

/// What a change to one canary answers and, when it changed something, what it saves.
struct CanaryUpdate<Value: Sendable>: Sendable {
    var value: Value
    /// The canary to save; nil when nothing changed.
    var saved: Canary?
    var change = CanaryChange()
    /// The phase to record in the audit entries (the canary's last one when nil).
    var phase: CanaryPhase?
    /// Notifications beyond those the change's facts call for.
    var notables: [Notable] = []
}

extension GateStore {
    /// A store on PostgreSQL, shared by every replica pointed at it: migrates the schema (one
    /// replica at a time) and fails, within 30 seconds, when the database cannot be reached.
    public static func postgres(
        _ location: PostgresLocation, storageTimeout: TimeInterval = 5, maximumCanaries: Int = 50_000,
        logger: Logger = Logger(label: "gatehouse.store"), notifications: (any NotificationPolicy)? = nil,
        policy: @escaping @Sendable () -> Policy = { .none }
    ) async throws -> GateStore {
        let health = StorageHealth(logger: logger)
        let memory = SharedMemory()
        let engine = PostgresEngine(
            configuration: try location.configuration, timeout: .milliseconds(Int64(storageTimeout * 1000)),
            health: health, logger: logger, memory: memory)
        let setUp = Task { () -> Result<[String], any Error> in
            do {
                let applied = try await PostgresSchema.migrate(engine.client, logger: logger)
                try await engine.load(memory)
                return .success(applied)
            } catch {
                return .failure(error)
            }
        }
        switch await Bounded.value(of: setUp, within: .seconds(30)) {
        case .success(let applied):
            for name in applied { logger.notice("migrated the PostgreSQL schema", metadata: ["migration": "\(name)"]) }
        case .failure(let error):
            engine.shutDown()
            throw DatabaseSetupError("cannot prepare the database at \(location): \(String(reflecting: error))")
        case nil:
            engine.shutDown()
            throw DatabaseSetupError("the database at \(location) did not answer within 30 seconds")
        }
        engine.follow()
        return GateStore(
            engine: engine, memory: memory, health: health, maximumCanaries: maximumCanaries, logger: logger,
            notifications: notifications, policy: policy)
    }

    /// Closes the store's connections (PostgreSQL's; a SQLite store closes with its last reference).
    public func shutDown() {
        engine.shutDown()
    }
}
