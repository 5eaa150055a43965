import Foundation

/// What Gatehouse knows of one canary: what Flagger last reported, and its gates.
public struct Canary: Sendable, Equatable {
    /// The canary's identity.
    public let id: CanaryID
    /// The phase Flagger last reported, by a check or an event.
    public var lastPhase: CanaryPhase?
    /// The checksum Flagger last sent.
    public var lastChecksum: Revision?
    /// When Flagger last called about this canary.
    public var lastSeen: Date?
    /// Flagger's last event message.
    public var lastMessage: String? {
        get { message?.text(of: id) }
        set { message = newValue.map { EventMessage($0, of: id) } }
    }
    /// Flagger's last event type (`Normal` or `Warning`).
    public var lastEventType: String?
    /// The checksum Flagger's last event carried.
    public var lastMessageChecksum: Revision?
    /// The gates anyone has touched; the others are closed.
    public var gates: GateSet
    /// Where the canary is in its rollout.
    public var rollout: Rollout
    /// The canary weight Flagger's events last reported ("Advance podinfo.test canary weight 20"; 0
    /// when an analysis starts or a rollout ends); nil until an event says it.
    public var trafficWeight: Int?
    /// When a rollout of this canary last succeeded, as far as Gatehouse saw; nil if none has.
    public var succeededAt: Date?
    /// What its webhooks' metadata says of it for the policy (group, team, dependencies).
    public var labels: CanaryLabels {
        get { seldom.first?.labels ?? CanaryLabels() }
        set { updateSeldom { $0.labels = newValue } }
    }
    /// Who asked for this release to be approved (a CI job announcing it, or people), who may
    /// then not approve it where a rule counts approvals.
    public var requestedBy: [String] {
        get { seldom.first?.requestedBy ?? [] }
        set { updateSeldom { $0.requestedBy = newValue } }
    }
    /// When the first of them asked.
    public var requestedAt: Date? {
        get { seldom.first?.requestedAt }
        set { updateSeldom { $0.requestedAt = newValue } }
    }
    /// Since when the canary waits at confirm-rollout for a rollout slot, and for nothing else.
    public var queuedAt: Date? {
        get { seldom.first?.queuedAt }
        set { updateSeldom { $0.queuedAt = newValue } }
    }
    /// Rules lifted for this rollout.
    public var overrides: [Override] {
        get { seldom.first?.overrides ?? [] }
        set { updateSeldom { $0.overrides = newValue } }
    }
    /// What dry-run rules would have done differently in this rollout (`enforce: false`).
    public var dryRuns: [DryRun] {
        get { seldom.first?.dryRuns ?? [] }
        set { updateSeldom { $0.dryRuns = newValue } }
    }

    /// `lastMessage`, with the canary's own name taken out (see `EventMessage`).
    private var message: EventMessage?

    /// What only some canaries have (labels, who asked, a place in the queue, overrides).
    private struct Seldom: Sendable, Equatable {
        var labels = CanaryLabels()
        var requestedBy: [String] = []
        var requestedAt: Date?
        var queuedAt: Date?
        var overrides: [Override] = []
        var dryRuns: [DryRun] = []
    }

    /// The seldom fields when any is set, as the one element of an array (none otherwise): a
    /// canary without them carries 8 bytes for them instead of 88, and one with them shares a
    /// single copy until it changes. At 100,000 canaries, 8 MB of what memory keeps (docs/scale.md).
    private var seldom: [Seldom] = []

    private mutating func updateSeldom(_ change: (inout Seldom) -> Void) {
        var fields = seldom.first ?? Seldom()
        change(&fields)
        seldom = fields == Seldom() ? [] : [fields]
    }

    /// A canary nobody has reported on yet.
    public init(id: CanaryID) {
        self.id = id
        self.gates = GateSet()
        self.rollout = Rollout()
    }

    /// The state of one gate; gates never touched are closed.
    public func gate(_ kind: GateKind) -> Gate {
        gates[kind] ?? .closed(kind)
    }

    /// Whether a Flagger call would change what is observed: a new phase or checksum, or a
    /// `lastSeen` (or, for a progress check, `lastProgressCheckAt`) older than `resolution`. Checks
    /// repeat every few seconds; most tell nothing new, and what they tell is saved in the background.
    public func wouldObserve(
        phase: CanaryPhase?, checksum: Revision?, progressCheck: Bool = false, at now: Date,
        resolution: TimeInterval = 1
    ) -> Bool {
        if let phase, phase != lastPhase { return true }
        if let checksum, checksum != lastChecksum { return true }
        if progressCheck && rollout.isInProgress {
            guard let last = rollout.lastProgressCheckAt, now.timeIntervalSince(last) < resolution else { return true }
        }
        guard let lastSeen else { return true }
        return now.timeIntervalSince(lastSeen) >= resolution
    }

    /// Records what a Flagger call says of the canary.
    public mutating func observe(phase: CanaryPhase?, checksum: Revision?, progressCheck: Bool = false, at now: Date) {
        if let phase { lastPhase = phase }
        if let checksum { lastChecksum = checksum }
        if progressCheck && rollout.isInProgress { rollout.lastProgressCheckAt = now }
        lastSeen = now
    }

    /// Whether `other` differs from this canary in what must be written before answering (gates and
    /// rollout), rather than only in what is observed and saved in the background.
    public func differsDurably(from other: Canary) -> Bool {
        if gates != other.gates || labels != other.labels || requestedBy != other.requestedBy
            || requestedAt != other.requestedAt
            || queuedAt != other.queuedAt || overrides != other.overrides || dryRuns != other.dryRuns
            || trafficWeight != other.trafficWeight || succeededAt != other.succeededAt
        {
            return true
        }
        var mine = rollout
        var theirs = other.rollout
        mine.lastProgressCheckAt = nil
        theirs.lastProgressCheckAt = nil
        return mine != theirs
    }

    /// Flagger's last event message if it is about the revision Flagger last called about (an
    /// event without a checksum, from an old Flagger, counts as current): the previous rollout's
    /// "Canary failed!" is not the new rollout's news.
    public var currentMessage: String? {
        guard let lastMessage else { return nil }
        guard let about = lastMessageChecksum, let latest = lastChecksum else {
            return lastMessage
        }
        return about == latest ? lastMessage : nil
    }

    /// Whether the canary only ever asked: nobody opened or closed a gate of it, Flagger reported no
    /// event of it, and no check of it was last approved. Only checks (Flagger's, or a stranger's,
    /// when no Flagger secret is set) made it known; `--max-canaries` counts only these, and they
    /// are forgotten once they stop asking.
    public var isUntouched: Bool {
        message == nil && gates.values.allSatisfy { $0.actor == nil && !$0.isOpen && $0.lastVerdict != .approved }
    }

    /// Whether the canary may be forgotten: nobody acted on it and Flagger has not called about it since `cutoff`.
    public func isForgettable(notSeenSince cutoff: Date) -> Bool {
        isUntouched && (lastSeen ?? .distantPast) < cutoff
    }

    /// Whether the canary is known to be in a rollout (admitted and not yet ended).
    public var isRollingOut: Bool { rollout.isInProgress }

    /// The gate whose refusal the canary is waiting on, and since when: the latest first refusal
    /// still standing, unless the rollout has moved past that gate since (Flagger reported
    /// promoting after a refused promotion check, say).
    public var waitingOn: (gate: GateKind, since: Date)? {
        gates.values
            .filter { $0.kind.isAdvanceGate && $0.lastVerdict == .refused && !rollout.hasPassed($0.kind) }
            .compactMap { gate in gate.lastVerdictAt.map { (gate: gate.kind, since: $0) } }
            .max { $0.since < $1.since }
    }

    /// What the canary waits on, and what Flagger's next check of that gate would be told now:
    /// the same decision a check makes, with the freezes, the policy and the other canaries given.
    public func waiting(in surroundings: Surroundings, at now: Date) -> Waiting? {
        guard let (kind, since) = waitingOn else { return nil }
        let check = Check(
            canary: id, gate: kind, checksum: gate(kind).lastVerdictChecksum ?? lastChecksum, phase: lastPhase)
        let decision = deciding(check, in: surroundings, at: now).decision
        return Waiting(
            gate: kind, since: since, cause: decision.cause, message: decision.message, hold: decision.hold)
    }
}

/// What a canary waits on: the gate Flagger was refused at, since when, and what stops it now
/// (`open` when the gate has been opened since: Flagger's next check passes).
public struct Waiting: Sendable, Equatable, Codable {
    /// The gate.
    public var gate: GateKind
    /// Since the first refusal.
    public var since: Date
    /// What stops it now.
    public var cause: Decision.Cause
    /// What Flagger's next check would be told, in one sentence.
    public var message: String
    /// The policy rule holding it, if one does: which, since when, what would unblock it.
    public var hold: Hold?

    /// Creates one.
    public init(gate: GateKind, since: Date, cause: Decision.Cause, message: String, hold: Hold? = nil) {
        self.hold = hold
        self.gate = gate
        self.since = since
        self.cause = cause
        self.message = message
    }
}
