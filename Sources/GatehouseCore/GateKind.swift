/// The gates every canary has; each answers one Flagger hook.
public enum GateKind: String, CaseIterable, Sendable, Codable {
    /// Asked by `confirm-rollout`: the new revision may start.
    case rollout
    /// Asked by `confirm-traffic-increase`: the canary weight may go up a step.
    case traffic
    /// Asked by `confirm-promotion`: the canary may be promoted.
    case promotion
    /// Asked by `rollback`: roll the canary back now.
    case rollback
    /// The loadtester's single gate, asked by `/gate/check` for every hook type.
    case shared

    /// The gates Flagger asks through the native `/v1/flagger/…` endpoints.
    public static let flaggerGates: [GateKind] = [.rollout, .traffic, .promotion, .rollback]

    /// The Flagger webhook type whose check this gate answers, if it has one of its own.
    public var hook: String? {
        switch self {
        case .rollout: "confirm-rollout"
        case .traffic: "confirm-traffic-increase"
        case .promotion: "confirm-promotion"
        case .rollback: "rollback"
        case .shared: nil
        }
    }

    /// Whether an active freeze makes this gate refuse; freezes never block a rollback.
    public var isBlockedByFreeze: Bool { self != .rollback }

    /// Whether an open gate of this kind lets Flagger advance (rather than abort).
    public var isAdvanceGate: Bool { self != .rollback }

    /// Parses a gate name as users type it, accepting the hook names too.
    public init(userInput: String) throws(InvalidInput) {
        let lowered = userInput.lowercased()
        if let kind = GateKind(rawValue: lowered) {
            self = kind
        } else if let kind = GateKind.allCases.first(where: { $0.hook == lowered }) {
            self = kind
        } else {
            throw InvalidInput(
                "unknown gate '\(userInput.prefix(64))'; expected one of: \(GateKind.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
    }
}

/// Whether a gate is held open until closed, or only for the rollout it first approves.
public enum GateMode: String, Sendable, Codable {
    /// The approval belongs to one rollout: it binds to the first checksum it approves.
    case once
    /// Stays open until closed, as the loadtester's gate does.
    case sticky
}
