/// The gates of one canary that anyone has touched, by kind; the others are closed.
///
/// A gate that is just closed (`Gate.closed`, as if never touched) is not kept: setting one forgets
/// the entry, so two sets holding the same gates are equal whichever way they were made, and a
/// gate a rollout's end leaves as it found it (most canaries' traffic gate) costs nothing.
///
/// Kept as a small array in the order of `GateKind.allCases` rather than a dictionary: a canary
/// has at most five gates and usually two, and a dictionary of two gates keeps four buckets of a
/// whole `Gate` each, plus its own header — at 100,000 canaries the difference is tens of megabytes
/// of what memory holds (docs/scale.md).
public struct GateSet: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    private var gates: [Gate] = []

    /// No gate touched.
    public init() {}

    /// The gates given, by kind (the last of two of a kind is kept).
    public init(dictionaryLiteral elements: (GateKind, Gate)...) {
        for (kind, gate) in elements { self[kind] = gate }
    }

    /// The gate of `kind`, if it was touched; setting nil, or a gate that is just closed, forgets it.
    public subscript(kind: GateKind) -> Gate? {
        get {
            gates.first { $0.kind == kind }
        }
        set {
            var newValue = newValue
            newValue?.kind = kind
            if newValue == .closed(kind) { newValue = nil }
            let position = gates.firstIndex { $0.kind.position >= kind.position }
            switch (newValue, position) {
            case (nil, let position?) where gates[position].kind == kind:
                gates.remove(at: position)
            case (nil, _):
                break
            case (let gate?, let position?) where gates[position].kind == kind:
                gates[position] = gate
            case (let gate?, let position):
                // A new array of just the room needed: growing one in place leaves room for four
                // gates (672 bytes) where two take 352.
                var grown: [Gate] = []
                grown.reserveCapacity(gates.count + 1)
                let position = position ?? gates.count
                grown += gates[..<position]
                grown.append(gate)
                grown += gates[position...]
                gates = grown
            }
        }
    }

    /// Every gate touched, in the order of their kinds.
    public var values: [Gate] { gates }

    /// The kinds of the gates touched, in order.
    public var keys: [GateKind] { gates.map(\.kind) }

    /// How many gates were touched.
    public var count: Int { gates.count }

    /// Whether no gate was touched.
    public var isEmpty: Bool { gates.isEmpty }

    /// Each gate touched with its kind, in order.
    public func makeIterator() -> some IteratorProtocol<(key: GateKind, value: Gate)> {
        gates.lazy.map { (key: $0.kind, value: $0) }.makeIterator()
    }
}
