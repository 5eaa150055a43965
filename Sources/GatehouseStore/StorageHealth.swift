import Foundation
import GRDB
import Logging
import Synchronization

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
