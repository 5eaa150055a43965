/// Canaries by id, kept in one array with an index of positions: what memory holds of every canary,
/// and the peers a check looks at.
///
/// A dictionary of canaries keeps each in a bucket of its own, and has up to twice as many buckets
/// as canaries (a `Canary` is over 400 bytes: 100,000 canaries took 262,144 buckets, 121 MB). Here
/// the buckets hold only a position, and the canaries lie side by side. Each canary carries a
/// `stamp`, a number its owner keeps with it (the store keeps the version of the change that
/// wrote it). Removing one moves the last into its place: the order of `values` is no order.
public struct CanaryTable: Sendable {
    private var rows: ContiguousArray<Canary> = []
    private var stamps: ContiguousArray<Int64> = []
    /// Where each canary is in `rows`, found by its id's hash (open addressing, linear probing):
    /// a bucket holds a position (`empty` where none), and the id is read from the row. Four
    /// bytes a bucket, where a dictionary of ids kept each id again (52 bytes a bucket, 13 MB at
    /// 100,000 canaries). At most half the buckets are used, so a look-up probes one or two.
    private var buckets: ContiguousArray<Int32> = []
    private static let empty: Int32 = -1

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
    public var ids: [CanaryID] { rows.map(\.id) }

    /// The canary with `id`, if the table holds it.
    public subscript(id: CanaryID) -> Canary? {
        position(of: id).map { rows[$0] }
    }

    /// The stamp kept with the canary with `id`, if the table holds it.
    public func stamp(of id: CanaryID) -> Int64? {
        position(of: id).map { stamps[$0] }
    }

    /// Puts `canary` in place of the one with its id (or adds it), with `stamp`.
    public mutating func put(_ canary: consuming Canary, stamp: Int64) {
        var (index, found) = bucket(of: canary.id)
        if let position = found {
            rows[position] = canary
            stamps[position] = stamp
            return
        }
        if (rows.count + 1) * 2 > buckets.count {
            rehash(toHold: rows.count + 1)
            index = bucket(of: canary.id).index
        }
        buckets[index] = Int32(rows.count)
        rows.append(canary)
        stamps.append(stamp)
    }

    /// Replaces the canary with `canary`'s id, keeping its stamp; nothing when the table lacks it.
    public mutating func update(_ canary: Canary) {
        guard let position = position(of: canary.id) else { return }
        rows[position] = canary
    }

    /// Removes the canary with `id`, moving the last canary into its place.
    public mutating func remove(_ id: CanaryID) {
        let (index, found) = bucket(of: id)
        guard let position = found else { return }
        vacate(index)
        let last = rows.count - 1
        if position != last {
            // Found while the last canary is still where its bucket says.
            let moved = bucket(of: rows[last].id).index
            rows.swapAt(position, last)
            stamps.swapAt(position, last)
            buckets[moved] = Int32(position)
        }
        rows.removeLast()
        stamps.removeLast()
    }

    /// Makes room for `count` canaries in all, so that loading them grows nothing further.
    public mutating func reserveCapacity(_ count: Int) {
        rows.reserveCapacity(count)
        stamps.reserveCapacity(count)
        if count * 2 > buckets.count { rehash(toHold: count) }
    }

    private func position(of id: CanaryID) -> Int? {
        bucket(of: id).position
    }

    /// The bucket holding `id`'s position and the position, or the empty bucket where it would go.
    private func bucket(of id: CanaryID) -> (index: Int, position: Int?) {
        guard !buckets.isEmpty else { return (0, nil) }
        let mask = buckets.count - 1
        var index = id.hashValue & mask
        while true {
            let position = buckets[index]
            if position == Self.empty { return (index, nil) }
            if rows[Int(position)].id == id { return (index, Int(position)) }
            index = (index + 1) & mask
        }
    }

    /// Empties bucket `index`, moving later buckets of the same run back so that every position
    /// stays reachable from its id's first bucket.
    private mutating func vacate(_ index: Int) {
        let mask = buckets.count - 1
        var hole = index
        var next = (index + 1) & mask
        while buckets[next] != Self.empty {
            let home = rows[Int(buckets[next])].id.hashValue & mask
            // The entry may move to the hole unless its home lies after the hole, up to it (cyclically).
            let homeAfterHole = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next)
            if !homeAfterHole {
                buckets[hole] = buckets[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        buckets[hole] = Self.empty
    }

    /// Makes buckets for `count` canaries (at least twice as many, a power of two) and fills them again.
    private mutating func rehash(toHold count: Int) {
        var size = 8
        while size < count * 2 { size *= 2 }
        buckets = ContiguousArray(repeating: Self.empty, count: size)
        for (position, row) in rows.enumerated() {
            buckets[bucket(of: row.id).index] = Int32(position)
        }
    }
}
