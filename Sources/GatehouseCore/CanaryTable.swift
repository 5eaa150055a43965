/// Canaries by id, kept in one array with an index of positions: what memory holds of every canary,
/// and the peers a check looks at.
///
/// A dictionary of canaries keeps each in a bucket of its own, and has up to twice as many buckets
/// as canaries (a `Canary` is over 400 bytes: 100,000 canaries took 262,144 buckets, 121 MB). Here
/// the buckets hold only a position, and the canaries lie side by side. Each canary carries a
/// `stamp`, a number its owner keeps with it (the store keeps the version of the change that
/// wrote it). Removing one moves the last into its place: the order of `values` is no order.
public struct CanaryTable: Sendable {
    private var positions: [CanaryID: Int32] = [:]
    private var rows: ContiguousArray<Canary> = []
    private var stamps: ContiguousArray<Int64> = []

    /// An empty table.
    public init() {}

    /// A table of `canaries`, each with stamp 0 (the last of two with the same id is kept).
    public init(_ canaries: some Sequence<Canary>) {
        for canary in canaries { put(canary, stamp: 0) }
    }

    /// How many canaries the table holds.
    public var count: Int { rows.count }

    /// Whether the table holds no canary.
    public var isEmpty: Bool { rows.isEmpty }

    /// Every canary, in no order.
    public var values: ContiguousArray<Canary> { rows }

    /// Every canary's id, in no order.
    public var ids: Dictionary<CanaryID, Int32>.Keys { positions.keys }

    /// The canary with `id`, if the table holds it.
    public subscript(id: CanaryID) -> Canary? {
        positions[id].map { rows[Int($0)] }
    }

    /// The stamp kept with the canary with `id`, if the table holds it.
    public func stamp(of id: CanaryID) -> Int64? {
        positions[id].map { stamps[Int($0)] }
    }

    /// Puts `canary` in place of the one with its id (or adds it), with `stamp`.
    public mutating func put(_ canary: Canary, stamp: Int64) {
        if let position = positions[canary.id] {
            rows[Int(position)] = canary
            stamps[Int(position)] = stamp
        } else {
            positions[canary.id] = Int32(rows.count)
            rows.append(canary)
            stamps.append(stamp)
        }
    }

    /// Replaces the canary with `canary`'s id, keeping its stamp; nothing when the table lacks it.
    public mutating func update(_ canary: Canary) {
        guard let position = positions[canary.id] else { return }
        rows[Int(position)] = canary
    }

    /// Removes the canary with `id`, moving the last canary into its place.
    public mutating func remove(_ id: CanaryID) {
        guard let position = positions.removeValue(forKey: id).map(Int.init) else { return }
        let last = rows.count - 1
        if position != last {
            rows.swapAt(position, last)
            stamps.swapAt(position, last)
            positions[rows[position].id] = Int32(position)
        }
        rows.removeLast()
        stamps.removeLast()
    }

    /// Makes room for `count` canaries in all, so that loading them grows nothing further.
    public mutating func reserveCapacity(_ count: Int) {
        positions.reserveCapacity(count)
        rows.reserveCapacity(count)
        stamps.reserveCapacity(count)
    }
}
