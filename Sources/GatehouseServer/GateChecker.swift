import GatehouseCore
import GatehouseStore
import Hummingbird
import Logging

/// Decides checks for every route that checks a gate (Flagger's and the loadtester's), counting
/// each decision and logging it with the request's id, route and canary.
struct GateChecker: Sendable {
    let store: GateStore
    let metrics: GatehouseMetrics

    func check(_ check: Check, context: some RequestContext) async throws -> Decision {
        var logger = context.logger
        logger[metadataKey: "canary"] = "\(check.canary)"
        logger[metadataKey: "gate"] = "\(check.gate.rawValue)"
        logger[metadataKey: "route"] = "\(context.endpointPath ?? "")"
        let decision: Decision
        do {
            decision = try await store.check(check)
        } catch let error as StoreError {
            if case .unavailable = error { metrics.recordUnavailableCheck(check.gate) }
            logger.warning("check failed closed", metadata: ["decision": "unavailable"])
            throw error
        }
        metrics.recordCheck(check.gate, decision)
        logger[metadataKey: "decision"] = "\(decision.verdict.rawValue)"
        logger[metadataKey: "checksum"] = "\(check.checksum)"
        // The first approval or refusal of a rollout, and every change, at info; repeats at debug.
        if decision.facts.isEmpty {
            logger.debug("\(decision.message)")
        } else {
            logger.info("\(decision.message)", metadata: ["changes": "\(decision.facts.map(\.action.rawValue))"])
        }
        return decision
    }
}
