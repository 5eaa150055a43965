import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Where log lines go: a bounded buffer that one thread of its own writes to a file descriptor. A
/// request that logs only appends to the buffer, so a log volume or pipe that stalls never holds
/// up an answer; while it stalls, lines beyond `capacity` bytes are dropped and counted
/// (`gatehouse_log_lines_dropped_total`), and the service goes on answering.
public final class LogOutput: Sendable {
    /// Standard output, as the service logs (a pod's log).
    public static let standardOutput = LogOutput(descriptor: STDOUT_FILENO)

    private struct Buffer {
        var lines: [[UInt8]] = []
        var bytes = 0
        var dropped = 0
        /// Whether the writer is writing lines it took (they are not in `lines` meanwhile).
        var writing = false
    }

    private let descriptor: Int32
    private let capacity: Int
    private let buffer = Mutex(Buffer())
    private let pending = DispatchSemaphore(value: 0)

    /// Starts the writer thread of `descriptor`, keeping at most `capacity` bytes waiting.
    public init(descriptor: Int32, capacity: Int = 4 << 20) {
        self.descriptor = descriptor
        self.capacity = capacity
        let thread = Thread { [self] in
            while true {
                pending.wait()
                let lines = buffer.withLock { buffer -> [[UInt8]] in
                    defer { buffer = Buffer(dropped: buffer.dropped, writing: true) }
                    return buffer.lines
                }
                for line in lines { send(line) }
                buffer.withLock { $0.writing = false }
            }
        }
        thread.name = "gatehouse-log"
        thread.start()
    }

    /// Appends one line (or drops it, when the buffer is full); never waits for the descriptor.
    public func append(_ line: some StringProtocol) {
        let bytes = Array(line.utf8)
        let accepted = buffer.withLock { buffer in
            guard buffer.bytes + bytes.count <= capacity else {
                buffer.dropped += 1
                return false
            }
            buffer.lines.append(bytes)
            buffer.bytes += bytes.count
            return true
        }
        if accepted { pending.signal() }
    }

    /// How many lines were dropped because the buffer was full.
    public var dropped: Int { buffer.withLock { $0.dropped } }

    /// Waits, at most `timeout`, until every line appended so far is written (before the process ends).
    public func flush(timeout: Duration = .seconds(2)) async {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline, buffer.withLock({ !$0.lines.isEmpty || $0.writing }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    private func send(_ line: [UInt8]) {
        line.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return  // the descriptor is gone: the line is lost, as it would be anyway
                }
            }
        }
    }
}

/// A `TextOutputStream` into a `LogOutput`, for swift-log's text handler.
public struct LogStream: TextOutputStream, Sendable {
    let output: LogOutput

    public init(_ output: LogOutput) { self.output = output }

    public mutating func write(_ string: String) {
        output.append(string)
    }
}
