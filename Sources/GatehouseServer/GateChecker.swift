import GatehouseCore
import GatehouseStore
import Hummingbird
import Logging

/// Decides checks for every route that checks a gate (Flagger's and the loadtester's), counting
/// each decision and logging it with the request's id, route and canary.
struct GateChecker: Sendable {
    let store: GateStore
    let metrics: GatehouseMetrics

    /// Decides a check, writing first when it changes anything.
    func check(_ check: Check, context: some RequestContext) async throws -> Decision {
        let decision: Decision
        do {
            decision = try await store.check(check)
        } catch let error as StoreError {
            if case .unavailable = error { metrics.recordUnavailableCheck(check.gate) }
            log(
                check, decision: nil, logger: context.logger, route: context.endpointPath, level: .warning,
                "check failed closed")
            throw error
        }
        record(check, decision, logger: context.logger, route: context.endpointPath)
        return decision
    }

    private func record(_ check: Check, _ decision: Decision, logger: Logger, route: String?) {
        metrics.recordCheck(check.gate, decision)
        // Every change a check makes is logged at info by the store with its audit entry; the
        // check itself at debug. The log line is only built when it is written: this is the hot path.
        if logger.logLevel <= .debug {
            log(
                check, decision: decision, logger: logger, route: route, level: .debug, decision.message,
                extra: decision.facts.isEmpty
                    ? [:] : ["changes": .array(decision.facts.map { "\($0.action.rawValue)" })])
        }
    }

    private func log(
        _ check: Check, decision: Decision?, logger: Logger, route: String?, level: Logger.Level, _ message: String,
        extra: Logger.Metadata = [:]
    ) {
        var metadata: Logger.Metadata = [
            "canary": "\(check.canary)", "gate": "\(check.gate.rawValue)", "route": "\(route ?? "")",
            "checksum": "\(check.checksum?.text ?? "")", "decision": "\(decision?.verdict.rawValue ?? "unavailable")",
        ]
        metadata.merge(extra) { $1 }
        logger.log(level: level, "\(message)", metadata: metadata)
    }
}
