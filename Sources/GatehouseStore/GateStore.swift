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
    let memory: SharedMemory
    let health: StorageHealth
    private let writes: GroupCommit
    /// How many canaries may be remembered; a new one beyond that is refused.
    let maximumCanaries: Int
    /// The file opened, checked by every probe.
    private let file: DatabaseFile?
    /// The readiness probe in flight, if any: `/readyz` never starts a second one.
    private let probes = Mutex<Task<Bool, Never>?>(nil)
    private let logger: Logger
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

    // MARK: Checks and Flagger reports

    /// Decides one check; writes only when the decision changes the canary's gates or rollout.
    public func check(_ check: Check, at now: Date = Date()) async throws -> Decision {
        if let decision = try checkInMemory(check, at: now) { return decision }
        return try await write { db in
            let canary = try self.load(check.canary, in: db)
            let freeze = self.memory.withLock {
                Freeze.applying(to: check.canary.namespace, among: $0.freezes.values, at: now)
            }
            var outcome = canary.deciding(check, freeze: freeze, at: now)
            guard outcome.canary.differsDurably(from: canary) else { return (outcome.decision, { _ in }) }
            outcome.canary.observe(
                phase: check.phase, checksum: check.checksum, progressCheck: check.gate.isProgressCheck, at: now)
            try self.save(outcome.canary, outcome.change, stored: canary, phase: check.phase, in: db, at: now)
            let saved = outcome.canary
            return (outcome.decision, { $0.replace(saved) })
        }
    }

    /// Decides one check from memory alone, without waiting: the decision when it changes nothing
    /// durable (the common case: Flagger asking again), nil when it must be decided again and
    /// written by `check`. Throws `unavailable` while storage cannot answer, as `check` does.
    public func checkInMemory(_ check: Check, at now: Date = Date()) throws -> Decision? {
        try requireHealthy()
        let isProgressCheck = check.gate.isProgressCheck
        // The lock is held only to read the canary and the freeze (and, a few times a minute, to note
        // what the check tells of the canary): every event loop takes it for every check.
        let known = memory.withLock { memory -> (Canary, Freeze?)? in
            guard memory.canaries[check.canary] != nil || memory.canaries.count < maximumCanaries else { return nil }
            var canary = memory.canaries[check.canary] ?? Canary(id: check.canary)
            if canary.wouldObserve(
                phase: check.phase, checksum: check.checksum, progressCheck: isProgressCheck, at: now)
            {
                canary.observe(phase: check.phase, checksum: check.checksum, progressCheck: isProgressCheck, at: now)
                memory.canaries[check.canary] = canary
                memory.unsaved.insert(check.canary)
            }
            return (canary, Freeze.applying(to: check.canary.namespace, among: memory.freezes.values, at: now))
        }
        guard let (canary, freeze) = known else { throw fullError(check.canary) }
        let outcome = canary.deciding(check, freeze: freeze, at: now)
        return outcome.canary.differsDurably(from: canary) ? nil : outcome.decision
    }

    /// Records a Flagger `event` or `post-rollout` report. Only `post-rollout` and the "Promotion
    /// completed!" and "Canary failed!" events end a rollout; an event's phase never does (it lags).
    public func report(_ payload: FlaggerPayload, of id: CanaryID, as action: AuditAction, at now: Date = Date())
        async throws
    {
        let message =
            action == .event ? payload.eventMessage : "post-rollout: \(payload.phase?.rawValue ?? "unknown phase")"
        let isRepeat = memory.withLock { memory -> Bool in
            guard action == .event, var canary = memory.canaries[id], canary.lastMessage == message,
                canary.lastChecksum == payload.checksum
            else { return false }
            var reported = canary
            guard reported.applyReport(payload, as: action, at: now).isEmpty, !reported.differsDurably(from: canary)
            else { return false }
            canary.observe(phase: canary.reportedPhase(payload, as: action), checksum: payload.checksum, at: now)
            memory.canaries[id] = canary
            memory.unsaved.insert(id)
            return true
        }
        if isRepeat { return }

        try await write { db in
            let stored = try self.load(id, in: db)
            var canary = stored
            let wasEnded = canary.rollout.stage == .ended
            let phase = canary.reportedPhase(payload, as: action)
            var change = CanaryChange()
            change.append(
                [GateFact(action: action, actor: Gate.flaggerActor, reason: message, checksum: payload.checksum)],
                gate: nil)
            let ending = canary.applyReport(payload, as: action, at: now)
            change.facts += ending.facts
            canary.observe(phase: phase, checksum: payload.checksum, at: now)
            if action == .event {
                canary.lastMessage = message
                canary.lastEventType = payload.eventType
            }
            try self.save(canary, change, stored: stored, phase: payload.phase, in: db, at: now)
            if !wasEnded, canary.rollout.stage == .ended, let outcome = Canary.endOutcome(of: payload, as: action) {
                try self.enqueue(
                    Notable(
                        kind: outcome == .succeeded ? .succeeded : .failed, canary: canary, gate: nil,
                        fact: GateFact(
                            action: action, actor: Gate.flaggerActor, reason: message, checksum: payload.checksum),
                        freeze: nil, at: now),
                    in: db)
            }
            let reported = canary
            return ((), { $0.replace(reported) })
        }
    }

    // MARK: Operator changes

    /// Opens a gate on the terms asked.
    /// `token`, when given, is used in the same transaction: the change fails (`gone`) if it was used.
    public func open(
        _ kind: GateKind, of id: CanaryID, _ request: OpenRequest, actor: String, token: SingleUse? = nil,
        at now: Date = Date()
    ) async throws -> Canary {
        try await change(kind, of: id, at: now, token: token) { gate, canary in
            var request = request
            // "The rest of this rollout": bound to the revision in progress, so it cannot outlive it.
            if request.coversRestOfRollout, request.boundChecksum == nil, canary.rollout.isInProgress {
                request.boundChecksum = canary.rollout.currentChecksum
            }
            return gate.open(request, actor: actor, at: now)
        }
    }

    /// Closes a gate; closing a closed gate changes nothing.
    public func close(_ kind: GateKind, of id: CanaryID, reason: String?, actor: String, at now: Date = Date())
        async throws -> Canary
    {
        try await change(kind, of: id, at: now) { gate, _ in gate.close(actor: actor, reason: reason, at: now) }
    }

    /// Asks Flagger to roll back the canary's current rollout: opens the rollback gate until
    /// `expiresAt`, bound to the revision in progress so that it can never fire on another. Refused
    /// (`conflict`) when no rollback check can come in this rollout any more, unless `force` is set.
    /// `revision`, when given (an approval link names one), must be the revision in progress.
    public func requestRollback(
        of id: CanaryID, reason: String?, expiresAt: Date, force: Bool, actor: String, revision: String? = nil,
        token: SingleUse? = nil, at now: Date = Date()
    ) async throws -> Canary {
        try await change(.rollback, of: id, at: now, token: token) { gate, canary in
            if let revision, !revision.isEmpty, canary.rollout.currentChecksum != revision {
                throw StoreError.conflict(
                    "rollout \(revision) of \(id) is no longer in progress, so it cannot be rolled back")
            }
            switch canary.rollbackBinding(force: force) {
            case .failure(let refusal):
                throw StoreError.conflict(refusal.message)
            case .success(let checksum):
                return gate.open(
                    OpenRequest(reason: reason, expiresAt: expiresAt, boundChecksum: checksum), actor: actor, at: now)
            }
        }
    }

    /// Changes one gate of a canary in a write transaction; `body` sees the canary as stored.
    func change(
        _ kind: GateKind, of id: CanaryID, at now: Date, token: SingleUse? = nil,
        _ body: @escaping @Sendable (inout Gate, Canary) throws -> [GateFact]
    ) async throws -> Canary {
        try await write { db in
            if let token, try !token.use(in: db, at: now) {
                throw StoreError.gone("this link was already used; nothing was done")
            }
            let stored = try self.load(id, in: db)
            var canary = stored
            var gate = canary.gate(kind)
            let facts = try body(&gate, canary)
            canary.gates[kind] = gate
            if !facts.isEmpty {
                var change = CanaryChange()
                change.append(facts, gate: kind)
                try self.save(canary, change, stored: stored, phase: nil, in: db, at: now)
            }
            let changed = canary
            return (changed, { $0.replace(changed) })
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
    public func canaries(sorted: Bool = true) -> [Canary] {
        // The dictionary is copied on write: taking it under the lock costs nothing, and the list
        // is made outside it, so checks are not held up while many canaries are listed.
        let snapshot = memory.withLock { $0.canaries }
        let canaries = Array(snapshot.values)
        return sorted ? canaries.sorted { $0.id < $1.id } : canaries
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

    /// Whether storage answered the last time it was asked and no write has waited past the
    /// stall threshold; checks fail closed while storage is marked unavailable.
    public var isHealthy: Bool { health.currentProblem == nil && !isStalled }

    /// Whether a write has waited longer than a second (or the storage timeout, if shorter).
    var isStalled: Bool { (writes.oldestWait ?? .zero) > stallThreshold }

    private var stallThreshold: Duration { min(.seconds(1), writes.timeout) }

    /// Asks storage to commit a write (through the same queue and deadline as every change); the
    /// result decides `isHealthy`.
    @discardableResult
    public func probe(at now: Date = Date()) async -> Bool {
        if let problem = file?.problem {
            health.markFileProblem(problem)
            return false
        }
        do {
            try await withWrite { db in
                try db.execute(
                    sql: "INSERT OR REPLACE INTO heartbeat (id, at) VALUES (1, ?)", arguments: [now.storedText])
            }
            health.markRecovered()
            return true
        } catch {
            return false  // the write queue has already marked storage unavailable or stalled
        }
    }

    /// Whether storage is ready, answered within `limit` whatever storage does: false at once while
    /// a write is stalled, otherwise whether a probe commits in time (one probe at a time).
    public func readiness(within limit: Duration = .milliseconds(800)) async -> Bool {
        if isStalled { return false }
        let probe = probes.withLock { running -> Task<Bool, Never> in
            if let running { return running }
            let task = Task { await self.probe() }
            running = task
            Task {
                _ = await task.value
                self.probes.withLock { $0 = nil }
            }
            return task
        }
        return await Bounded.value(of: probe, within: limit) ?? false
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

    /// Writes what checks observed (last seen, phase, checksum, last progress check) that only memory holds so far.
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
            for canary in canaries { try CanaryRecord.persistObservations(canary, in: db) }
            return ((), { _ in })
        }
    }

    /// Deletes audit entries older than `cutoff`; returns how many.
    @discardableResult
    public func pruneAudit(olderThan cutoff: Date) async throws -> Int {
        try await withWrite { db in try AuditRecord.filter(Column("at") < cutoff.storedText).deleteAll(db) }
    }

    // MARK: Internals

    private func requireHealthy() throws {
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

    private func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
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
    private func stored(_ id: CanaryID, in db: Database) throws -> Canary? {
        guard var canary = try CanaryRecord.fetch(id, in: db) else { return nil }
        if let inMemory = memory.withLock({ $0.canaries[id] }) { canary.adoptObservations(from: inMemory) }
        return canary
    }

    private func fullError(_ id: CanaryID) -> StoreError {
        .full(
            "Gatehouse already remembers \(maximumCanaries) canaries (--max-canaries), so it does not take on \(id); canaries nobody acted on are forgotten after --forget-canaries-after"
        )
    }

    /// Forgets canaries nobody acted on (see `Canary.isUntouched`) that Flagger has not called about
    /// since `cutoff`: their rows, gates and audit entries. A real canary waiting for approval calls
    /// every analysis interval and stays. Returns how many were forgotten.
    @discardableResult
    public func forgetUntouchedCanaries(notSeenSince cutoff: Date) async throws -> Int {
        let idle = memory.withLock { memory in
            memory.canaries.values.filter { $0.isForgettable(notSeenSince: cutoff) }.map(\.id)
        }
        var forgotten = 0
        for chunk in stride(from: 0, to: idle.count, by: 1000).map({ idle[$0..<min($0 + 1000, idle.count)] }) {
            forgotten += try await write { db in
                var gone: [CanaryID] = []
                for id in chunk {
                    // Decided again from what is stored: it may have been acted on meanwhile.
                    let canary = try self.stored(id, in: db) ?? self.memory.withLock { $0.canaries[id] }
                    guard let canary, canary.isForgettable(notSeenSince: cutoff) else { continue }
                    let key: StatementArguments = [id.namespace, id.name]
                    try db.execute(sql: "DELETE FROM audit WHERE namespace = ? AND name = ?", arguments: key)
                    try db.execute(sql: "DELETE FROM gate WHERE namespace = ? AND name = ?", arguments: key)
                    try db.execute(sql: "DELETE FROM canary WHERE namespace = ? AND name = ?", arguments: key)
                    gone.append(id)
                }
                let forgotten = gone
                return (
                    forgotten.count,
                    { memory in
                        for id in forgotten {
                            guard memory.canaries[id]?.isForgettable(notSeenSince: cutoff) == true else { continue }
                            memory.canaries[id] = nil
                            memory.unsaved.remove(id)
                        }
                    }
                )
            }
        }
        return forgotten
    }

    /// Writes a canary's row, the gates that differ from `stored` (as `load` returned it in this
    /// transaction), the change's audit entries and the notifications they call for.
    func save(
        _ canary: Canary, _ change: CanaryChange, stored: Canary, phase: CanaryPhase?, in db: Database, at now: Date
    ) throws {
        try CanaryRecord.persist(canary, in: db)
        for (kind, gate) in canary.gates where stored.gate(kind) != gate {
            try GateRecord.persist(gate, of: canary.id, in: db)
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
        try AuditRecord.append(at: now, namespace: namespace, name: name, gate: gate, fact: fact, phase: phase, in: db)
    }
}
