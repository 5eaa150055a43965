import Foundation
import GatehouseCore
import Logging

/// Everything `gatehouse serve` can be told, with its defaults. Each option is declared once, in
/// `ServeOption.all`: its flag, environment variable, default, help and how it sets these fields.
public struct ServerArguments: Sendable, Equatable {
    /// The address to listen on.
    public var host = "0.0.0.0"
    /// The port to listen on; 0 picks a free one.
    public var port = 8080
    /// The SQLite file; created and migrated if missing.
    public var databasePath = "gatehouse.sqlite"
    /// `json` (one object a line) or `text`; nil: text when standard output is a terminal, JSON otherwise.
    public var logFormat: LogFormat?
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
    /// How long a client connection may go without sending a complete request head.
    public var idleTimeout: TimeInterval = 60
    /// How long a request's body may take to arrive after its head.
    public var requestTimeout: TimeInterval = 30
    /// How many connections are served at once; nil: as many as the descriptor limit allows.
    public var maximumConnections: Int?
    /// Whether each commit is synced to the device (survives power loss) rather than to the OS (survives a crash).
    public var synchronousFull = false
    /// The PostgreSQL password, when `databasePath` is a URL without one.
    public var databasePassword: String?
    /// The access file (scoped tokens, Slack users and channels); none means no access control.
    public var accessFile: String?
    /// The guardrails policy file (re-read on change or SIGHUP); no rules without one.
    public var policyFile: String?
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
    /// Whether `/` serves the dashboard.
    public var dashboard = true
    /// The key dashboard sessions are signed with; none: a random one each start (sessions end
    /// with the process, and replicas do not share them).
    public var sessionSecret: String?
    /// How long a dashboard sign-in lasts.
    public var sessionTTL: TimeInterval = 12 * 3600
    /// Addresses (CIDR blocks or single addresses) of authenticating proxies whose user header is trusted.
    public var trustedProxies: [String] = []
    /// The header in which a trusted proxy names the signed-in person.
    public var proxyUserHeader = "X-Forwarded-User"
    /// The header in which a trusted proxy lists that person's groups (comma-separated).
    public var proxyGroupsHeader = "X-Forwarded-Groups"
    /// The OpenID provider people sign in to the dashboard with; none: no single sign-on.
    public var oidcIssuer: String?
    /// The dashboard's client id at that provider (also the audience of its ID tokens).
    public var oidcClientID: String?
    /// The client secret; none for a public client (PKCE alone).
    public var oidcClientSecret: String?
    /// The ID-token claim that names the person.
    public var oidcNameClaim = "email"
    /// The ID-token claim that lists the person's groups.
    public var oidcGroupsClaim = "groups"
    /// The scopes asked for.
    public var oidcScopes = "openid email profile"
    /// Where the provider sends people back; none: this service's address as the browser used it.
    public var oidcRedirectURL: String?
    /// Secret files that were named but do not exist (an optional key missing from a mounted Secret).
    public var missingSecretFiles: [String] = []

    /// The log formats.
    public enum LogFormat: String, Sendable, CaseIterable {
        case json
        case text
    }

    /// The defaults.
    public init() {}

    /// Builds the arguments from flags (by option name, without dashes) falling back to each
    /// option's `GATEHOUSE_*` variable, then to the defaults. An unknown flag is refused.
    public init(flags: [String: String], environment: [String: String]) throws(InvalidInput) {
        let known = Set(ServeOption.all.map(\.name))
        if let unknown = flags.keys.sorted().first(where: { !known.contains($0) }) {
            throw InvalidInput("there is no option --\(unknown); `gatehouse serve --help` lists them")
        }
        for option in ServeOption.all {
            let fromEnvironment = environment[option.environmentName].flatMap { $0.isEmpty ? nil : $0 }
            if let value = flags[option.name] ?? fromEnvironment {
                try option.apply(&self, value)
            }
        }
    }

    /// Builds the arguments from `serve`'s command line (`--name value` or `--name=value`).
    public init(commandLine: [String], environment: [String: String]) throws(InvalidInput) {
        var flags: [String: String] = [:]
        var rest = commandLine[...]
        while let word = rest.popFirst() {
            guard word.hasPrefix("--"), word.count > 2 else {
                throw InvalidInput("'\(word.prefix(40))' is not an option; `gatehouse serve --help` lists them")
            }
            let flag = word.dropFirst(2)
            if let equals = flag.firstIndex(of: "=") {
                flags[String(flag[..<equals])] = String(flag[flag.index(after: equals)...])
            } else if let value = rest.popFirst() {
                flags[String(flag)] = value
            } else {
                throw InvalidInput("--\(flag) needs a value")
            }
        }
        try self.init(flags: flags, environment: environment)
    }
}

/// One option of `gatehouse serve`: its flag, its environment variable, its default and help, and
/// how its value sets the arguments.
public struct ServeOption: Sendable {
    /// The flag without its dashes, e.g. `storage-timeout`.
    public let name: String
    /// What the value is, as help shows it.
    public let value: String
    /// One line of help, ending with the default where there is one.
    public let help: String
    let apply: @Sendable (inout ServerArguments, String) throws(InvalidInput) -> Void

    /// `GATEHOUSE_` and the name in capitals, e.g. `GATEHOUSE_STORAGE_TIMEOUT`.
    public var environmentName: String {
        "GATEHOUSE_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    init(
        _ name: String, _ value: String, _ help: String,
        apply: @escaping @Sendable (inout ServerArguments, String) throws(InvalidInput) -> Void
    ) {
        self.name = name
        self.value = value
        self.help = help
        self.apply = apply
    }

    /// An option whose value is a duration such as `90s`, `5m`, `24h` or `90d`.
    static func duration(
        _ name: String, _ help: String, _ field: any WritableKeyPath<ServerArguments, TimeInterval> & Sendable
    ) -> ServeOption {
        ServeOption(name, "duration", help) { arguments, text throws(InvalidInput) in
            arguments[keyPath: field] = try DurationText.seconds(from: text, field: "--\(name)")
        }
    }

    /// An option whose value is `true` or `false`.
    static func switchable(
        _ name: String, _ help: String, _ field: any WritableKeyPath<ServerArguments, Bool> & Sendable
    )
        -> ServeOption
    {
        ServeOption(name, "true|false", help) { arguments, text throws(InvalidInput) in
            switch text.lowercased() {
            case "true", "1", "yes": arguments[keyPath: field] = true
            case "false", "0", "no": arguments[keyPath: field] = false
            default: throw InvalidInput("--\(name) must be true or false")
            }
        }
    }

    /// An option whose value is a whole number of at least `minimum`.
    static func count(
        _ name: String, _ help: String, minimum: Int, maximum: Int = .max,
        _ set: @escaping @Sendable (inout ServerArguments, Int) -> Void
    ) -> ServeOption {
        ServeOption(name, "count", help) { arguments, text throws(InvalidInput) in
            guard let count = Int(text), (minimum...maximum).contains(count) else {
                let range = maximum == .max ? "of at least \(minimum)" : "from \(minimum) to \(maximum)"
                throw InvalidInput("--\(name) '\(text.prefix(20))' is not a whole number \(range)")
            }
            set(&arguments, count)
        }
    }

    /// An option whose value is kept as given.
    static func text(
        _ name: String, _ value: String, _ help: String,
        _ field: any WritableKeyPath<ServerArguments, String> & Sendable
    ) -> ServeOption {
        ServeOption(name, value, help) { arguments, text in arguments[keyPath: field] = text }
    }

    /// An option whose value is kept as given; unset, it stays nil.
    static func text(
        _ name: String, _ value: String, _ help: String,
        _ field: any WritableKeyPath<ServerArguments, String?> & Sendable
    ) -> ServeOption {
        ServeOption(name, value, help) { arguments, text in arguments[keyPath: field] = text }
    }

    /// A secret given directly, and the option naming a file that holds it (a mounted Kubernetes
    /// Secret key). The direct value wins; a named file that does not exist leaves the feature off
    /// and is reported at start; an empty one is refused.
    static func secret(
        _ name: String, _ help: String, _ field: any WritableKeyPath<ServerArguments, String?> & Sendable
    ) -> [ServeOption] {
        [
            text(name, "secret", "\(help) (prefer the environment variable or the file)", field),
            ServeOption("\(name)-file", "path", "A file holding the \(name.replacingOccurrences(of: "-", with: " ")).")
            {
                arguments, path throws(InvalidInput) in
                guard arguments[keyPath: field] == nil else { return }
                guard let data = FileManager.default.contents(atPath: path) else {
                    arguments.missingSecretFiles.append(path)
                    return
                }
                let secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard !secret.isEmpty else { throw InvalidInput("--\(name)-file \(path) is empty") }
                arguments[keyPath: field] = secret
            },
        ]
    }

    /// Every option of `gatehouse serve`, in the order help lists them.
    public static let all: [ServeOption] =
        [
            text("host", "address", "Address to listen on (default 0.0.0.0).", \.host),
            count("port", "Port to listen on; 0 picks a free one (default 8080).", minimum: 0, maximum: 65535) {
                $0.port = $1
            },
            text(
                "database", "path|url",
                "SQLite database file, created if missing, or postgres://USER@HOST:PORT/DATABASE?sslmode=MODE to share PostgreSQL between replicas (default ./gatehouse.sqlite).",
                \.databasePath),
            ServeOption(
                "log-format", "json|text", "Log format (default: text at a terminal, json otherwise, as in a pod)."
            ) {
                arguments, text throws(InvalidInput) in
                guard let format = ServerArguments.LogFormat(rawValue: text) else {
                    throw InvalidInput("--log-format must be json or text")
                }
                arguments.logFormat = format
            },
            ServeOption(
                "log-level", "level",
                "Lowest level logged: trace, debug, info, notice, warning, error or critical (default info)."
            ) {
                arguments, text throws(InvalidInput) in
                guard let level = Logger.Level(rawValue: text.lowercased()) else {
                    throw InvalidInput(
                        "--log-level must be one of trace, debug, info, notice, warning, error, critical")
                }
                arguments.logLevel = level
            },
            duration("audit-retention", "How long audit entries are kept (default 90d).", \.auditRetention),
            duration(
                "rollback-ttl", "How long a rollback request stays pending without a ttl (default 1h).", \.rollbackTTL),
            duration(
                "storage-timeout",
                "How long a write may wait for the database before failing closed with 503 (default 5s).",
                \.storageTimeout),
            duration(
                "maintenance-interval", "How often expiry, pruning and the storage probe run (default 5s).",
                \.maintenanceInterval),
            duration(
                "idle-timeout", "How long a connection may go without sending a complete request head (default 60s).",
                \.idleTimeout),
            duration(
                "request-timeout", "How long a request's body may take to arrive after its head (default 30s).",
                \.requestTimeout),
            count(
                "max-connections",
                "Connections served at once; more get 503 (default: the descriptor limit less \(DescriptorLimit.reserved), at most 10000).",
                minimum: 1
            ) { $0.maximumConnections = $1 },
            ServeOption(
                "synchronous", "normal|full",
                "normal: a commit survives a crash of the process; full: also a power loss, slower (default normal)."
            ) {
                arguments, text throws(InvalidInput) in
                switch text.lowercased() {
                case "normal": arguments.synchronousFull = false
                case "full": arguments.synchronousFull = true
                default: throw InvalidInput("--synchronous must be normal or full")
                }
            },
            text(
                "access-file", "path",
                "Access file: scoped tokens, Slack users and channels (re-read on change or SIGHUP).", \.accessFile),
            text(
                "policy-file", "path",
                "Guardrails policy file: approval rules, automatic gates, rollout slots, dependencies, deploy windows (re-read on change or SIGHUP).",
                \.policyFile),
            text(
                "namespace-regexp", "regexp",
                "Serve only canaries in namespaces this regular expression matches (as flagger-loadtester).",
                \.namespaceRegexp),
            switchable(
                "protect-metrics", "true: /metrics needs a bearer token from the access file (default false).",
                \.protectMetrics),
            count(
                "max-canaries",
                "How many canaries that only ever asked are remembered; a new name that only asks beyond that is refused; canaries acted on, or that passed a gate or sent an event, are not counted (default 50000).",
                minimum: 1
            ) {
                $0.maximumCanaries = $1
            },
            duration(
                "forget-canaries-after",
                "Forget a canary nobody acted on this long after Flagger's last call about it (default 24h).",
                \.forgetCanariesAfter),
        ]
        + secret("flagger-token", "Require this secret in Flagger's webhook metadata.token", \.flaggerToken)
        + secret(
            "slack-signing-secret", "The Slack app's signing secret; enables /v1/slack/command", \.slackSigningSecret)
        + [
            text(
                "notifications-file", "path",
                "Notifications file: Slack and webhook targets, cluster name, approval link base URL.",
                \.notificationsFile)
        ]
        + secret("link-secret", "The secret approval links are signed with", \.linkSecret)
        + secret(
            "database-password", "The PostgreSQL password, when the URL has none (PGPASSWORD also works)",
            \.databasePassword)
        + [
            switchable("dashboard", "Serve the web dashboard at / (default true).", \.dashboard),
            duration("session-ttl", "How long a dashboard sign-in lasts (default 12h).", \.sessionTTL),
            ServeOption(
                "trusted-proxies", "cidr,...",
                "Authenticating proxies (e.g. 10.0.0.0/8,127.0.0.1) whose user header names the dashboard's viewer (default none)."
            ) {
                arguments, text throws(InvalidInput) in
                let blocks = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                for block in blocks { _ = try AddressBlock(block, option: "--trusted-proxies") }
                arguments.trustedProxies = blocks
            },
            text(
                "proxy-user-header", "header",
                "The header a trusted proxy names the signed-in person in (default X-Forwarded-User).",
                \.proxyUserHeader),
            text(
                "proxy-groups-header", "header",
                "The header a trusted proxy lists that person's groups in, comma-separated (default X-Forwarded-Groups).",
                \.proxyGroupsHeader),
        ]
        + secret(
            "session-secret", "The key dashboard sessions are signed with; replicas need the same one",
            \.sessionSecret)
        + [
            text(
                "oidc-issuer", "url",
                "Single sign-on for the dashboard: the OpenID provider's issuer URL (discovery at /.well-known/openid-configuration); needs --access-file, whose people: and groups: say who may do what.",
                \.oidcIssuer),
            text("oidc-client-id", "id", "The dashboard's client id at the OpenID provider.", \.oidcClientID),
            text(
                "oidc-name-claim", "claim", "The ID-token claim that names the person (default email).",
                \.oidcNameClaim),
            text(
                "oidc-groups-claim", "claim", "The ID-token claim that lists the person's groups (default groups).",
                \.oidcGroupsClaim),
            text(
                "oidc-scopes", "scopes", "The scopes asked for at sign-in (default \"openid email profile\").",
                \.oidcScopes),
            text(
                "oidc-redirect-url", "url",
                "Where the provider returns people after sign-in (register it there); default: this service's address as the browser reached it, /sign-in/sso/callback.",
                \.oidcRedirectURL),
        ]
        + secret("oidc-client-secret", "The dashboard's client secret at the OpenID provider", \.oidcClientSecret)
        + [
            duration(
                "notification-interval", "How often the notification outbox is looked at (default 1s).",
                \.notificationInterval),
            duration(
                "notification-retry-base",
                "First retry delay of a failed notification; it doubles each time (default 1s).",
                \.notificationRetryBase),
        ]

    /// The options as `gatehouse serve --help` shows them: each flag with its environment
    /// variable, then its help wrapped to fit 80 columns.
    public static var helpText: String {
        var lines = ["OPTIONS (also read from the environment variable shown; a flag wins):"]
        for option in all {
            lines.append("  --\(option.name) <\(option.value)>  [\(option.environmentName)]")
            var line = "      "
            for word in option.help.split(separator: " ") {
                if line.count + word.count > 78 {
                    lines.append(line)
                    line = "      "
                }
                line += (line.count > 6 ? " " : "") + word
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
