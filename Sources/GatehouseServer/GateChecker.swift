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
        let decision: Decision
        do {
            decision = try await store.check(check)
        } catch let error as StoreError {
            if case .unavailable = error { metrics.recordUnavailableCheck(check.gate) }
            log(check, decision: nil, context: context, level: .warning, "check failed closed")
            throw error
        }
        metrics.recordCheck(check.gate, decision)
        // The first approval or refusal of a rollout, and every change, at info; repeats at debug.
        // The log line is only built when it is written: this is the hot path.
        if !decision.facts.isEmpty {
            log(
                check, decision: decision, context: context, level: .info, decision.message,
                extra: ["changes": "\(decision.facts.map(\.action.rawValue))"])
        } else if context.logger.logLevel <= .debug {
            log(check, decision: decision, context: context, level: .debug, decision.message)
        }
        return decision
    }

    private func log(
        _ check: Check, decision: Decision?, context: some RequestContext, level: Logger.Level, _ message: String,
        extra: Logger.Metadata = [:]
    ) {
        var metadata: Logger.Metadata = [
            "canary": "\(check.canary)", "gate": "\(check.gate.rawValue)", "route": "\(context.endpointPath ?? "")",
            "checksum": "\(check.checksum)", "decision": "\(decision?.verdict.rawValue ?? "unavailable")",
        ]
        metadata.merge(extra) { $1 }
        context.logger.log(level: level, "\(message)", metadata: metadata)
    }
}
