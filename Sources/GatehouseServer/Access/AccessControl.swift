import Crypto
import Foundation
import GatehouseCore
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The access file in force, re-read when it changes or on SIGHUP; a broken file is refused and
/// the previous policy stays in force.
public final class AccessControl: Sendable {
    /// The file's path.
    public let path: String
    private let state: Mutex<(policy: AccessPolicy, fingerprint: SHA256.Digest?)>
    private let logger: Logger

    /// Reads the access file; a broken file at start is an error (the service does not start open).
    public init(path: String, logger: Logger) throws(InvalidInput) {
        self.path = path
        self.logger = logger
        let (policy, fingerprint) = try Self.read(path)
        state = Mutex((policy, fingerprint))
    }

    /// The policy in force.
    public var policy: AccessPolicy { state.withLock { $0.policy } }

    /// Re-reads the file if its content changed (or always, when `force`); keeps the previous policy if it is broken.
    @discardableResult
    public func reload(force: Bool = false) -> Bool {
        // The content, not the modification time: a Secret update swaps a symlink, and an edit can
        // land within the same second.
        let current = FileManager.default.contents(atPath: path).map { SHA256.hash(data: $0) }
        guard force || current != state.withLock({ $0.fingerprint }) else { return false }
        do {
            let (policy, fingerprint) = try Self.read(path)
            state.withLock { $0 = (policy, fingerprint) }
            logger.notice(
                "access file reloaded",
                metadata: ["path": "\(path)", "tokens": .stringConvertible(policy.tokens.count)])
            return true
        } catch {
            // Remember the broken version so it is reported once, not on every poll.
            state.withLock { $0.fingerprint = current }
            logger.error(
                "access file refused; the previous one stays in force",
                metadata: ["path": "\(path)", "error": "\(error.message)"])
            return false
        }
    }

    private static func read(_ path: String) throws(InvalidInput) -> (AccessPolicy, SHA256.Digest) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InvalidInput("the access file \(path) cannot be read")
        }
        return (try AccessPolicy.parse(String(decoding: data, as: UTF8.self)), SHA256.hash(data: data))
    }
}

/// Re-reads the access file when it changes (polled, so a Kubernetes Secret update is seen) or on SIGHUP.
struct AccessFileWatcher: Service {
    let access: AccessControl
    let interval: Duration

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
                    access.reload(force: true)
                }
            }
            group.addTask {
                while !Task.isShuttingDownGracefully {
                    do {
                        try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                    } catch {
                        return
                    }
                    access.reload()
                }
            }
            await group.waitForAll()
        }
    }
}
