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
    private let writer: any DatabaseWriter
    private let memory: Mutex<Memory>
    private let storageProblem = Mutex<String?>(nil)
    private let queue = Mutex(WriteQueue())
    private let logger: Logger
    /// Which messages facts produce; nil sends none.
    let notifications: (any NotificationPolicy)?

    /// Migrates the database and loads its state into memory.
    public init(
        writer: any DatabaseWriter, logger: Logger = Logger(label: "gatehouse.store"),
        notifications: (any NotificationPolicy)? = nil
    ) throws {
        try Schema.migrator.migrate(writer)
        self.writer = writer
        self.logger = logger
        self.notifications = notifications
        self.memory = Mutex(try writer.read(Memory.load))
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

    // MARK: Checks and Flagger reports

    /// Decides one check; writes only when the decision changes the gate.
    public func check(_ check: Check, at now: Date = Date()) async throws -> Decision {
        if let decision = try checkInMemory(check, at: now) { return decision }
        let namespace = check.canary.namespace
        return try await write { db in
            let stored = try GateRecord.fetch(check.gate, of: check.canary, in: db)
            let freeze = self.memory.withLock { Freeze.applying(to: namespace, among: $0.freezes.values, at: now) }
            let decision = Decision(for: check, gate: stored, freeze: freeze, at: now)
            guard decision.changes(stored) else { return (decision, { _ in }) }
            try self.save(decision.gate, facts: decision.facts, of: check.canary, phase: check.phase, in: db, at: now)
            return (
                decision,
                { $0.canaries[check.canary, default: Canary(id: check.canary)].gates[check.gate] = decision.gate }
            )
        }
    }

    /// Decides one check from memory alone, without waiting: the decision when it changes nothing
    /// (the common case: Flagger asking again), nil when it must be decided again and written by
    /// `check`. Throws `unavailable` while storage cannot answer, as `check` does.
    public func checkInMemory(_ check: Check, at now: Date = Date()) throws -> Decision? {
        try requireHealthy()
        // The lock is held only to read the gate and the freeze (and, a few times a minute, to note
        // what the check tells of the canary): every event loop takes it for every check.
        let (gate, freeze) = memory.withLock { memory in
            var canary = memory.canaries[check.canary] ?? Canary(id: check.canary)
            if canary.wouldObserve(phase: check.phase, checksum: check.checksum, at: now) {
                canary.observe(phase: check.phase, checksum: check.checksum, at: now)
                memory.canaries[check.canary] = canary
                memory.unsaved.insert(check.canary)
            }
            return (
                canary.gate(check.gate),
                Freeze.applying(to: check.canary.namespace, among: memory.freezes.values, at: now)
            )
        }
        let decision = Decision(for: check, gate: gate, freeze: freeze, at: now)
        return decision.changes(gate) ? nil : decision
    }

    /// Records a Flagger `event` or `post-rollout` report; a Succeeded or Failed phase ends the rollout.
    public func report(_ payload: FlaggerPayload, of id: CanaryID, as action: AuditAction, at now: Date = Date())
        async throws
    {
        let message =
            action == .event ? payload.eventMessage : "post-rollout: \(payload.phase?.rawValue ?? "unknown phase")"
        let endsRollout = payload.phase?.endsRollout ?? false
        let isRepeat = memory.withLock { memory -> Bool in
            guard action == .event, !endsRollout, var canary = memory.canaries[id], canary.lastMessage == message,
                canary.lastPhase == payload.phase, canary.lastChecksum == payload.checksum
            else { return false }
            canary.observe(phase: payload.phase, checksum: payload.checksum, at: now)
            memory.canaries[id] = canary
            memory.unsaved.insert(id)
            return true
        }
        if isRepeat { return }

        try await write { db in
            var canary = self.memory.withLock { $0.canaries[id] } ?? Canary(id: id)
            canary.observe(phase: payload.phase, checksum: payload.checksum, at: now)
            if action == .event {
                canary.lastMessage = message
                canary.lastEventType = payload.eventType
            }
            try CanaryRecord.persist(canary, in: db)
            try self.audit(
                GateFact(action: action, actor: Gate.flaggerActor, reason: message, checksum: payload.checksum),
                of: id, gate: nil, phase: payload.phase, in: db, at: now)
            if let phase = payload.phase, endsRollout {
                for kind in GateKind.allCases {
                    var gate = try GateRecord.fetch(kind, of: id, in: db)
                    let before = gate
                    let facts = gate.endRollout(phase: phase, checksum: payload.checksum, at: now)
                    guard gate != before else { continue }
                    try GateRecord.persist(gate, of: id, in: db)
                    try self.audit(facts, of: id, gate: kind, phase: phase, in: db, at: now)
                    canary.gates[kind] = gate
                }
            }
            if let phase = payload.phase, endsRollout {
                try self.enqueue(
                    Notable(
                        kind: phase == .succeeded ? .succeeded : .failed, canary: canary, gate: nil,
                        fact: GateFact(
                            action: action, actor: Gate.flaggerActor, reason: message, checksum: payload.checksum),
                        freeze: nil, at: now),
                    in: db)
            }
            let reported = canary
            return ((), { $0.canaries[id] = reported })
        }
    }

    // MARK: Operator changes

    /// Opens a gate on the terms asked.
    public func open(_ kind: GateKind, of id: CanaryID, _ request: OpenRequest, actor: String, at now: Date = Date())
        async throws -> Canary
    {
        try await change(kind, of: id, at: now) { gate, _ in gate.open(request, actor: actor, at: now) }
    }

    /// Closes a gate; closing a closed gate changes nothing.
    public func close(_ kind: GateKind, of id: CanaryID, reason: String?, actor: String, at now: Date = Date())
        async throws -> Canary
    {
        try await change(kind, of: id, at: now) { gate, _ in gate.close(actor: actor, reason: reason, at: now) }
    }

    /// Asks Flagger to roll back the canary's current rollout: opens the rollback gate until `expiresAt`,
    /// refusing when the canary is not known to be in a rollout unless `force` is set.
    public func requestRollback(
        of id: CanaryID, reason: String?, expiresAt: Date, force: Bool, actor: String, boundChecksum: String? = nil,
        at now: Date = Date()
    ) async throws -> Canary {
        try await change(.rollback, of: id, at: now) { gate, canary in
            guard force || canary.isRollingOut else {
                let phase = canary.lastPhase.map { "its last phase is \($0)" } ?? "Flagger has not reported on it"
                throw StoreError.conflict(
                    "\(id) is not known to be in a rollout (\(phase)); a rollback request could fire on a later release, so add force to request it anyway"
                )
            }
            return gate.open(
                OpenRequest(reason: reason, expiresAt: expiresAt, boundChecksum: boundChecksum), actor: actor, at: now)
        }
    }

    private func change(
        _ kind: GateKind, of id: CanaryID, at now: Date,
        _ body: @escaping @Sendable (inout Gate, Canary) throws -> [GateFact]
    ) async throws -> Canary {
        try await write { db in
            var canary = self.memory.withLock { $0.canaries[id] } ?? Canary(id: id)
            var gate = try GateRecord.fetch(kind, of: id, in: db)
            let facts = try body(&gate, canary)
            if !facts.isEmpty {
                try self.save(gate, facts: facts, of: id, phase: nil, in: db, at: now)
            }
            canary.gates[kind] = gate
            let changed = gate
            return (canary, { $0.canaries[id, default: Canary(id: id)].gates[kind] = changed })
        }
    }

    // MARK: Freezes

    /// Sets a freeze on one namespace, or on every namespace when `namespace` is nil.
    public func freeze(namespace: String?, reason: String, endsAt: Date?, actor: String, at now: Date = Date())
        async throws -> Freeze
    {
        try await write { db in
            var record = FreezeRecord(
                id: nil, namespace: namespace, reason: reason, actor: actor, createdAt: now, endsAt: endsAt)
            try record.insert(db)
            let freeze = record.freeze
            let fact = GateFact(action: .freezeSet, actor: actor, reason: freeze.refusal)
            try self.audit(fact, namespace: namespace, name: nil, gate: nil, phase: nil, in: db, at: now)
            try self.enqueue(
                Notable(kind: .freezeSet, canary: nil, gate: nil, fact: fact, freeze: freeze, at: now), in: db)
            return (freeze, { $0.freezes[freeze.id] = freeze })
        }
    }

    /// Lifts a freeze before its end.
    public func unfreeze(id: Int64, actor: String, at now: Date = Date()) async throws -> Freeze {
        try await write { db in
            guard var record = try FreezeRecord.fetchOne(db, key: id) else {
                throw StoreError.notFound("there is no freeze \(id)")
            }
            guard record.freeze.isActive(at: now) else {
                throw StoreError.conflict("freeze \(id) has already ended")
            }
            record.liftedAt = now
            record.liftedBy = actor
            try record.update(db)
            let freeze = record.freeze
            let fact = GateFact(action: .freezeLifted, actor: actor, reason: "lifted freeze \(id): \(freeze.reason)")
            try self.audit(fact, namespace: freeze.namespace, name: nil, gate: nil, phase: nil, in: db, at: now)
            try self.enqueue(
                Notable(kind: .freezeLifted, canary: nil, gate: nil, fact: fact, freeze: freeze, at: now), in: db)
            return (freeze, { $0.freezes[id] = nil })
        }
    }

    /// One freeze, in force or not, if it exists.
    public func freeze(id: Int64) async throws -> Freeze? {
        try await read { db in try FreezeRecord.fetchOne(db, key: id)?.freeze }
    }

    /// The freezes in force, or every freeze ever set when `includingEnded` is true, newest first.
    public func freezes(includingEnded: Bool = false, at now: Date = Date()) async throws -> [Freeze] {
        if includingEnded {
            return try await read { db in
                try FreezeRecord.order(Column("id").desc).fetchAll(db).map(\.freeze)
            }
        }
        return memory.withLock { $0.freezes.values.filter { $0.isActive(at: now) } }.sorted { $0.id > $1.id }
    }

    // MARK: Reads

    /// Every canary Gatehouse knows, by namespace and name.
    public func canaries() -> [Canary] {
        memory.withLock { Array($0.canaries.values) }.sorted { $0.id < $1.id }
    }

    /// One canary, if Gatehouse knows it.
    public func canary(_ id: CanaryID) -> Canary? {
        memory.withLock { $0.canaries[id] }
    }

    /// Audit entries, newest first: of one canary, of one namespace, or of everything; `before` pages back by id.
    public func events(of canary: CanaryID? = nil, namespace: String? = nil, limit: Int, before: Int64? = nil)
        async throws -> [AuditEntry]
    {
        try await read { db in
            var request = AuditRecord.all()
            if let canary {
                request = request.filter(Column("namespace") == canary.namespace && Column("name") == canary.name)
            } else if let namespace {
                request = request.filter(Column("namespace") == namespace)
            }
            if let before { request = request.filter(Column("id") < before) }
            return try request.order(Column("id").desc).limit(limit).fetchAll(db).map(\.entry)
        }
    }

    // MARK: Upkeep

    /// Whether storage answered the last time it was asked; checks fail closed while it does not.
    public var isHealthy: Bool { storageProblem.withLock { $0 == nil } }

    /// Asks storage to take and commit a write transaction; the result decides `isHealthy`.
    @discardableResult
    public func probe(at now: Date = Date()) async -> Bool {
        do {
            try await writer.write { db in
                try db.execute(
                    sql: "INSERT OR REPLACE INTO heartbeat (id, at) VALUES (1, ?)", arguments: [now.storedText])
            }
            let recovered = storageProblem.withLock { problem -> Bool in
                defer { problem = nil }
                return problem != nil
            }
            if recovered { logger.notice("storage answers again; checks resume") }
            return true
        } catch {
            markUnavailable(error)
            return false
        }
    }

    /// Closes every open gate whose expiry has passed, recording each in the audit trail.
    @discardableResult
    public func expireDueGates(at now: Date = Date()) async throws -> Int {
        let due = memory.withLock { memory in
            memory.canaries.values.flatMap { canary in
                canary.gates.values.filter { $0.isExpired(at: now) }.map { (canary.id, $0.kind) }
            }
        }
        for (id, kind) in due {
            _ = try await change(kind, of: id, at: now) { gate, _ in gate.expireIfDue(at: now) }
        }
        return due.count
    }

    /// Writes what checks observed (last seen, phase, checksum) that only memory holds so far.
    public func saveObservations() async throws {
        let now = Date()
        let hasUnsaved = memory.withLock { memory in
            memory.freezes = memory.freezes.filter { $0.value.isActive(at: now) }
            return !memory.unsaved.isEmpty
        }
        guard hasUnsaved else { return }
        try await write { db in
            let canaries = self.memory.withLock { memory in
                defer { memory.unsaved.removeAll() }
                return memory.unsaved.compactMap { memory.canaries[$0] }
            }
            for canary in canaries { try CanaryRecord.persist(canary, in: db) }
            return ((), { _ in })
        }
    }

    /// Deletes audit entries older than `cutoff`; returns how many.
    @discardableResult
    public func pruneAudit(olderThan cutoff: Date) async throws -> Int {
        try await write { db in
            let count = try AuditRecord.filter(Column("at") < cutoff.storedText).deleteAll(db)
            return (count, { _ in })
        }
    }

    // MARK: Internals

    private func requireHealthy() throws {
        if let problem = storageProblem.withLock({ $0 }) {
            throw StoreError.unavailable(problem)
        }
    }

    private func markUnavailable(_ error: any Error) {
        let message = "storage cannot answer: \(error)"
        let isNew = storageProblem.withLock { problem -> Bool in
            defer { problem = message }
            return problem == nil
        }
        if isNew {
            logger.error("storage cannot answer; checks fail closed until it does", metadata: ["error": "\(error)"])
        }
    }

    /// Runs `body` in a write transaction and returns once that transaction has committed.
    ///
    /// Writes that arrive while a transaction is running are committed together in the next one
    /// (group commit), each inside its own savepoint so that one refused change (a conflict, say)
    /// leaves the others intact. What a body returns to apply to memory runs after the commit, in
    /// order, on the writer's queue, so memory never shows what the database does not hold.
    private func write<T: Sendable>(
        _ body: @escaping @Sendable (Database) throws -> (T, @Sendable (inout Memory) -> Void)
    ) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let pending = PendingWrite(
                perform: { db in
                    let (value, apply) = try body(db)
                    return (apply, { continuation.resume(returning: value) })
                },
                fail: { continuation.resume(throwing: $0) })
            let startsFlush = queue.withLock { queue -> Bool in
                queue.pending.append(pending)
                defer { queue.isFlushing = true }
                return !queue.isFlushing
            }
            if startsFlush {
                writer.asyncWriteWithoutTransaction { db in self.flush(db) }
            }
        }
    }

    /// Commits every pending write, batch after batch, until none is left.
    private func flush(_ db: Database) {
        while true {
            let batch = queue.withLock { queue -> [PendingWrite] in
                defer { queue.pending.removeAll(keepingCapacity: true) }
                if queue.pending.isEmpty { queue.isFlushing = false }
                return queue.pending
            }
            if batch.isEmpty { return }
            var committed: [(apply: @Sendable (inout Memory) -> Void, succeed: @Sendable () -> Void)] = []
            var refused: [(PendingWrite, any Error)] = []
            do {
                try db.inTransaction(.immediate) {
                    for pending in batch {
                        do {
                            try db.inSavepoint {
                                committed.append(try pending.perform(db))
                                return .commit
                            }
                        } catch let error as StoreError {
                            refused.append((pending, error))
                        }
                    }
                    return .commit
                }
            } catch {
                markUnavailable(error)
                for pending in batch { pending.fail(StoreError.unavailable("storage cannot answer right now")) }
                continue
            }
            memory.withLock { memory in
                for change in committed { change.apply(&memory) }
            }
            for change in committed { change.succeed() }
            for (pending, error) in refused { pending.fail(error) }
        }
    }
    /// A write transaction whose result needs nothing applied to memory.
    func withWrite<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await write { db in (try body(db), { _ in }) }
    }

    /// A read, failing closed like every other storage access.
    func readRows<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await read(body)
    }

    private func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await writer.read(body)
        } catch {
            markUnavailable(error)
            throw StoreError.unavailable("storage cannot answer right now")
        }
    }

    private func save(
        _ gate: Gate, facts: [GateFact], of id: CanaryID, phase: CanaryPhase?, in db: Database, at now: Date
    ) throws {
        var canary = memory.withLock { $0.canaries[id] } ?? Canary(id: id)
        try CanaryRecord.persist(canary, in: db)
        try GateRecord.persist(gate, of: id, in: db)
        try audit(facts, of: id, gate: gate.kind, phase: phase ?? canary.lastPhase, in: db, at: now)
        canary.gates[gate.kind] = gate
        for notable in Notable.from(facts, gate: gate.kind, canary: canary, at: now) {
            try enqueue(notable, in: db)
        }
    }

    private func audit(
        _ facts: [GateFact], of id: CanaryID, gate: GateKind?, phase: CanaryPhase?, in db: Database, at now: Date
    )
        throws
    {
        for fact in facts {
            try audit(fact, namespace: id.namespace, name: id.name, gate: gate, phase: phase, in: db, at: now)
        }
    }

    private func audit(
        _ fact: GateFact, of id: CanaryID, gate: GateKind?, phase: CanaryPhase?, in db: Database, at now: Date
    )
        throws
    {
        try audit(fact, namespace: id.namespace, name: id.name, gate: gate, phase: phase, in: db, at: now)
    }

    private func audit(
        _ fact: GateFact, namespace: String?, name: String?, gate: GateKind?, phase: CanaryPhase?, in db: Database,
        at now: Date
    ) throws {
        try AuditRecord.append(at: now, namespace: namespace, name: name, gate: gate, fact: fact, phase: phase, in: db)
    }
}

/// A change waiting for the next group commit.
struct PendingWrite: Sendable {
    /// Writes the change; returns what to apply to memory and how to answer, both after the commit.
    let perform: @Sendable (Database) throws -> (@Sendable (inout Memory) -> Void, @Sendable () -> Void)
    /// Answers with an error; nothing of the change was kept.
    let fail: @Sendable (any Error) -> Void
}

/// The writes waiting for a transaction, and whether one is being run.
struct WriteQueue: Sendable {
    var pending: [PendingWrite] = []
    var isFlushing = false
}

/// The in-memory copy of the database that checks are answered from.
struct Memory: Sendable {
    var canaries: [CanaryID: Canary] = [:]
    var freezes: [Int64: Freeze] = [:]
    /// Canaries whose observed fields (last seen, phase, checksum) memory holds but the database not yet.
    var unsaved: Set<CanaryID> = []

    static func load(_ db: Database) throws -> Memory {
        var memory = Memory()
        var gates: [CanaryID: [GateKind: Gate]] = [:]
        for record in try GateRecord.fetchAll(db) {
            let id = try CanaryID(namespace: record.namespace, name: record.name)
            gates[id, default: [:]][record.kind] = record.gate
        }
        for record in try CanaryRecord.fetchAll(db) {
            let canary = try record.canary(gates: [:])
            memory.canaries[canary.id] = try record.canary(gates: gates[canary.id] ?? [:])
        }
        let now = Date()
        for record in try FreezeRecord.filter(Column("liftedAt") == nil).fetchAll(db)
        where record.freeze.isActive(at: now) {
            memory.freezes[record.freeze.id] = record.freeze
        }
        return memory
    }
}
