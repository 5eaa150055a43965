import Foundation
import GatehouseCore

/// A canary as the API returns it.
public struct CanaryStatus: Codable, Sendable, Equatable {
    /// What the canary waits on, and since when.
    public struct Waiting: Codable, Sendable, Equatable {
        /// The gate.
        public var gate: GateKind
        /// Since when.
        public var since: Date
        /// What stops it now: `freeze`, `held`, `closed`, `expired`, or `open` when the gate was
        /// opened since (Flagger's next check passes); nil from older services.
        public var cause: Decision.Cause?
        /// What Flagger's next check of the gate would be told.
        public var message: String?
        /// The policy rule holding it, if one does.
        public var hold: Hold?
    }

    /// The canary's cluster; nil when no cluster is named.
    public var cluster: String?
    /// The canary's namespace.
    public var namespace: String
    /// The canary's name.
    public var name: String
    /// The phase Flagger last reported.
    public var phase: CanaryPhase?
    /// The checksum Flagger last sent.
    public var checksum: String?
    /// When Flagger last called about it.
    public var lastSeen: Date?
    /// Flagger's last event message.
    public var message: String?
    /// Whether a rollout is under way.
    public var inRollout: Bool
    /// The gate the canary waits on.
    public var waitingOn: Waiting?
    /// Each gate by name.
    public var gates: [String: GateStatus]
    /// Where the canary is in its rollout (nil from services older than this field).
    public var rollout: RolloutStatus?
    /// What an operator change just did, in one sentence (only in the answer to that change).
    public var outcome: String?
    /// A warning about that change: the canary has never called, and which canaries it may have
    /// meant (only in the answer to that change).
    public var notice: String?
    /// What the guardrails policy knows of it (its webhooks' labels), when anything.
    public var policy: PolicyState?

    /// What the guardrails policy knows of a canary.
    public struct PolicyState: Codable, Sendable, Equatable {
        /// What its gate webhooks' metadata said of it.
        public var labels: CanaryLabels?
    }

    /// Creates a status, as the API would return it.
    public init(
        namespace: String, name: String, phase: CanaryPhase?, checksum: String?, lastSeen: Date?, message: String?,
        inRollout: Bool, waitingOn: Waiting?, gates: [String: GateStatus], rollout: RolloutStatus? = nil
    ) {
        self.rollout = rollout
        self.namespace = namespace
        self.name = name
        self.phase = phase
        self.checksum = checksum
        self.lastSeen = lastSeen
        self.message = message
        self.inRollout = inRollout
        self.waitingOn = waitingOn
        self.gates = gates
    }

    /// One gate's state.
    public func gate(_ kind: GateKind) -> GateStatus? { gates[kind.rawValue] }

    /// `namespace/name`, preceded by `cluster/` when the cluster is named.
    public var displayName: String { [cluster, namespace, name].compactMap { $0 }.joined(separator: "/") }
}

/// Where a canary is in its rollout, as the service tracks it from Flagger's calls.
public struct RolloutStatus: Codable, Sendable, Equatable {
    /// `idle`, `waiting`, `admitted`, `progressing`, `promoting` or `ended`.
    public var stage: Rollout.Stage
    /// The checksum the rollout's checks carry.
    public var revision: String?
    /// A revision held because it skipped the rollout gate.
    public var unapprovedRevision: String?
    /// Why the canary is held, if it is.
    public var held: String?
    /// When a rollout of it last succeeded.
    public var lastSucceededAt: Date?

    /// Creates a rollout status.
    public init(stage: Rollout.Stage, revision: String? = nil, unapprovedRevision: String? = nil, held: String? = nil) {
        self.stage = stage
        self.revision = revision
        self.unapprovedRevision = unapprovedRevision
        self.held = held
    }
}

/// One gate as the API returns it.
public struct GateStatus: Codable, Sendable, Equatable {
    /// `open`, `approving` (opened, but a rule waits for more approvals) or `closed`.
    public var state: String
    /// `once` or `sticky`.
    public var mode: GateMode
    /// The rollout a once-gate is bound to.
    public var boundChecksum: String?
    /// When it closes by itself.
    public var expiresAt: Date?
    /// Traffic steps left.
    public var remainingSteps: Int?
    /// Who changed it last.
    public var actor: String?
    /// Why.
    public var reason: String?
    /// When.
    public var changedAt: Date?
    /// Where a rule counts approvals: "1 of 2 approvals: alice; waiting for one of: bob, carol".
    public var approvalStatus: String?
    /// Where a rule counts approvals: how many count now, and how many it needs.
    public var approvalsCounted: Int?
    public var approvalsRequired: Int?

    /// Whether the gate is open and, where a rule counts approvals, has them all: Flagger's next check passes it.
    public var isOpen: Bool { state == "open" }
    /// Whether the gate was opened but a rule waits for more approvals.
    public var isApproving: Bool { state == "approving" }
}

/// The guardrails policy in force, as `GET /v1/policy` returns it.
/// Who the service takes a client for (`GET /v1/whoami`).
public struct Identity: Codable, Sendable, Equatable {
    /// What a grant allows, where.
    public struct Grant: Codable, Sendable, Equatable {
        public var clusters: [String]
        public var namespaces: [String]
        public var actions: [String]
    }

    /// person, workload, shared token or declared.
    public var kind: String
    public var name: String
    /// The name the audit trail records.
    public var actor: String
    public var groups: [String]
    /// Whether rules that count approvals count this client's.
    public var countsAsPerson: Bool
    /// What it may do; nil when nothing is restricted.
    public var grants: [Grant]?
}

public struct PolicyStatus: Codable, Sendable, Equatable {
    /// One rule.
    public struct Rule: Codable, Sendable, Equatable {
        public var name: String
        public var line: Int
        public var requirement: String
        public var gates: [GateKind]
        public var summary: String
        public var overrideBy: [String]?
        /// For a window: whether gates may pass now, and when that changes.
        public var passesNow: Bool?
        public var changesAt: Date?
    }

    /// The rules, in the file's order.
    public var rules: [Rule]
}

/// The list of canaries.
struct CanaryList: Codable {
    var canaries: [CanaryStatus]
    /// The `after` value of the next page, if there is one.
    var next: String?
}

/// A page of the audit trail.
public struct AuditPage: Codable, Sendable {
    /// The entries, newest first.
    public var events: [AuditEntry]
    /// The `before` value of the next page.
    public var next: Int64?
}

/// The list of freezes.
struct FreezeList: Codable {
    var freezes: [Freeze]
}

/// The error body of the operator API.
struct ErrorBody: Codable {
    var error: String
    var message: String
}

/// What the CLI asks when it opens a gate.
public struct OpenOptions: Sendable, Equatable {
    /// Why.
    public var reason: String?
    /// A duration such as `15m`.
    public var ttl: String?
    /// An RFC 3339 time.
    public var expiresAt: String?
    /// Traffic steps: a number of checks, or the rest of the rollout.
    public var steps: TrafficSteps?
    /// Keep it open across rollouts.
    public var sticky: Bool
    /// For a rollback outside a known rollout.
    public var force: Bool

    /// Creates options; all optional.
    public init(
        reason: String? = nil, ttl: String? = nil, expiresAt: String? = nil, steps: TrafficSteps? = nil,
        sticky: Bool = false, force: Bool = false
    ) {
        self.reason = reason
        self.ttl = ttl
        self.expiresAt = expiresAt
        self.steps = steps
        self.sticky = sticky
        self.force = force
    }

    var body: [String: JSONValue] {
        var body: [String: JSONValue] = [:]
        if let reason { body["reason"] = .string(reason) }
        if let ttl { body["ttl"] = .string(ttl) }
        if let expiresAt { body["expiresAt"] = .string(expiresAt) }
        switch steps {
        case .count(let count): body["steps"] = .number(count)
        case .rest: body["steps"] = .string("rest")
        case nil: break
        }
        if sticky { body["sticky"] = .bool(true) }
        if force { body["force"] = .bool(true) }
        return body
    }
}

/// The few JSON values request bodies need.
enum JSONValue: Encodable {
    case string(String)
    case number(Int)
    case bool(Bool)

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        }
    }
}

/// `GET /v1/version`.
public struct ServiceVersion: Codable, Sendable, Equatable {
    /// The service's version, e.g. `0.1.0`.
    public var version: String

    /// Creates one.
    public init(version: String) { self.version = version }
}
