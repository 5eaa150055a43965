import Foundation
import GatehouseStore
import Logging
import ServiceLifecycle

/// Background upkeep, drained on SIGTERM: closes expired gates, saves what checks observed,
/// prunes old audit entries and probes storage so checks fail closed when it stops answering.
struct MaintenanceService: Service {
    let store: GateStore
    let interval: TimeInterval
    let auditRetention: TimeInterval
    let logger: Logger

    func run() async throws {
        var lastPrune = Date.distantPast
        while !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown {
                    try await Task.sleep(for: .seconds(interval))
                }
            } catch {
                break
            }
            let now = Date()
            await tick(now: now, prune: now.timeIntervalSince(lastPrune) >= 3600)
            if now.timeIntervalSince(lastPrune) >= 3600 { lastPrune = now }
        }
        do {
            try await store.saveObservations()
        } catch {
            logger.warning("could not save the last observations on shutdown", metadata: ["error": "\(error)"])
        }
    }

    /// One round of upkeep; failures are logged and retried next round.
    func tick(now: Date, prune: Bool) async {
        guard await store.probe(at: now) else { return }
        do {
            try await store.expireDueGates(at: now)
            try await store.saveObservations()
            if prune {
                let removed = try await store.pruneAudit(olderThan: now.addingTimeInterval(-auditRetention))
                if removed > 0 { logger.info("pruned old audit entries", metadata: ["count": "\(removed)"]) }
            }
        } catch {
            logger.warning("maintenance failed; retrying next round", metadata: ["error": "\(error)"])
        }
    }
}
