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

extension GateKind {
    /// The kind's place in `allCases` (without making that array, as a check's gates are kept in this order).
    public var position: Int {
        switch self {
        case .rollout: 0
        case .traffic: 1
        case .promotion: 2
        case .rollback: 3
        case .shared: 4
        }
    }
}

/// Distinct gate kinds in the order they were added, packed in two bytes: what a rollout records
/// of the checks that came (`Rollout.asked`). An array of them took 56 bytes a canary, 48 of them
/// on the heap: 5 MB at 100,000 canaries (docs/scale.md).
public struct GateKinds: Sendable, Hashable, Sequence, ExpressibleByArrayLiteral {
    /// Each kind's place in `GateKind.allCases` plus one, three bits each, the first lowest; 0 ends.
    private var packed: UInt16 = 0

    /// None.
    public init() {}

    /// The kinds given, each once, in their first order.
    public init(_ kinds: some Sequence<GateKind>) {
        for kind in kinds { append(kind) }
    }

    public init(arrayLiteral kinds: GateKind...) {
        self.init(kinds)
    }

    /// Adds `kind` at the end, unless it is there already.
    public mutating func append(_ kind: GateKind) {
        guard !contains(kind) else { return }
        let code = UInt16(kind.position + 1)
        packed |= code << (3 * UInt16(count))
    }

    /// Whether `kind` is among them.
    public func contains(_ kind: GateKind) -> Bool {
        contains { $0 == kind }
    }

    /// How many there are.
    public var count: Int {
        var count = 0
        while packed >> (3 * UInt16(count)) & 0b111 != 0 { count += 1 }
        return count
    }

    /// Whether there are none.
    public var isEmpty: Bool { packed == 0 }

    public func makeIterator() -> some IteratorProtocol<GateKind> {
        var rest = packed
        return AnyIterator {
            guard rest & 0b111 != 0 else { return nil }
            defer { rest >>= 3 }
            return GateKind.allCases[Int(rest & 0b111) - 1]
        }
    }
}
