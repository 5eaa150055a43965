import Crypto
import Foundation
import GatehouseCore
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// A configuration file in force (the access file, the policy file), re-read when its content
/// changes or on SIGHUP; a broken file is refused, logged, and the previous content stays in force.
public final class WatchedFile<Content: Sendable>: Sendable {
    /// The file's path.
    public let path: String
    /// What the file is, as the log names it ("access file").
    let kind: String
    private let parse: @Sendable (String) throws(InvalidInput) -> Content
    private let summary: @Sendable (Content) -> Logger.Metadata
    private let state: Mutex<(content: Content, fingerprint: SHA256.Digest?)>
    private let logger: Logger

    /// Reads the file; a broken file at start is an error (the service does not start without it).
    init(
        path: String, kind: String, logger: Logger, parse: @escaping @Sendable (String) throws(InvalidInput) -> Content,
        summary: @escaping @Sendable (Content) -> Logger.Metadata
    ) throws(InvalidInput) {
        self.path = path
        self.kind = kind
        self.logger = logger
        self.parse = parse
        self.summary = summary
        let (content, fingerprint) = try Self.read(path, kind: kind, parse: parse)
        state = Mutex((content, fingerprint))
    }

    /// The content in force.
    public var content: Content { state.withLock { $0.content } }

    /// Re-reads the file if its content changed (or always, when `force`); keeps the previous content if it is broken.
    @discardableResult
    public func reload(force: Bool = false) -> Bool {
        // The content, not the modification time: a Secret update swaps a symlink, and an edit can
        // land within the same second.
        let current = FileManager.default.contents(atPath: path).map { SHA256.hash(data: $0) }
        guard force || current != state.withLock({ $0.fingerprint }) else { return false }
        do {
            let (content, fingerprint) = try Self.read(path, kind: kind, parse: parse)
            state.withLock { $0 = (content, fingerprint) }
            logger.notice("\(kind) reloaded", metadata: ["path": "\(path)"].merging(summary(content)) { $1 })
            return true
        } catch {
            // Remember the broken version so it is reported once, not on every poll.
            state.withLock { $0.fingerprint = current }
            logger.error(
                "\(kind) refused; the previous one stays in force",
                metadata: ["path": "\(path)", "error": "\(error.message)"])
            return false
        }
    }

    private static func read(
        _ path: String, kind: String, parse: @Sendable (String) throws(InvalidInput) -> Content
    ) throws(InvalidInput) -> (Content, SHA256.Digest) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InvalidInput("the \(kind) \(path) cannot be read")
        }
        do {
            return (try parse(String(decoding: data, as: UTF8.self)), SHA256.hash(data: data))
        } catch {
            throw InvalidInput("\(path): \(error.message)")
        }
    }
}

/// The access file in force.
public typealias AccessControl = WatchedFile<AccessPolicy>

extension WatchedFile where Content == AccessPolicy {
    /// Reads the access file; a broken file at start is an error (the service does not start open).
    public convenience init(path: String, logger: Logger) throws(InvalidInput) {
        try self.init(
            path: path, kind: "access file", logger: logger, parse: AccessPolicy.parse,
            summary: { ["tokens": .stringConvertible($0.tokens.count)] })
    }

    /// The access policy in force.
    public var policy: AccessPolicy { content }
}

/// The guardrails policy file in force.
public typealias PolicyControl = WatchedFile<Policy>

extension WatchedFile where Content == Policy {
    /// Reads the policy file; a broken file at start is an error.
    public convenience init(path: String, logger: Logger) throws(InvalidInput) {
        try self.init(
            path: path, kind: "policy file", logger: logger, parse: PolicyFile.parse,
            summary: { ["rules": .stringConvertible($0.rules.count)] })
    }
}

/// A file that can be re-read.
protocol Reloadable: Sendable {
    @discardableResult
    func reload(force: Bool) -> Bool
}

extension WatchedFile: Reloadable {}

/// Re-reads configuration files when they change (polled, so a Kubernetes Secret or ConfigMap
/// update is seen) or on SIGHUP.
struct FileWatcher: Service {
    let files: [any Reloadable]
    let interval: Duration

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
                    for file in files { file.reload(force: true) }
                }
            }
            group.addTask {
                while !Task.isShuttingDownGracefully {
                    do {
                        try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                    } catch {
                        return
                    }
                    for file in files { file.reload(force: false) }
                }
            }
            await group.waitForAll()
        }
    }
}
