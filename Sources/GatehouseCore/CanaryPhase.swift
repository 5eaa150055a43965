/// A Flagger canary phase, kept as Flagger spells it; unknown phases from newer Flagger versions pass through.
public struct CanaryPhase: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// Flagger's spelling of the phase.
    public let rawValue: String

    /// Wraps a phase as Flagger sent it.
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let initializing = CanaryPhase(rawValue: "Initializing")
    public static let initialized = CanaryPhase(rawValue: "Initialized")
    public static let waiting = CanaryPhase(rawValue: "Waiting")
    public static let progressing = CanaryPhase(rawValue: "Progressing")
    public static let waitingPromotion = CanaryPhase(rawValue: "WaitingPromotion")
    public static let promoting = CanaryPhase(rawValue: "Promoting")
    public static let finalising = CanaryPhase(rawValue: "Finalising")
    public static let succeeded = CanaryPhase(rawValue: "Succeeded")
    public static let failed = CanaryPhase(rawValue: "Failed")
    public static let terminating = CanaryPhase(rawValue: "Terminating")
    public static let terminated = CanaryPhase(rawValue: "Terminated")

    /// Every phase Flagger v1.44 sets, in the order a rollout goes through them.
    public static let known: [CanaryPhase] = [
        .initializing, .initialized, .waiting, .progressing, .waitingPromotion, .promoting, .finalising, .succeeded,
        .failed, .terminating, .terminated,
    ]

    /// Phases in which a rollout is under way, so a rollback request can still fire.
    public var isRollingOut: Bool {
        [.waiting, .progressing, .waitingPromotion, .promoting, .finalising].contains(self)
    }

    /// Phases that end a rollout; reporting one closes the canary's once-gates.
    public var endsRollout: Bool { self == .succeeded || self == .failed }

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
