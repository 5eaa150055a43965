import Foundation
import GRDB
import Synchronization

/// The write queue: every change goes through it, in one transaction per batch (group commit).
///
/// Writes that arrive while a transaction runs are committed together in the next one, each inside
/// its own savepoint so that one refused change leaves the others intact. Each write has a deadline
/// (the storage timeout): a caller whose write has not committed by then gets `unavailable`, and
/// the write is abandoned — never applied later. To make that true when the volume stalls (a frozen
/// or hung file system blocks SQLite's writes until it returns), a batch touches a probe file just
/// before COMMIT and then claims each of its writes; if any caller has given up by then, the whole
/// transaction rolls back and its writes fail closed.
final class GroupCommit: Sendable {
    private let writer: any DatabaseWriter
    let timeout: Duration
    /// The database file opened: a batch is not committed to a file deleted or replaced meanwhile
    /// (SQLite would commit it to the unlinked file, and it would be lost).
    private let file: DatabaseFile?
    private let probe: WriteProbe?
    private let queue = Mutex(Queue())
    private let health: StorageHealth
    /// Copies the write-ahead log into the file after commits, off the writer.
    private let checkpointer: Checkpointer?
    /// Applies committed changes to memory, in commit order, before their callers are answered.
    private let applyCommitted: @Sendable ([@Sendable (inout Memory) -> Void]) -> Void

    init(
        writer: any DatabaseWriter, timeout: Duration, file: DatabaseFile?, probe: WriteProbe?, health: StorageHealth,
        checkpointer: Checkpointer? = nil,
        applyCommitted: @escaping @Sendable ([@Sendable (inout Memory) -> Void]) -> Void
    ) {
        self.writer = writer
        self.checkpointer = checkpointer
        self.timeout = timeout
        self.file = file
        self.probe = probe
        self.health = health
        self.applyCommitted = applyCommitted
    }

    /// Runs `body` in a write transaction and returns once that transaction has committed, or
    /// throws `unavailable` when it has not within the storage timeout (and then it never will).
    func write<T: Sendable>(
        _ body: @escaping @Sendable (Database) throws -> (T, @Sendable (inout Memory) -> Void)
    ) async throws -> T {
        try await WriteTicket.answer(within: timeout, health: health) { ticket, answer in
            let pending = PendingWrite(
                ticket: ticket,
                perform: { db in
                    let (value, apply) = try body(db)
                    return (apply, { answer.succeed(value) })
                },
                fail: { error in answer.fail(error) })
            let startsFlush = queue.withLock { queue -> Bool in
                queue.pending.append(pending)
                if queue.pendingSince == nil { queue.pendingSince = ContinuousClock.now }
                defer { queue.isFlushing = true }
                return !queue.isFlushing
            }
            if startsFlush {
                writer.asyncWriteWithoutTransaction { db in self.flush(db) }
            }
        }
    }

    /// Returns once the log's pages committed so far are copied into the file (see `Checkpointer`).
    func checkpointed() async {
        await checkpointer?.checkpoint()
    }

    /// How long the oldest unanswered write has waited, if any is waiting.
    var oldestWait: Duration? {
        queue.withLock { queue in
            [queue.inFlightSince, queue.pendingSince].compactMap { $0 }.min().map { ContinuousClock.now - $0 }
        }
    }

    /// Commits every pending write, batch after batch, until none is left.
    private func flush(_ db: Database) {
        while true {
            let batch = queue.withLock { queue -> [PendingWrite] in
                queue.inFlightSince = nil
                guard !queue.pending.isEmpty else {
                    queue.isFlushing = false
                    return []
                }
                defer {
                    queue.pending.removeAll(keepingCapacity: true)
                    queue.inFlightSince = queue.pendingSince
                    queue.pendingSince = nil
                }
                return queue.pending
            }
            if batch.isEmpty { return }
            var remaining = batch.filter { !$0.ticket.isAbandoned }
            while !remaining.isEmpty { remaining = commit(remaining, in: db) }
            checkpointer?.afterCommit()
        }
    }

    /// Commits one batch; returns the writes to commit again in a new transaction, when some of
    /// this one's callers left before it committed (their writes are dropped, the others kept).
    private func commit(_ batch: [PendingWrite], in db: Database) -> [PendingWrite] {
        guard !batch.isEmpty else { return [] }
        var committed: [(apply: @Sendable (inout Memory) -> Void, succeed: @Sendable () -> Void)] = []
        var refused: [(PendingWrite, any Error)] = []
        var accepted: [PendingWrite] = []
        var abandoned = false
        var left: [PendingWrite] = []
        do {
            try db.inTransaction(.immediate) {
                for pending in batch where !pending.ticket.isAbandoned && !pending.ticket.leaveIfCallerLeft() {
                    do {
                        try db.inSavepoint {
                            committed.append(try pending.perform(db))
                            return .commit
                        }
                        accepted.append(pending)
                    } catch let error as StoreError {
                        refused.append((pending, error))
                    } catch let error where !StorageHealth.isStorageFailure(error) {
                        // A change the schema refuses (a constraint) fails that request alone.
                        refused.append((pending, StoreError.rejected("storage refused this change: \(error)")))
                    }
                }
                if let problem = file?.problem { throw FileProblem(message: problem) }
                // Blocks while the volume is stalled, before anything is committed.
                try probe?.touch()
                // A caller who left meanwhile (Flagger's webhook timeout can be shorter than ours) takes
                // its write with it: this transaction is rolled back and the others commit in the next.
                left = (accepted + refused.map(\.0)).filter { $0.ticket.leaveIfCallerLeft() }
                if !left.isEmpty { return .rollback }
                let claims = accepted.map { $0.ticket.claim() } + refused.map { $0.0.ticket.claim() }
                abandoned = claims.contains(false)
                return abandoned ? .rollback : .commit
            }
        } catch let problem as FileProblem {
            health.markFileProblem(problem.message)
            for pending in batch where pending.ticket.take() {
                pending.fail(StoreError.unavailable(problem.message))
            }
            return []
        } catch {
            health.markUnavailable(error)
            for pending in batch where pending.ticket.take() {
                pending.fail(StoreError.unavailable("storage cannot answer right now"))
            }
            return []
        }
        if !left.isEmpty {
            return batch.filter { !$0.ticket.isAbandoned }
        }
        if abandoned {
            // Some callers gave up while storage stalled: nothing of this batch is kept.
            for pending in accepted + refused.map(\.0) where pending.ticket.isClaimed {
                pending.fail(StoreError.unavailable("storage did not answer in time"))
            }
            return []
        }
        applyCommitted(committed.map(\.apply))
        for change in committed { change.succeed() }
        for (pending, error) in refused { pending.fail(error) }
        return []
    }

    private struct Queue: Sendable {
        var pending: [PendingWrite] = []
        var isFlushing = false
        /// When the oldest write of the batch being committed was queued.
        var inFlightSince: ContinuousClock.Instant?
        /// When the oldest write still queued was queued.
        var pendingSince: ContinuousClock.Instant?
    }
}

/// A change waiting for the next group commit.
struct PendingWrite: Sendable {
    /// Whether its caller is still waiting.
    let ticket: WriteTicket
    /// Writes the change; returns what to apply to memory and how to answer, both after the commit.
    let perform: @Sendable (Database) throws -> (@Sendable (inout Memory) -> Void, @Sendable () -> Void)
    /// Answers with an error; nothing of the change was kept.
    let fail: @Sendable (any Error) -> Void
}

/// Whether the caller of the work a task does still waits for its answer: the server binds it to
/// each request's connection, so that a write whose caller left before it committed (Flagger's
/// webhook timed out, a person pressed Ctrl-C) is dropped rather than applied unseen.
public struct Presence: Sendable {
    /// Whether the caller still waits.
    public let isWaiting: @Sendable () -> Bool

    /// A presence that asks `isWaiting`.
    public init(isWaiting: @escaping @Sendable () -> Bool) {
        self.isWaiting = isWaiting
    }

    /// The presence of the current task's caller; nil (always waiting) outside a request.
    @TaskLocal public static var current: Presence?
}

/// One write's answer, given exactly once: by its commit (after the batch claims it), by its
/// deadline, or at once when its caller left.
final class WriteTicket: Sendable {
    private static let waiting: UInt8 = 0
    private static let claimed: UInt8 = 1
    private static let abandoned: UInt8 = 2
    private let state = Atomic<UInt8>(WriteTicket.waiting)
    /// The caller's presence, taken from the task that made the write.
    private let presence = Presence.current
    /// Answers the caller when it left, set once the answer is awaited.
    private let answerLeaving = Mutex<(@Sendable () -> Void)?>(nil)

    /// The batch takes the write just before COMMIT; false if its caller already gave up or left.
    func claim() -> Bool {
        if leaveIfCallerLeft() { return false }
        return state.compareExchange(
            expected: Self.waiting, desired: Self.claimed, ordering: .acquiringAndReleasing
        ).exchanged
    }

    /// Abandons the write, answering its caller, if the caller left while it waited; returns whether it did.
    func leaveIfCallerLeft() -> Bool {
        guard let presence, state.load(ordering: .acquiring) == Self.waiting, !presence.isWaiting() else {
            return false
        }
        guard abandon() else { return false }
        answerLeaving.withLock { $0 }?()
        return true
    }

    /// The deadline gives up on the write; false if a batch already claimed it.
    func abandon() -> Bool {
        state.compareExchange(expected: Self.waiting, desired: Self.abandoned, ordering: .acquiringAndReleasing)
            .exchanged
    }

    /// Whether the caller gave up.
    var isAbandoned: Bool { state.load(ordering: .acquiring) == Self.abandoned }

    /// Whether a batch claimed the write.
    var isClaimed: Bool { state.load(ordering: .acquiring) == Self.claimed }

    /// Whether the batch answers the write: it claims a waiting one, or had claimed it already;
    /// false only when the caller gave up (its deadline answered).
    func take() -> Bool { claim() || isClaimed }

    /// Starts work that answers through `answer` once it is done, and waits for that answer — or,
    /// when `timeout` passes first, abandons the work (its late answer is dropped: the work must
    /// `claim` the ticket before it commits, and roll back if it cannot) and fails closed with
    /// `unavailable`, marking storage stalled.
    static func answer<T: Sendable>(
        within timeout: Duration, health: StorageHealth, _ start: (WriteTicket, Answer<T>) -> Void
    ) async throws -> T {
        let ticket = WriteTicket()
        return try await withCheckedThrowingContinuation { continuation in
            let deadline = Task {
                try await Task.sleep(for: timeout)
                guard ticket.abandon() else { return }
                health.markStalled(after: timeout)
                continuation.resume(throwing: StoreError.unavailable("storage did not answer within \(timeout)"))
            }
            ticket.answerLeaving.withLock {
                $0 = {
                    deadline.cancel()
                    continuation.resume(
                        throwing: StoreError.unavailable(
                            "the caller left before the change was committed; nothing changed"))
                }
            }
            start(ticket, Answer(continuation: continuation, deadline: deadline))
        }
    }

    /// How work answers its waiting caller, once.
    struct Answer<T: Sendable>: Sendable {
        let continuation: CheckedContinuation<T, any Error>
        let deadline: Task<Void, any Error>

        func succeed(_ value: T) {
            deadline.cancel()
            continuation.resume(returning: value)
        }

        func fail(_ error: any Error) {
            deadline.cancel()
            continuation.resume(throwing: error)
        }
    }
}

/// A small file beside the database, written just before each commit: on a frozen or hung volume
/// the write blocks, so a batch waits there — before COMMIT — instead of inside it.
final class WriteProbe: Sendable {
    private let descriptor: Int32

    /// Opens (creating) the probe file; nil when it cannot be opened (the commit still works).
    init?(path: String) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return nil }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Writes one byte in place; throws when the volume refuses it.
    func touch() throws {
        var byte: UInt8 = 0
        let written = pwrite(descriptor, &byte, 1, 0)
        guard written == 1 else {
            throw StoreError.unavailable("the volume refused a write: \(String(cString: strerror(errno)))")
        }
    }
}

/// The database file is no longer the one opened: nothing more is committed to it.
private struct FileProblem: Error {
    let message: String
}
