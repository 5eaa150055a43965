import Foundation
import GRDB
import GatehouseCore
import GatehouseStore
import Synchronization

/// A SQLite file in its own temporary directory, removed when the test ends.
final class TemporaryDatabase: Sendable {
    let directory: URL
    let path: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "gatehouse-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("gatehouse.sqlite").path
    }

    /// Opens a store on the file, as `gatehouse serve` does.
    func openStore(
        busyTimeout: TimeInterval = 0.2, storageTimeout: TimeInterval = 5, maximumCanaries: Int = 50_000,
        policy: Policy = .none
    )
        throws -> GateStore
    {
        try GateStore(
            writer: GateStore.openDatabase(atPath: path, busyTimeout: busyTimeout), storageTimeout: storageTimeout,
            maximumCanaries: maximumCanaries, policy: { policy })
    }

    /// A second, independent connection to the same file, as another process would have.
    func otherConnection() throws -> DatabaseQueue {
        try DatabaseQueue(path: path)
    }

    /// Holds SQLite's exclusive lock from another connection, as a stuck process would, until `unlock`
    /// is called. Waits up to 5 seconds for a write under way (on a thread of its own: never on the
    /// threads the store under test needs); throws if the lock cannot be had.
    func lockExclusively() async throws -> StorageLock {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        let lock = StorageLock()
        try await withCheckedThrowingContinuation { (taken: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread {
                let resumed = Mutex(false)
                do {
                    try queue.inDatabase { db in
                        try db.execute(sql: "BEGIN EXCLUSIVE")
                        resumed.withLock { $0 = true }
                        taken.resume()
                        lock.release.wait()
                        try db.execute(sql: "ROLLBACK")
                    }
                } catch {
                    if !resumed.withLock({ $0 }) { taken.resume(throwing: error) }
                }
                lock.released.signal()
            }
        }
        return lock
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }
}

/// An exclusive lock held by another connection.
final class StorageLock: Sendable {
    fileprivate let release = DispatchSemaphore(value: 0)
    fileprivate let released = DispatchSemaphore(value: 0)

    /// Lets go of the lock and waits until it is gone (on a thread of its own).
    func unlock() async {
        release.signal()
        await withCheckedContinuation { (gone: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                self.released.wait()
                gone.resume()
            }
        }
    }
}
