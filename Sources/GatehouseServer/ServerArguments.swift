import Foundation
import GatehouseCore
import Logging

/// Everything `gatehouse serve` can be told, with its defaults.
public struct ServerArguments: Sendable, Equatable {
    /// The address to listen on.
    public var host = "0.0.0.0"
    /// The port to listen on; 0 picks a free one.
    public var port = 8080
    /// The SQLite file; created and migrated if missing.
    public var databasePath = "gatehouse.sqlite"
    /// `json` (one object a line) or `text`.
    public var logFormat = LogFormat.json
    /// The lowest level logged.
    public var logLevel = Logger.Level.info
    /// How long audit entries are kept.
    public var auditRetention: TimeInterval = 90 * 86400
    /// How long a rollback request stays pending when no ttl is given.
    public var rollbackTTL: TimeInterval = 3600
    /// How long a request waits for its write to commit (SQLite's lock, a stalled volume) before
    /// failing closed with 503; a write not committed by then is abandoned.
    public var storageTimeout: TimeInterval = 5
    /// Whether `/metrics` needs a bearer token from the access file.
    public var protectMetrics = false
    /// How many canaries may be remembered; a new name beyond that is refused (429).
    public var maximumCanaries = 50_000
    /// How long a canary nobody acted on (no gate opened, no event) is remembered after Flagger's last call.
    public var forgetCanariesAfter: TimeInterval = 86400
    /// How often expiry, persistence of observations, pruning and the storage probe run.
    public var maintenanceInterval: TimeInterval = 5
    /// How long an idle client connection is kept open.
    public var idleTimeout: TimeInterval = 60
    /// Whether each commit is synced to the device (survives power loss) rather than to the OS (survives a crash).
    public var synchronousFull = false
    /// The access file (scoped tokens, Slack users and channels); none means no access control.
    public var accessFile: String?
    /// Only canaries in namespaces this expression matches are served (flagger-loadtester's flag).
    public var namespaceRegexp: String?
    /// A secret Flagger must send in the webhook's `metadata.token`.
    public var flaggerToken: String?
    /// The Slack app's signing secret; enables `/v1/slack/command`.
    public var slackSigningSecret: String?
    /// The notifications file (targets, cluster name, approval link base URL); none sends nothing.
    public var notificationsFile: String?
    /// The secret approval links are signed with; none sends no links.
    public var linkSecret: String?
    /// How often the outbox is looked at.
    public var notificationInterval: TimeInterval = 1
    /// The first retry delay of a failed delivery (it doubles each time, up to five minutes).
    public var notificationRetryBase: TimeInterval = 1
    /// Secret files that were named but do not exist (an optional key missing from a mounted Secret).
    public var missingSecretFiles: [String] = []

    /// The log formats.
    public enum LogFormat: String, Sendable, CaseIterable {
        case json
        case text
    }

    /// The defaults.
    public init() {}

    /// The environment variable each option falls back to.
    public static let environmentNames: [String: String] = [
        "host": "GATEHOUSE_HOST", "port": "GATEHOUSE_PORT", "database": "GATEHOUSE_DATABASE",
        "log-format": "GATEHOUSE_LOG_FORMAT", "log-level": "GATEHOUSE_LOG_LEVEL",
        "audit-retention": "GATEHOUSE_AUDIT_RETENTION", "rollback-ttl": "GATEHOUSE_ROLLBACK_TTL",
        "storage-timeout": "GATEHOUSE_STORAGE_TIMEOUT", "maintenance-interval": "GATEHOUSE_MAINTENANCE_INTERVAL",
        "idle-timeout": "GATEHOUSE_IDLE_TIMEOUT", "synchronous": "GATEHOUSE_SYNCHRONOUS",
        "access-file": "GATEHOUSE_ACCESS_FILE", "namespace-regexp": "GATEHOUSE_NAMESPACE_REGEXP",
        "flagger-token": "GATEHOUSE_FLAGGER_TOKEN", "slack-signing-secret": "GATEHOUSE_SLACK_SIGNING_SECRET",
        "flagger-token-file": "GATEHOUSE_FLAGGER_TOKEN_FILE",
        "notifications-file": "GATEHOUSE_NOTIFICATIONS_FILE", "link-secret": "GATEHOUSE_LINK_SECRET",
        "link-secret-file": "GATEHOUSE_LINK_SECRET_FILE", "notification-interval": "GATEHOUSE_NOTIFICATION_INTERVAL",
        "notification-retry-base": "GATEHOUSE_NOTIFICATION_RETRY_BASE", "max-canaries": "GATEHOUSE_MAX_CANARIES",
        "protect-metrics": "GATEHOUSE_PROTECT_METRICS",
        "forget-canaries-after": "GATEHOUSE_FORGET_CANARIES_AFTER",
        "slack-signing-secret-file": "GATEHOUSE_SLACK_SIGNING_SECRET_FILE",
    ]

    /// Builds the arguments from flags (by option name, as typed) falling back to `GATEHOUSE_*` variables, then defaults.
    public init(flags: [String: String], environment: [String: String]) throws(ValidationError) {
        func value(_ option: String) -> String? {
            flags[option] ?? Self.environmentNames[option].flatMap { environment[$0] }.flatMap { $0.isEmpty ? nil : $0 }
        }
        func duration(_ option: String) throws(ValidationError) -> TimeInterval? {
            try value(option).map { text throws(ValidationError) in
                try DurationText.seconds(from: text, field: "--\(option)")
            }
        }
        if let host = value("host") { self.host = host }
        if let text = value("port") {
            guard let port = Int(text), (0...65535).contains(port) else {
                throw ValidationError("--port '\(text)' is not a port number from 0 to 65535")
            }
            self.port = port
        }
        if let path = value("database") { databasePath = path }
        if let text = value("log-format") {
            guard let format = LogFormat(rawValue: text) else {
                throw ValidationError("--log-format must be json or text")
            }
            logFormat = format
        }
        if let text = value("log-level") {
            guard let level = Logger.Level(rawValue: text.lowercased()) else {
                throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
            }
            logLevel = level
        }
        if let seconds = try duration("audit-retention") { auditRetention = seconds }
        if let seconds = try duration("rollback-ttl") { rollbackTTL = seconds }
        if let seconds = try duration("storage-timeout") { storageTimeout = seconds }
        if let seconds = try duration("maintenance-interval") { maintenanceInterval = seconds }
        if let seconds = try duration("idle-timeout") { idleTimeout = seconds }
        if let seconds = try duration("forget-canaries-after") { forgetCanariesAfter = seconds }
        if let text = value("protect-metrics") {
            switch text.lowercased() {
            case "true", "1", "yes": protectMetrics = true
            case "false", "0", "no": protectMetrics = false
            default: throw ValidationError("--protect-metrics must be true or false")
            }
        }
        if let text = value("max-canaries") {
            guard let count = Int(text), count >= 1 else {
                throw ValidationError("--max-canaries '\(text.prefix(20))' is not a whole number of at least 1")
            }
            maximumCanaries = count
        }
        accessFile = value("access-file")
        namespaceRegexp = value("namespace-regexp")
        // A secret can be given directly or, better, as a file (a mounted Kubernetes Secret); a named
        // file that does not exist leaves the feature off and is reported at start.
        func secret(_ option: String) throws(ValidationError) -> String? {
            if let direct = value(option) { return direct }
            guard let path = value("\(option)-file") else { return nil }
            guard let data = FileManager.default.contents(atPath: path) else {
                missingSecretFiles.append(path)
                return nil
            }
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty else { throw ValidationError("--\(option)-file \(path) is empty") }
            return text
        }
        flaggerToken = try secret("flagger-token")
        slackSigningSecret = try secret("slack-signing-secret")
        linkSecret = try secret("link-secret")
        notificationsFile = value("notifications-file")
        if let seconds = try duration("notification-interval") { notificationInterval = seconds }
        if let seconds = try duration("notification-retry-base") { notificationRetryBase = seconds }
        if let text = value("synchronous") {
            switch text.lowercased() {
            case "normal": synchronousFull = false
            case "full": synchronousFull = true
            default: throw ValidationError("--synchronous must be normal or full")
            }
        }
    }
}
