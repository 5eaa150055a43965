import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Threads of their own, at a lower scheduling priority, for what people read: dashboard pages,
/// lists, audit searches and metrics scrapes. Flagger's checks and every change run on Swift's
/// shared pool; a read, however large, never occupies one of its threads, so a check never queues
/// behind a page being built, and on a busy core the scheduler gives the check the processor first.
///
/// Nice 10, not 19: at 19 a read gets about 1/70 of a core that checks or anything else keep busy,
/// so on a saturated machine a page took longer than clients wait; at 10 it gets about 1/10, and
/// check p99 under reads measured the same within noise (scripts/scale.py at 20,000 canaries:
/// 4.6 ms at 19, 5.0 at 10, 5.6 at 0).
public final class ReadingLane: TaskExecutor {
    /// The lane every service in this process shares: its threads live as long as the process.
    public static let shared = ReadingLane(threads: 2, niceness: 10)

    private let jobs = Mutex(CircularBuffer<UnownedJob>())
    private let waiting = DispatchSemaphore(value: 0)

    /// Starts `threads` threads, each running jobs in the order they came, at `niceness` (on Linux
    /// a nice value belongs to a thread, and `setpriority` of "this process" sets the caller's).
    init(threads: Int, niceness: Int32) {
        for index in 0..<threads {
            let thread = Thread { [self] in
                #if canImport(Glibc)
                    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
                #endif
                while true {
                    waiting.wait()
                    guard let job = jobs.withLock({ $0.popFirst() }) else { continue }
                    job.runSynchronously(on: asUnownedTaskExecutor())
                }
            }
            thread.name = "gatehouse-reads-\(index)"
            thread.start()
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
        waiting.signal()
    }
}

/// Runs people's reads — every GET but the health probes — on the `ReadingLane`.
struct ReadingLaneMiddleware<Context: RequestContext>: RouterMiddleware {
    let lane: ReadingLane
    /// Paths answered where they arrive: cheap, and a probe must not wait behind a page.
    static var probes: Set<String> { ["/healthz", "/readyz"] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard request.method == .get, !Self.probes.contains(request.uri.path) else {
            return try await next(request, context)
        }
        return try await withTaskExecutorPreference(lane) { try await next(request, context) }
    }
}
