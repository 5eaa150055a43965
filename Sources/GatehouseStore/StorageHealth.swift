import Foundation
import GRDB
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Whether storage answers: checks fail closed while it does not, and `/readyz` says so.
final class StorageHealth: Sendable {
    private let problem = Mutex<String?>(nil)
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// What is wrong with storage, if anything.
    var currentProblem: String? { problem.withLock { $0 } }

    /// Records that storage failed; logged once until it recovers.
    func markUnavailable(_ error: any Error) {
        mark("storage cannot answer: \(error)")
    }

    /// Records that the database file is no longer the one opened (deleted, replaced or unreadable).
    func markFileProblem(_ problem: String) {
        mark(problem)
    }

    /// Records that a write did not commit within the storage timeout (a stalled or locked volume).
    func markStalled(after timeout: Duration) {
        mark("storage did not commit a write within \(timeout); the volume may be stalled or locked")
    }

    /// Records that storage answers again.
    func markRecovered() {
        let recovered = problem.withLock { problem -> Bool in
            defer { problem = nil }
            return problem != nil
        }
        if recovered { logger.notice("storage answers again; checks resume") }
    }

    private func mark(_ message: String) {
        let isNew = problem.withLock { problem -> Bool in
            defer { problem = message }
            return problem == nil
        }
        if isNew {
            logger.error("storage cannot answer; checks fail closed until it does", metadata: ["problem": "\(message)"])
        }
    }

    /// Whether an error means storage itself is failing (locked, full, read-only, gone, broken),
    /// rather than one change being refused (a constraint).
    static func isStorageFailure(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return false }
        switch error.resultCode {
        case .SQLITE_CONSTRAINT, .SQLITE_MISMATCH, .SQLITE_RANGE, .SQLITE_TOOBIG: return false
        default: return true
        }
    }
}

/// The identity of the database file opened, to notice it being deleted or replaced underneath
/// the service (SQLite keeps writing to the open, unlinked file: every change after that is lost).
struct DatabaseFile: Sendable {
    let path: String
    private let device: UInt64
    private let inode: UInt64

    /// Notes which file `path` is now; nil for an in-memory database or one that cannot be looked at.
    init?(path: String) {
        guard !path.isEmpty, path != ":memory:", let identity = Self.identity(of: path) else { return nil }
        self.path = path
        (device, inode) = identity
    }

    /// What is wrong with the file, if anything: gone, another file in its place, or not readable and writable.
    var problem: String? {
        guard let identity = Self.identity(of: path) else {
            return
                "the database file \(path) was deleted; changes made now would be lost, so checks fail closed until the service is restarted (restore the file or start afresh)"
        }
        guard identity == (device, inode) else {
            return
                "the database file \(path) was replaced by another file; checks fail closed until the service is restarted to open it"
        }
        guard access(path, R_OK | W_OK) == 0 else {
            return "the database file \(path) can no longer be read and written: \(String(cString: strerror(errno)))"
        }
        return nil
    }

    private static func identity(of path: String) -> (UInt64, UInt64)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }
}

/// Waiting for a task's value for a bounded time, leaving the task running when time is up.
enum Bounded {
    /// The task's value, or nil if it has not finished within `limit`.
    static func value<T: Sendable>(of task: Task<T, Never>, within limit: Duration) async -> T? {
        let answered = Answered()
        return await withCheckedContinuation { continuation in
            Task {
                let value = await task.value
                if answered.claim() { continuation.resume(returning: value) }
            }
            Task {
                try? await Task.sleep(for: limit)
                if answered.claim() { continuation.resume(returning: nil) }
            }
        }
    }
}

/// Set once by whoever answers first.
private final class Answered: Sendable {
    private let state = Synchronization.Atomic<Bool>(false)

    func claim() -> Bool {
        state.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }
}
