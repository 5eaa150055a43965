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
    /// How long a canary nobody acted on is remembered after Flagger's last call.
    let forgetCanariesAfter: TimeInterval
    let logger: Logger

    /// What checks observed is saved at least this often, between rounds: in small batches rather
    /// than one large one per round (on PostgreSQL the other replicas take each batch in).
    static let observationInterval: TimeInterval = 1

    func run() async throws {
        var lastPrune = Date.distantPast
        var lastForget = Date.distantPast
        var lastRound = Date()
        let step = min(interval, Self.observationInterval)
        while !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown {
                    try await Task.sleep(for: .seconds(step))
                }
            } catch {
                break
            }
            let now = Date()
            guard now.timeIntervalSince(lastRound) >= interval - step / 2 else {
                do {
                    try await store.saveObservations()
                } catch {
                    logger.warning("saving observations failed; retrying", metadata: ["error": "\(error)"])
                }
                continue
            }
            lastRound = now
            // Pruning and forgetting look at everything: hourly, and once a minute (or as often as
            // a shorter --forget-canaries-after needs) are enough.
            let forget = now.timeIntervalSince(lastForget) >= min(60, forgetCanariesAfter)
            await tick(now: now, prune: now.timeIntervalSince(lastPrune) >= 3600, forget: forget)
            if now.timeIntervalSince(lastPrune) >= 3600 { lastPrune = now }
            if forget { lastForget = now }
        }
        logger.info("shutting down: finishing requests in flight and saving the last observations")
        do {
            try await store.saveObservations()
        } catch {
            logger.warning("could not save the last observations on shutdown", metadata: ["error": "\(error)"])
        }
    }

    /// One round of upkeep; failures are logged and retried next round.
    func tick(now: Date, prune: Bool, forget: Bool = true) async {
        guard await store.probe(at: now) else { return }
        do {
            try await store.expireDueGates(at: now)
            try await store.saveObservations()
            if forget {
                let forgotten = try await store.forgetUntouchedCanaries(
                    notSeenSince: now.addingTimeInterval(-forgetCanariesAfter))
                if forgotten > 0 {
                    logger.info("forgot canaries nobody acted on", metadata: ["count": .stringConvertible(forgotten)])
                }
            }
            if prune {
                let removed = try await store.pruneAudit(olderThan: now.addingTimeInterval(-auditRetention))
                if removed > 0 {
                    logger.info("pruned old audit entries", metadata: ["count": .stringConvertible(removed)])
                }
            }
        } catch {
            logger.warning("maintenance failed; retrying next round", metadata: ["error": "\(error)"])
        }
    }
}
