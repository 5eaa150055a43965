import CoreMetrics
import Foundation
import GatehouseCore
import GatehouseStore
import Prometheus
import Synchronization

/// Gatehouse's Prometheus metrics, recorded through swift-metrics into one registry per service,
/// so that each test (and each service in a process) counts on its own.
public final class GatehouseMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let checks: [CheckKey: CoreMetrics.Counter]
    private let rollbacksRequested: CoreMetrics.Counter
    private let rollbacksFired: CoreMetrics.Counter
    private let requests = Mutex<[RequestKey: RequestSeries]>([:])

    /// The labels of one check series; a nil verdict is a check storage could not answer.
    private struct CheckKey: Hashable {
        var gate: GateKind
        var verdict: Verdict?

        var decision: String { verdict?.rawValue ?? "unavailable" }
    }

    /// The labels of one HTTP request series.
    struct RequestKey: Hashable {
        var route: String
        var method: String
        var status: Int
    }

    /// The counter and the timer of one HTTP request series.
    struct RequestSeries: Sendable {
        let count: CoreMetrics.Counter
        let duration: CoreMetrics.Timer

        /// Counts one request that took `duration`.
        func record(_ duration: Duration) {
            count.increment()
            self.duration.recordNanoseconds(duration.nanoseconds)
        }
    }

    /// Creates the metrics with an empty registry; each notification target's counters start at zero.
    public init(notificationTargets: [String] = []) {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
        ]
        self.factory = factory
        var checks: [CheckKey: CoreMetrics.Counter] = [:]
        for gate in GateKind.allCases {
            for verdict in [Verdict.approved, .refused, nil] {
                let key = CheckKey(gate: gate, verdict: verdict)
                checks[key] = CoreMetrics.Counter(
                    label: "gatehouse_checks_total", dimensions: [("gate", gate.rawValue), ("decision", key.decision)],
                    factory: factory)
            }
        }
        self.checks = checks
        rollbacksRequested = CoreMetrics.Counter(label: "gatehouse_rollbacks_requested_total", factory: factory)
        rollbacksFired = CoreMetrics.Counter(label: "gatehouse_rollbacks_fired_total", factory: factory)
        CoreMetrics.Gauge(label: "gatehouse_build_info", dimensions: [("version", gatehouseVersion)], factory: factory)
            .record(1)
        for target in notificationTargets {
            for outcome in ["delivered", "retried", "failed"] {
                recordNotification(target: target, outcome: outcome, by: 0)
            }
        }
    }

    /// Counts one check by gate and decision; a rollback's first approval of a rollout counts as fired.
    func recordCheck(_ gate: GateKind, _ decision: Decision) {
        checks[CheckKey(gate: gate, verdict: decision.verdict)]?.increment()
        if gate == .rollback, decision.facts.contains(where: { $0.action == .approved }) {
            rollbacksFired.increment()
        }
    }

    /// Counts a check that storage could not answer (a 503).
    func recordUnavailableCheck(_ gate: GateKind) {
        checks[CheckKey(gate: gate, verdict: nil)]?.increment()
    }

    /// Counts a rollback request.
    func recordRollbackRequested() {
        rollbacksRequested.increment()
    }

    /// Counts one notification delivery attempt by target and outcome (delivered, retried, failed).
    func recordNotification(target: String, outcome: String, by amount: Int = 1) {
        CoreMetrics.Counter(
            label: "gatehouse_notifications_total", dimensions: [("target", target), ("outcome", outcome)],
            factory: factory
        ).increment(by: amount)
    }

    /// A counter without labels.
    func counter(_ label: String) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: label, factory: factory)
    }

    /// A gauge without labels.
    func gauge(_ label: String) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: label, factory: factory)
    }

    /// Counts one HTTP request by route (the route's pattern, never the raw path), method and status.
    func recordRequest(route: String, method: String, status: Int, duration: Duration) {
        requestSeries(RequestKey(route: route, method: method, status: status)).record(duration)
    }

    /// The series of one route, method and status, made on first use; callers on the hot path keep it.
    func requestSeries(_ key: RequestKey) -> RequestSeries {
        requests.withLock { requests in
            if let existing = requests[key] { return existing }
            let created = RequestSeries(
                count: CoreMetrics.Counter(
                    label: "gatehouse_http_requests_total",
                    dimensions: [("route", key.route), ("method", key.method), ("status", String(key.status))],
                    factory: factory),
                duration: CoreMetrics.Timer(
                    label: "gatehouse_http_request_duration_seconds",
                    dimensions: [("route", key.route), ("method", key.method)], factory: factory))
            requests[key] = created
            return created
        }
    }

    /// Sets the gauges that describe the present (freezes, storage, canaries known) and renders
    /// every metric in Prometheus' text format.
    ///
    /// The per-canary series are written straight from memory, only where they say something:
    /// `gatehouse_gate_open` for open gates and `gatehouse_waiting_seconds` for the gate a canary
    /// waits on; only the canaries active or with a gate open are looked at (memory keeps them
    /// apart), so a scrape costs what it shows, not the number of canaries. (Made through the
    /// registry, each series would be a lookup among all the others: quadratic.)
    func render(store: GateStore, now: Date = Date()) async -> String {
        let freezes = (try? await store.freezes(at: now).count) ?? 0
        CoreMetrics.Gauge(label: "gatehouse_freezes_active", factory: factory).record(freezes)
        CoreMetrics.Gauge(label: "gatehouse_storage_up", factory: factory).record(store.isHealthy ? 1 : 0)
        if let pending = await store.pendingNotifications() {
            CoreMetrics.Gauge(label: "gatehouse_notifications_pending", factory: factory).record(pending)
        }
        let count = (try? await store.canaryCounts().all) ?? 0
        CoreMetrics.Gauge(label: "gatehouse_canaries", factory: factory).record(count)
        var text = registry.emitToString()
        var open = "# TYPE gatehouse_gate_open gauge\n"
        var waiting = "# TYPE gatehouse_waiting_seconds gauge\n"
        var dryRuns: [String: Int] = [:]
        for canary in (try? await store.activeOrOpenCanaries()) ?? [] {
            for dryRun in canary.dryRuns {
                let key =
                    "rule=\"\(dryRun.rule)\",gate=\"\(dryRun.gate.rawValue)\",would=\"\(dryRun.wouldHold ? "hold" : "pass")\""
                dryRuns[key, default: 0] += 1
            }
            let anyOpen = canary.gates.values.contains { $0.isEffectivelyOpen(at: now) }
            let waitingOn = canary.waitingOn
            guard anyOpen || waitingOn != nil else { continue }
            let cluster = canary.id.cluster.isEmpty ? "" : "cluster=\"\(canary.id.cluster)\","
            let labels = "\(cluster)namespace=\"\(canary.id.namespace)\",name=\"\(canary.id.name)\",gate=\""
            for (kind, gate) in canary.gates where gate.isEffectivelyOpen(at: now) {
                open += "gatehouse_gate_open{\(labels)\(kind.rawValue)\"} 1\n"
            }
            if let on = waitingOn {
                let seconds = max(now.timeIntervalSince(on.since), 0)
                waiting += "gatehouse_waiting_seconds{\(labels)\(on.gate.rawValue)\"} \(seconds)\n"
            }
        }
        text += open
        text += waiting
        // Per dry-run rule: how many canaries it would now answer otherwise than they were answered.
        text += "# TYPE gatehouse_policy_dry_run_canaries gauge\n"
        for (key, count) in dryRuns.sorted(by: { $0.key < $1.key }) {
            text += "gatehouse_policy_dry_run_canaries{\(key)} \(count)\n"
        }
        text += "# TYPE gatehouse_log_lines_dropped_total counter\n"
        text += "gatehouse_log_lines_dropped_total \(LogOutput.standardOutput.dropped)\n"
        return text
    }
}

extension Duration {
    /// The duration in whole nanoseconds.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
