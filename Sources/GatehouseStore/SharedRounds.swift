import Synchronization

/// Rounds of one piece of work that callers share: a caller waits for the next round that starts
/// after it arrived (never one already under way), and all who arrived meanwhile share that round.
/// At most one round runs at a time, so under load one round serves many callers.
final class SharedRounds: Sendable {
    private struct State: Sendable {
        var isRunning = false
        var waiting: [CheckedContinuation<Void, any Error>] = []
        var round: (@Sendable () async throws -> Void)?
    }
    private let state = Mutex(State())

    /// The work a round does; set once, before the first `join`.
    var round: (@Sendable () async throws -> Void)? {
        get { state.withLock { $0.round } }
        set { state.withLock { $0.round = newValue } }
    }

    /// Waits for the next round to start and end; throws what it threw.
    func join() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let starts = state.withLock { state -> Bool in
                state.waiting.append(continuation)
                defer { state.isRunning = true }
                return !state.isRunning
            }
            // Detached: a round serves every caller, so it must not carry the first one's task-local
            // values (its request's `Presence`: that caller leaving would fail the others' round).
            if starts { Task.detached { await self.run() } }
        }
    }

    private func run() async {
        while true {
            let next = state.withLock {
                state -> ([CheckedContinuation<Void, any Error>], (@Sendable () async throws -> Void)?)? in
                guard !state.waiting.isEmpty else {
                    state.isRunning = false
                    return nil
                }
                defer { state.waiting = [] }
                return (state.waiting, state.round)
            }
            guard let (callers, round) = next else { return }
            let result: Result<Void, any Error>
            do {
                try await round?()
                result = .success(())
            } catch {
                result = .failure(error)
            }
            for caller in callers { caller.resume(with: result) }
        }
    }
}
