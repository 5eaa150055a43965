import Foundation
import GatehouseServer
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Log lines never hold up the service", .timeLimit(.minutes(1)))
struct LogOutputTests {
    /// A pipe nobody reads until told to: a log sink that stalls.
    final class StalledPipe: Sendable {
        let readEnd: Int32
        let writeEnd: Int32

        init() throws {
            var ends: [Int32] = [0, 0]
            guard pipe(&ends) == 0 else { throw POSIXError(.EMFILE) }
            readEnd = ends[0]
            writeEnd = ends[1]
        }

        /// Reads until a line holding `marker` arrives (or the pipe closes); true when it arrived.
        func drain(until marker: String) -> Bool {
            var seen = ""
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = read(readEnd, &buffer, buffer.count)
                guard count > 0 else { return false }
                seen += String(decoding: buffer[0..<count], as: UTF8.self)
                if seen.contains(marker) { return true }
                if seen.count > 1 << 20 { seen = String(seen.suffix(4096)) }
            }
        }

        deinit {
            close(readEnd)
            close(writeEnd)
        }
    }

    /// Runs `body` on a thread of its own; false when it has not returned within `seconds`. The wait
    /// is on a thread of its own too, not one of the shared pool's that other tests need.
    func finishes(within seconds: Double, _ body: @escaping @Sendable () -> Void) async throws -> Bool {
        try await onThreadOfItsOwn {
            let done = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                body()
                done.signal()
            }
            return done.wait(timeout: .now() + seconds) == .success
        }
    }

    @Test(
        "while the sink stalls, logging returns at once and lines beyond the buffer are dropped and counted; once it drains, lines flow again"
    )
    func stalledSink() async throws {
        let pipe = try StalledPipe()
        let output = LogOutput(descriptor: pipe.writeEnd, capacity: 16_384)
        let line = String(repeating: "x", count: 99) + "\n"
        // 10 MB into a pipe that holds 64 KB and a buffer of 16 KB: a blocking write would never return.
        let logged = try await finishes(within: 20) {
            for _ in 0..<100_000 { output.append(line) }
        }
        #expect(logged, "appending lines blocked on a sink nobody reads")
        #expect(output.dropped > 90_000)
        // Someone reads the pipe again: a line logged from then on arrives (until the old ones are
        // written, the buffer may still be full, so it is logged again until it does).
        let delivered = try await onThreadOfItsOwn {
            let arrived = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                if pipe.drain(until: "after the stall") { arrived.signal() }
            }
            var delivered = false
            for _ in 0..<2000 where !delivered {
                output.append("after the stall\n")
                delivered = arrived.wait(timeout: .now() + 0.01) == .success
            }
            return delivered
        }
        #expect(delivered, "a line logged once the sink drained did not arrive")
    }
}
