import Foundation

/// The JSON body Flagger POSTs to every webhook; unknown fields are ignored, as Flagger adds fields over time.
public struct FlaggerPayload: Sendable, Equatable, Decodable {
    /// The canary's name.
    public var name: String
    /// The canary's namespace.
    public var namespace: String
    /// The canary's phase; absent in loadtester-style calls made by hand.
    public var phase: CanaryPhase?
    /// The revision Flagger names; none when it sends none or, as old versions do, an empty one.
    public var checksum: Revision?
    /// The webhook's metadata; for `event` hooks it carries `eventMessage`, `eventType` and `timestamp`.
    public var metadata: [String: String]?

    /// Creates a payload, as Flagger would send it.
    public init(
        name: String, namespace: String, phase: CanaryPhase? = nil, checksum: Revision? = nil,
        metadata: [String: String]? = nil
    ) {
        self.name = name
        self.namespace = namespace
        self.phase = phase
        self.checksum = checksum
        self.metadata = metadata
    }

    private enum CodingKeys: String, CodingKey {
        case name, namespace, phase, checksum, metadata
    }

    /// Decodes Flagger's JSON: an empty `checksum` is no revision.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        namespace = try container.decode(String.self, forKey: .namespace)
        phase = try container.decodeIfPresent(CanaryPhase.self, forKey: .phase)
        checksum = Revision(try container.decodeIfPresent(String.self, forKey: .checksum))
        metadata = try container.decodeIfPresent([String: String].self, forKey: .metadata)
    }

    /// The validated canary identity the payload names, in `cluster` (empty: the unnamed one).
    public func canaryID(cluster: String = "") throws(InvalidInput) -> CanaryID {
        try CanaryID(cluster: cluster, namespace: namespace, name: name)
    }

    /// Flagger's event message, for `event` hooks.
    public var eventMessage: String? { metadata?["eventMessage"] }

    /// Flagger's event type (`Normal` or `Warning`), for `event` hooks.
    public var eventType: String? { metadata?["eventType"] }
}
