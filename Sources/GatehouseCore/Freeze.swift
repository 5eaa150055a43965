import Foundation

/// A change freeze: while active, every gate but `rollback` refuses in its scope.
public struct Freeze: Sendable, Equatable, Codable, Identifiable {
    /// The freeze's number, used to lift it.
    public var id: Int64
    /// The cluster frozen, or nil for every cluster.
    public var cluster: String?
    /// The namespace frozen, or nil for every namespace.
    public var namespace: String?
    /// Why deployments are frozen; shown to Flagger and in every refusal.
    public var reason: String
    /// Who set the freeze.
    public var actor: String
    /// When the freeze was set.
    public var createdAt: Date
    /// When the freeze ends by itself, if it does.
    public var endsAt: Date?
    /// When someone lifted the freeze early.
    public var liftedAt: Date?
    /// Who lifted it.
    public var liftedBy: String?

    /// Creates a freeze record.
    public init(
        id: Int64, cluster: String? = nil, namespace: String?, reason: String, actor: String, createdAt: Date,
        endsAt: Date? = nil,
        liftedAt: Date? = nil, liftedBy: String? = nil
    ) {
        self.id = id
        self.cluster = cluster
        self.namespace = namespace
        self.reason = reason
        self.actor = actor
        self.createdAt = createdAt
        self.endsAt = endsAt
        self.liftedAt = liftedAt
        self.liftedBy = liftedBy
    }

    /// Whether the freeze is in force at `now`.
    public func isActive(at now: Date) -> Bool {
        liftedAt == nil && (endsAt.map { $0 > now } ?? true)
    }

    /// What the freeze covers.
    public var area: Area { Area(cluster: cluster, namespace: namespace) }

    /// The sentence Flagger gets when this freeze refuses a check.
    public var refusal: String {
        let scope = area == .everywhere ? "all deployments are frozen" : "deployments to \(area) are frozen"
        let until = endsAt.map { " until \($0.formatted(.iso8601))" } ?? ""
        return "\(scope)\(until) by \(actor): \(reason) (freeze \(id)); lift it with: gatehouse unfreeze \(id)"
    }

    /// The active freeze that applies to a canary, preferring the one set first.
    public static func applying(to canary: CanaryID, among freezes: some Sequence<Freeze>, at now: Date) -> Freeze? {
        freezes.filter { $0.isActive(at: now) && $0.area.contains(canary) }.min { $0.id < $1.id }
    }
}
