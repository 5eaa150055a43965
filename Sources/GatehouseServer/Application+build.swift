import Foundation
import GatehouseCore
import GatehouseStore
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import ServiceLifecycle
import UnixSignals

/// Builds the whole service from its arguments: opens the database, wires the router, adds upkeep.
public func buildApplication(_ arguments: ServerArguments, logger: Logger) async throws -> some ApplicationProtocol {
    logger.info(
        "Gatehouse \(gatehouseVersion) starting",
        metadata: ["version": "\(gatehouseVersion)", "pid": .stringConvertible(getpid())])
    let notifications = try arguments.notificationsFile.map { path throws(InvalidInput) in
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InvalidInput("the notifications file \(path) cannot be read")
        }
        return try NotificationSettings.parse(String(decoding: data, as: UTF8.self))
    }
    let signer = arguments.linkSecret.map(LinkSigner.init(secret:))
    if let notifications, notifications.linkBaseURL != nil, signer == nil {
        logger.warning(
            "linkBaseURL is set but no link secret: messages carry no approval links; set GATEHOUSE_LINK_SECRET")
    }
    let renderer = notifications.map {
        NotificationRenderer(
            settings: $0, signer: signer, needsToken: arguments.accessFile != nil,
            slackInteractive: arguments.slackSigningSecret != nil)
    }
    let policyFile = try arguments.policyFile.map { path throws(InvalidInput) in
        try PolicyControl(path: path, logger: logger)
    }
    let policy: @Sendable () -> Policy = { policyFile?.content ?? .none }
    let store: GateStore
    let location: String
    if PostgresLocation.isPostgres(arguments.databasePath) {
        let postgres = try PostgresLocation(
            url: arguments.databasePath,
            password: arguments.databasePassword ?? ProcessInfo.processInfo.environment["PGPASSWORD"])
        location = postgres.description
        store = try await GateStore.postgres(
            postgres, storageTimeout: arguments.storageTimeout, maximumCanaries: arguments.maximumCanaries,
            logger: logger, notifications: renderer, policy: policy)
    } else {
        location = arguments.databasePath
        let database = try GateStore.openDatabase(
            atPath: arguments.databasePath, busyTimeout: arguments.storageTimeout,
            synchronousFull: arguments.synchronousFull)
        store = try GateStore(
            writer: database, storageTimeout: arguments.storageTimeout, maximumCanaries: arguments.maximumCanaries,
            logger: logger, notifications: renderer, policy: policy)
    }
    if let policyFile {
        logger.info(
            "policy file read",
            metadata: ["path": "\(policyFile.path)", "rules": .stringConvertible(policy().rules.count)])
        for warning in policy().warnings { logger.warning("policy file: \(warning)") }
    }
    let known = try await store.canaryCounts().all
    logger.info("database ready", metadata: ["database": "\(location)", "canaries": .stringConvertible(known)])
    for path in arguments.missingSecretFiles {
        logger.notice("secret file \(path) does not exist; the feature it configures stays off")
    }
    if arguments.accessFile == nil {
        logger.warning(
            "no access control is configured: anyone who can reach this service can open gates, as with the loadtester; set GATEHOUSE_ACCESS_FILE"
        )
    }
    if arguments.dashboard {
        if case .failure(let problem) = DashboardPages.bundled.library {
            logger.error("the dashboard cannot be shown: \(problem.message)")
        }
        if arguments.sessionSecret == nil && arguments.accessFile != nil {
            logger.notice(
                "dashboard sign-ins are signed with a random key: they end when this process does; set GATEHOUSE_SESSION_SECRET (replicas need the same one)"
            )
        }
    }
    let metrics = GatehouseMetrics(notificationTargets: notifications?.targets.map(\.name) ?? [])
    var security = try SecuritySettings(arguments, logger: logger)
    security.links = signer
    security.cluster = notifications?.cluster ?? "kubernetes"
    let connections = ConnectionLimit(served: try connectionCap(arguments), metrics: metrics)
    let router = buildRouter(
        store: store, settings: GateSettings(rollbackTTL: arguments.rollbackTTL), metrics: metrics, security: security,
        connections: connections)
    var app = Application(
        responder: HeadResponder(inner: router.buildResponder()),
        server: gatehouseHTTPServer(
            idleTimeout: .milliseconds(Int64(arguments.idleTimeout * 1000)),
            requestTimeout: .milliseconds(Int64(arguments.requestTimeout * 1000)),
            connections: connections),
        configuration: .init(
            address: .hostname(arguments.host, port: arguments.port), serverName: "gatehouse",
            availableConnectionsDelegate: connections.acceptance),
        logger: logger)
    app.addServices(
        MaintenanceService(
            store: store, interval: arguments.maintenanceInterval, auditRetention: arguments.auditRetention,
            forgetCanariesAfter: arguments.forgetCanariesAfter, logger: logger))
    let watched: [any Reloadable] = (security.access.map { [$0] } ?? []) + (policyFile.map { [$0] } ?? [])
    if !watched.isEmpty {
        app.addServices(FileWatcher(files: watched, interval: .seconds(2)))
    }
    if let notifications {
        app.addServices(
            OutboxDelivery(
                store: store, metrics: metrics, interval: .milliseconds(Int64(arguments.notificationInterval * 1000)),
                retryBase: arguments.notificationRetryBase, reminderAfter: notifications.reminderAfter, logger: logger))
    }
    return app
}

/// Runs the service until SIGTERM or SIGINT. A graceful stop finishes the requests in flight and
/// saves the last observations; one that has not finished within `gracefulStop` (a request still
/// waiting on storage that stopped answering) is cut short by cancelling what is left, so the
/// process always ends within Kubernetes' default grace period of 30 seconds. What was not
/// acknowledged does not take effect later (see `WriteTicket`).
public func runUntilStopped(
    _ app: some ApplicationProtocol, logger: Logger, gracefulStop: Duration = .seconds(20)
) async throws {
    var configuration = ServiceGroupConfiguration(
        services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    configuration.maximumGracefulShutdownDuration = gracefulStop
    configuration.maximumCancellationDuration = .seconds(5)
    try await ServiceGroup(configuration: configuration).run()
}

/// How many connections are served at once: as asked, or as many as the descriptor limit (raised
/// to its hard limit first) leaves, up to 10,000.
private func connectionCap(_ arguments: ServerArguments) throws(InvalidInput) -> Int {
    let limit = DescriptorLimit.raise()
    let allowed = DescriptorLimit.connectionsAllowed(by: limit)
    guard let asked = arguments.maximumConnections else { return min(allowed, 10_000) }
    guard asked <= allowed else {
        throw InvalidInput(
            "--max-connections \(asked) is more than the descriptor limit (\(limit)) leaves for connections (\(allowed)); raise the limit (ulimit -n) or ask for fewer"
        )
    }
    return asked
}

/// The router of every endpoint, given every dependency.
public func buildRouter(
    store: GateStore, settings: GateSettings, metrics: GatehouseMetrics,
    security: SecuritySettings = SecuritySettings(),
    connections: ConnectionLimit? = nil
) -> Router<GatehouseRequestContext> {
    let router = Router(context: GatehouseRequestContext.self)
    let checker = GateChecker(store: store, metrics: metrics)
    let accessGuard = security.accessGuard
    let operations = GateOperations(store: store, settings: settings, metrics: metrics, accessGuard: accessGuard)
    let loadtester = LoadtesterController(operations: operations, access: accessGuard)
    router.add(middleware: RequestMetricsMiddleware(metrics: metrics))
    router.add(middleware: ReadingLaneMiddleware(lane: .shared))
    router.add(middleware: ErrorMiddleware())
    router.add(middleware: UnservedMethodMiddleware())
    router.add(middleware: TransferCodingMiddleware())
    if let connections { router.add(middleware: ClientPresenceMiddleware(connections: connections)) }
    router.addRoutes(HealthController(store: store, metrics: metrics).endpoints)
    router.addRoutes(loadtester.fixedEndpoints)
    router.group("v1/links").addRoutes(
        LinkController(
            store: store, operations: operations, signer: security.links, accessGuard: accessGuard,
            cluster: security.cluster
        ).endpoints)
    router.group("v1/slack").addRoutes(
        SlackController(
            store: store, operations: operations, access: security.access, accessGuard: accessGuard,
            signingSecret: security.slackSigningSecret, links: security.links
        ).endpoints)

    // Routes for people and scripts: a bearer token when an access file is configured.
    let operators = router.group().add(
        middleware: BearerAuthMiddleware(access: security.access, identity: security.identity))
    let metricsRoutes = MetricsController(
        store: store, metrics: metrics, access: accessGuard, isProtected: security.protectsMetrics
    ).endpoints
    if security.protectsMetrics {
        operators.addRoutes(metricsRoutes)
    } else {
        router.addRoutes(metricsRoutes)
    }
    operators.group("v1/canaries").addRoutes(
        CanaryController(store: store, operations: operations, access: accessGuard).endpoints)
    operators.group("v1/events").addRoutes(AuditController(store: store, access: accessGuard).endpoints)
    operators.group("v1/policy").addRoutes(PolicyController(store: store, access: accessGuard).endpoints)
    operators.group("v1/whoami").addRoutes(WhoAmIController(access: accessGuard).endpoints)
    operators.group("v1/freezes").addRoutes(
        FreezeController(store: store, operations: operations, access: accessGuard).endpoints)
    router.group()
        .add(
            middleware: BearerAuthMiddleware(
                access: security.access, identity: security.identity, anonymousActor: LoadtesterController.actor)
        )
        .add(middleware: FlaggerPayloadMiddleware(accessGuard: accessGuard))
        .group(context: FlaggerRequestContext.self)
        .addRoutes(loadtester.changeEndpoints)

    // Routes Flagger calls: its payload, the namespace filter and, if set, the metadata secret.
    let flagger = router.group()
        .add(middleware: FlaggerPayloadMiddleware(accessGuard: accessGuard, secret: security.flaggerSecret))
        .group(context: FlaggerRequestContext.self)
    flagger.addRoutes(CheckController(checker: checker).endpoints)
    flagger.group("v1/flagger").addRoutes(FlaggerController(store: store).endpoints)

    // The dashboard's pages: a session cookie, or a trusted proxy's user header, names the viewer.
    if let dashboard = security.dashboard {
        let pages = DashboardPages.bundled
        let controller = DashboardController(
            store: store, operations: operations, access: accessGuard, accessControl: security.access,
            sessions: dashboard.sessions, pages: pages,
            singleSignOn: dashboard.singleSignOn.map {
                SingleSignOn(settings: $0, keys: security.identity, sessions: dashboard.sessions)
            })
        router.addRoutes(controller.assetEndpoints)
        router.group()
            .add(
                middleware: DashboardSignIn(
                    access: security.access, sessions: dashboard.sessions, proxies: dashboard.proxies, pages: pages,
                    store: store)
            )
            .addRoutes(controller.pageEndpoints)
    }
    return router
}

/// The dashboard's sessions, the proxies trusted to name its viewers, and its single sign-on.
public struct DashboardSettings: Sendable {
    let sessions: DashboardSessions
    let proxies: TrustedProxies?
    /// How people sign in through an OpenID provider; nil: they do not.
    var singleSignOn: SingleSignOn.Settings?

    /// Sessions signed with `sessionSecret` (a random key without one), lasting `sessionLifetime`;
    /// proxies at `trustedProxies` name the viewer in `userHeader` and their groups in `groupsHeader`.
    public init(
        sessionSecret: String? = nil, sessionLifetime: TimeInterval = 12 * 3600, trustedProxies: [String] = [],
        userHeader: String = "X-Forwarded-User", groupsHeader: String = "X-Forwarded-Groups"
    ) throws(InvalidInput) {
        sessions = DashboardSessions(secret: sessionSecret, lifetime: sessionLifetime)
        for (option, header) in [("--proxy-user-header", userHeader), ("--proxy-groups-header", groupsHeader)]
        where HTTPField.Name(header) == nil {
            throw InvalidInput("\(option) '\(header.prefix(60))' is not a valid header name")
        }
        proxies =
            trustedProxies.isEmpty
            ? nil
            : TrustedProxies(
                blocks: try trustedProxies.map { block throws(InvalidInput) in
                    try AddressBlock(block, option: "--trusted-proxies")
                }, userHeader: userHeader, groupsHeader: groupsHeader)
    }
}

/// Who may call what: the access file, the namespace filter, Flagger's secret and Slack's signing secret.
public struct SecuritySettings: Sendable {
    /// The access file in force; nil means no access control.
    public var access: AccessControl?
    /// `--namespace-regexp`.
    public var namespaces: NamespaceFilter?
    /// The secret Flagger sends in `metadata.token`.
    public var flaggerToken: String?
    /// The Slack app's signing secret.
    public var slackSigningSecret: String?
    /// Signs and checks approval links; nil disables them.
    public var links: LinkSigner?
    /// The cluster's name, shown on approval pages.
    public var cluster = "kubernetes"
    /// Whether `/metrics` needs a bearer token from the access file.
    public var protectsMetrics = false
    /// The dashboard at `/`; nil turns it off.
    public var dashboard: DashboardSettings? = try? DashboardSettings()
    /// The keys of the identity providers workloads' tokens and single sign-on come from.
    var identity = IssuerKeys(logger: Logger(label: "gatehouse.identity"))

    /// No access control, as the loadtester.
    public init(
        access: AccessControl? = nil, namespaces: NamespaceFilter? = nil, flaggerToken: String? = nil,
        slackSigningSecret: String? = nil
    ) {
        self.access = access
        self.namespaces = namespaces
        self.flaggerToken = flaggerToken
        self.slackSigningSecret = slackSigningSecret
    }

    /// The namespace filter as every route applies it.
    var accessGuard: AccessGuard { AccessGuard(namespaces: namespaces) }

    /// Flagger's secret as every check applies it.
    var flaggerSecret: FlaggerSecret { FlaggerSecret(flaggerToken, access: access) }

    /// Reads what the arguments name; a broken access file or expression stops the start.
    public init(_ arguments: ServerArguments, logger: Logger) throws(InvalidInput) {
        access = try arguments.accessFile.map { path throws(InvalidInput) in
            try AccessControl(path: path, logger: logger)
        }
        namespaces = try arguments.namespaceRegexp.map { pattern throws(InvalidInput) in try NamespaceFilter(pattern)
        }
        flaggerToken = arguments.flaggerToken
        slackSigningSecret = arguments.slackSigningSecret
        if arguments.protectMetrics && access == nil {
            throw InvalidInput("--protect-metrics needs --access-file: its tokens are what /metrics asks for")
        }
        protectsMetrics = arguments.protectMetrics
        identity = IssuerKeys(logger: logger)
        dashboard =
            arguments.dashboard
            ? try DashboardSettings(
                sessionSecret: arguments.sessionSecret, sessionLifetime: arguments.sessionTTL,
                trustedProxies: arguments.trustedProxies, userHeader: arguments.proxyUserHeader,
                groupsHeader: arguments.proxyGroupsHeader)
            : nil
        if let issuer = arguments.oidcIssuer {
            guard access != nil else {
                throw InvalidInput(
                    "--oidc-issuer needs --access-file: its people: and groups: say what people who sign in may do")
            }
            guard let url = URL(string: issuer), url.scheme == "https" || url.scheme == "http", url.host != nil else {
                throw InvalidInput("--oidc-issuer must be the provider's issuer URL (https://…)")
            }
            guard let clientID = arguments.oidcClientID, !clientID.isEmpty else {
                throw InvalidInput("--oidc-issuer needs --oidc-client-id: the dashboard's client id at \(issuer)")
            }
            guard arguments.dashboard else {
                throw InvalidInput("--oidc-issuer signs people in to the dashboard, which --dashboard false turns off")
            }
            dashboard?.singleSignOn = SingleSignOn.Settings(
                issuer: issuer, clientID: clientID, clientSecret: arguments.oidcClientSecret,
                nameClaim: arguments.oidcNameClaim, groupsClaim: arguments.oidcGroupsClaim,
                scopes: arguments.oidcScopes, redirectURL: arguments.oidcRedirectURL)
        }
    }
}
