import Foundation
import GatehouseStore
import Hummingbird
import Logging

/// Builds the whole service from its arguments: opens the database, wires the router, adds upkeep.
public func buildApplication(_ arguments: ServerArguments, logger: Logger) async throws -> some ApplicationProtocol {
    let database = try GateStore.openDatabase(
        atPath: arguments.databasePath, busyTimeout: arguments.storageTimeout,
        synchronousFull: arguments.synchronousFull)
    let store = try GateStore(writer: database, logger: logger)
    logger.info(
        "database ready",
        metadata: ["path": "\(arguments.databasePath)", "canaries": "\(store.canaries().count)"])
    logger.warning(
        "no access control is configured: anyone who can reach this service can open gates, as with the loadtester")
    let router = buildRouter(
        store: store, settings: GateSettings(rollbackTTL: arguments.rollbackTTL), metrics: GatehouseMetrics())
    var app = Application(
        router: router,
        server: .http1(configuration: .init(idleTimeout: .milliseconds(Int64(arguments.idleTimeout * 1000)))),
        configuration: .init(address: .hostname(arguments.host, port: arguments.port), serverName: "gatehouse"),
        logger: logger)
    app.addServices(
        MaintenanceService(
            store: store, interval: arguments.maintenanceInterval, auditRetention: arguments.auditRetention,
            logger: logger))
    return app
}

/// The router of every endpoint, given every dependency.
public func buildRouter(store: GateStore, settings: GateSettings, metrics: GatehouseMetrics)
    -> Router<GatehouseRequestContext>
{
    let router = Router(context: GatehouseRequestContext.self)
    let checker = GateChecker(store: store, metrics: metrics)
    router.add(middleware: MetricsMiddleware(metrics: metrics))
    router.add(middleware: ErrorMiddleware())
    router.addRoutes(HealthController(store: store, metrics: metrics).endpoints)
    router.addRoutes(LoadtesterController(store: store, checker: checker).fixedEndpoints)
    router.group("v1/canaries").addRoutes(
        CanaryController(store: store, settings: settings, metrics: metrics).endpoints)
    router.group("v1/events").addRoutes(AuditController(store: store).endpoints)
    router.group("v1/freezes").addRoutes(FreezeController(store: store).endpoints)

    let flagger = router.group().add(middleware: FlaggerPayloadMiddleware()).group(context: FlaggerRequestContext.self)
    flagger.group("v1/flagger").addRoutes(FlaggerController(store: store, checker: checker).endpoints)
    flagger.addRoutes(LoadtesterController(store: store, checker: checker).endpoints)
    return router
}
