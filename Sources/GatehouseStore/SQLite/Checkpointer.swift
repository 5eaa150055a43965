import Foundation
import GRDB
import Synchronization

/// Copies the write-ahead log into the database file from a connection of its own, at most four
/// times a second, after commits, so that a commit — Flagger's, or a person's — does not wait for a
/// checkpoint's writes and the fsync that ends them (the writer's own checkpoint comes only once
/// the log holds 1,000 pages, see `GateStore.openDatabase`, and finds little left to copy). A
/// passive checkpoint waits for nobody: what it cannot copy now it copies next time.
final class Checkpointer: Sendable {
    private let connection: DatabaseQueue
    private let state = Mutex<(running: Bool, finished: ContinuousClock.Instant?)>((false, nil))

    /// A checkpointer of the file at `path`; nil when it cannot be opened (then the writer's own
    /// checkpoints, if any, are all there is).
    init?(path: String) {
        var configuration = Configuration()
        configuration.busyMode = .timeout(0.1)
        guard let connection = try? DatabaseQueue(path: path, configuration: configuration) else { return nil }
        self.connection = connection
    }

    /// Copies what the log holds into the file now, off the writer, and returns when done: a long
    /// run of writes (pruning) calls it between its steps, so that the log stays short and no
    /// commit of someone else's reaches 1,000 pages and has to copy it.
    func checkpoint() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global(qos: .utility).async { [self] in
                _ = try? connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
                state.withLock { $0.finished = .now }
                done.resume()
            }
        }
    }

    /// Starts a checkpoint in the background, unless one is running or one finished less than 250 ms ago.
    func afterCommit() {
        let starts = state.withLock { state -> Bool in
            guard !state.running, state.finished.map({ $0.duration(to: .now) >= .milliseconds(250) }) ?? true else {
                return false
            }
            state.running = true
            return true
        }
        guard starts else { return }
        DispatchQueue.global(qos: .utility).async { [self] in
            _ = try? connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
            state.withLock { $0 = (false, .now) }
        }
    }
}
