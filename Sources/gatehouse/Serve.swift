import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseServer
import Hummingbird
import Logging

/// `gatehouse serve`: runs the service until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the Gatehouse service.",
        discussion: """
            Every option falls back to an environment variable (GATEHOUSE_HOST, GATEHOUSE_PORT, GATEHOUSE_DATABASE, \
            GATEHOUSE_LOG_FORMAT, GATEHOUSE_LOG_LEVEL, GATEHOUSE_AUDIT_RETENTION, GATEHOUSE_ROLLBACK_TTL, \
            GATEHOUSE_STORAGE_TIMEOUT, GATEHOUSE_MAINTENANCE_INTERVAL, GATEHOUSE_IDLE_TIMEOUT, GATEHOUSE_SYNCHRONOUS, \
            GATEHOUSE_ACCESS_FILE, GATEHOUSE_NAMESPACE_REGEXP, GATEHOUSE_FLAGGER_TOKEN(_FILE), \
            GATEHOUSE_SLACK_SIGNING_SECRET(_FILE), GATEHOUSE_NOTIFICATIONS_FILE, GATEHOUSE_LINK_SECRET(_FILE), \
            GATEHOUSE_NOTIFICATION_INTERVAL, GATEHOUSE_NOTIFICATION_RETRY_BASE, GATEHOUSE_MAX_CANARIES, \
            GATEHOUSE_FORGET_CANARIES_AFTER, GATEHOUSE_PROTECT_METRICS).

            Example:
              gatehouse serve --port 8080 --database /data/gatehouse.sqlite
            """
    )

    @Option(help: "Address to listen on (default 0.0.0.0).") var host: String?
    @Option(help: "Port to listen on (default 8080; 0 picks a free port).") var port: String?
    @Option(help: "SQLite database file, created if missing (default ./gatehouse.sqlite).") var database: String?
    @Option(help: "Log format: json or text (default json).") var logFormat: String?
    @Option(help: "Lowest log level (default info).") var logLevel: String?
    @Option(help: "How long audit entries are kept (default 90d).") var auditRetention: String?
    @Option(help: "How long a rollback request stays pending without a ttl (default 1h).") var rollbackTtl: String?
    @Option(help: "How long to wait for the database before failing closed with 503 (default 5s).")
    var storageTimeout: String?
    @Option(help: "How often expiry, pruning and the storage probe run (default 5s).") var maintenanceInterval: String?
    @Option(help: "How long an idle client connection is kept (default 60s).") var idleTimeout: String?
    @Option(help: "normal: a commit survives a crash of the process; full: also a power loss (slower).")
    var synchronous: String?
    @Option(help: "Access file: scoped tokens, Slack users and channels (re-read on change or SIGHUP).")
    var accessFile: String?
    @Option(help: "Serve only canaries in namespaces this regular expression matches (as flagger-loadtester).")
    var namespaceRegexp: String?
    @Option(help: "Require this secret in Flagger's webhook metadata.token (prefer GATEHOUSE_FLAGGER_TOKEN).")
    var flaggerToken: String?
    @Option(help: "The Slack app's signing secret; enables /v1/slack/command (prefer GATEHOUSE_SLACK_SIGNING_SECRET).")
    var slackSigningSecret: String?
    @Option(help: "A file holding the Flagger metadata secret (a mounted Secret key).") var flaggerTokenFile: String?
    @Option(help: "A file holding the Slack signing secret (a mounted Secret key).") var slackSigningSecretFile: String?
    @Option(help: "Notifications file: Slack and webhook targets, cluster name, approval link base URL.")
    var notificationsFile: String?
    @Option(help: "The secret approval links are signed with (prefer GATEHOUSE_LINK_SECRET).") var linkSecret: String?
    @Option(help: "A file holding the link secret (a mounted Secret key).") var linkSecretFile: String?
    @Option(help: "How often the notification outbox is looked at (default 1s).") var notificationInterval: String?
    @Option(help: "First retry delay of a failed notification; it doubles each time (default 1s).")
    var notificationRetryBase: String?
    @Option(help: "true: /metrics needs a bearer token from the access file (default false).")
    var protectMetrics: String?
    @Option(help: "How many canaries are remembered; a new name beyond that is refused (default 50000).")
    var maxCanaries: String?
    @Option(help: "Forget a canary nobody acted on this long after Flagger's last call about it (default 24h).")
    var forgetCanariesAfter: String?

    func run() async throws {
        let flags: [String: String?] = [
            "host": host, "port": port, "database": database, "log-format": logFormat, "log-level": logLevel,
            "audit-retention": auditRetention, "rollback-ttl": rollbackTtl, "storage-timeout": storageTimeout,
            "maintenance-interval": maintenanceInterval, "idle-timeout": idleTimeout, "synchronous": synchronous,
            "access-file": accessFile, "namespace-regexp": namespaceRegexp, "flagger-token": flaggerToken,
            "slack-signing-secret": slackSigningSecret, "flagger-token-file": flaggerTokenFile,
            "slack-signing-secret-file": slackSigningSecretFile, "notifications-file": notificationsFile,
            "link-secret": linkSecret, "link-secret-file": linkSecretFile,
            "notification-interval": notificationInterval,
            "notification-retry-base": notificationRetryBase, "max-canaries": maxCanaries,
            "protect-metrics": protectMetrics,
            "forget-canaries-after": forgetCanariesAfter,
        ]
        let arguments: ServerArguments
        do {
            arguments = try ServerArguments(
                flags: flags.compactMapValues { $0 }, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ArgumentParser.ValidationError("\(error)")
        }
        let level = arguments.logLevel
        switch arguments.logFormat {
        case .json:
            LoggingSystem.bootstrap { label in
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        case .text:
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardOutput(label: label)
                handler.logLevel = level
                return handler
            }
        }
        let logger = Logger(label: "gatehouse")
        let app: any ApplicationProtocol
        do {
            app = try await buildApplication(arguments, logger: logger)
        } catch let error as GatehouseCore.ValidationError {
            throw ArgumentParser.ValidationError(error.message)
        }
        try await app.runService()
    }
}
