import Foundation

/// The kinds of entry in the audit trail.
public enum AuditAction: String, Sendable, Codable, CaseIterable {
    /// Someone opened a gate (or requested a rollback).
    case opened
    /// Someone closed a gate, or its last step was used.
    case closed
    /// A gate reached its expiry and closed.
    case expired
    /// A once-gate bound itself to the rollout it approved first.
    case bound
    /// A once-gate closed because its rollout ended or another rollout asked.
    case reset
    /// A check used one of a gate's approved steps.
    case consumed
    /// A revision reached traffic checks without passing the rollout gate, and is held.
    case held
    /// The first check of a rollout that passed.
    case approved
    /// The first check of a rollout that was refused.
    case refused
    /// Flagger reported an event.
    case event
    /// Flagger's post-rollout hook reported the outcome.
    case postRollout = "post-rollout"
    /// Someone set a freeze.
    case freezeSet = "freeze-set"
    /// Someone lifted a freeze.
    case freezeLifted = "freeze-lifted"
    /// A notification could not be delivered before its deadline.
    case notificationFailed = "notification-failed"
    /// Someone asked for a release to be approved (and so may not approve it).
    case requested
    /// Someone lifted a policy rule for one canary's rollout.
    case overridden
    /// A dry-run rule began or stopped differing from what was answered (what it would have held).
    case dryRun = "dry-run"
}

/// One entry of the audit trail.
public struct AuditEntry: Sendable, Equatable, Codable, Identifiable {
    /// Increasing number; newer entries have larger ids.
    public var id: Int64
    /// When it happened.
    public var at: Date
    /// The canary's cluster, or for a freeze the cluster frozen; nil when no cluster is named.
    public var cluster: String?
    /// The canary's namespace, or for a freeze, the namespace frozen (nil for all).
    public var namespace: String?
    /// The canary's name, if the entry concerns one canary.
    public var name: String?
    /// The gate concerned, if any.
    public var gate: GateKind?
    /// What happened.
    public var action: AuditAction
    /// Who did it: a user or token, `flagger`, or `gatehouse` itself.
    public var actor: String
    /// Why, or Flagger's message.
    public var reason: String?
    /// The rollout checksum concerned.
    public var checksum: Revision?
    /// The canary's phase at the time, as Flagger reported it.
    public var phase: CanaryPhase?

    /// Creates an entry.
    public init(
        id: Int64, at: Date, cluster: String? = nil, namespace: String?, name: String?, gate: GateKind?,
        action: AuditAction, actor: String,
        reason: String?, checksum: Revision?, phase: CanaryPhase?
    ) {
        self.id = id
        self.at = at
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.gate = gate
        self.action = action
        self.actor = actor
        self.reason = reason
        self.checksum = checksum
        self.phase = phase
    }
}

/// Narrows a search of the audit trail: by who, what and when (each optional).
public struct AuditFilter: Sendable, Equatable {
    /// Entries by this actor only.
    public var actor: String?
    /// Entries of this kind only.
    public var action: AuditAction?
    /// Entries at or after this time.
    public var since: Date?
    /// Entries before this time.
    public var until: Date?

    /// A filter; nothing given matches every entry.
    public init(actor: String? = nil, action: AuditAction? = nil, since: Date? = nil, until: Date? = nil) {
        self.actor = actor
        self.action = action
        self.since = since
        self.until = until
    }
}
