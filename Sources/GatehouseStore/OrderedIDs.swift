import GatehouseCore

/// Canary ids in order (cluster, namespace, name), kept in chunks of at most `chunkSize`: finding
/// where a page starts is two binary searches, a page costs its own length, and adding or dropping
/// an id moves at most one chunk. A reader's copy shares the chunks until memory changes them.
struct OrderedIDs: Sendable {
    static let chunkSize = 512
    private var chunks: [[CanaryID]] = []
    private(set) var count = 0

    /// How many ids each chunk holds, in order (a load in order leaves each full but the last).
    var chunkLengths: [Int] { chunks.map(\.count) }

    /// Adds `id`; nothing when it is there already.
    mutating func insert(_ id: CanaryID) {
        guard !chunks.isEmpty else {
            chunks = [[id]]
            count = 1
            return
        }
        if let last = chunks[chunks.count - 1].last, last < id {
            // After every id held (as a load in order adds them all): no search, and a full last
            // chunk is left full, a new one started, rather than split in two half-empty ones.
            count += 1
            if chunks[chunks.count - 1].count < Self.chunkSize {
                chunks[chunks.count - 1].append(id)
            } else {
                chunks.append([id])
            }
            return
        }
        let chunk = min(chunkIndex(for: id), chunks.count - 1)
        let index = Self.firstIndex(in: chunks[chunk], notBefore: id)
        if index < chunks[chunk].count && chunks[chunk][index] == id { return }
        count += 1
        chunks[chunk].insert(id, at: index)
        if chunks[chunk].count > Self.chunkSize {
            let upper = Array(chunks[chunk][(Self.chunkSize / 2)...])
            chunks[chunk].removeSubrange((Self.chunkSize / 2)...)
            chunks.insert(upper, at: chunk + 1)
        }
    }

    /// Drops `id`; nothing when it is not there.
    mutating func remove(_ id: CanaryID) {
        let chunk = chunkIndex(for: id)
        guard chunk < chunks.count else { return }
        let index = Self.firstIndex(in: chunks[chunk], notBefore: id)
        guard index < chunks[chunk].count, chunks[chunk][index] == id else { return }
        chunks[chunk].remove(at: index)
        count -= 1
        if chunks[chunk].isEmpty { chunks.remove(at: chunk) }
    }

    /// The ids after `after` (all when nil) in order, starting where `start` would be when that is
    /// further on; lazily, so a page reads only what it shows.
    func ids(after: CanaryID?, from start: CanaryID? = nil) -> some Sequence<CanaryID> {
        let bound = [after, start].compactMap { $0 }.max()
        var chunk = bound.map(chunkIndex(for:)) ?? 0
        var index = chunk < chunks.count ? bound.map { Self.firstIndex(in: chunks[chunk], notBefore: $0) } ?? 0 : 0
        return AnyIterator { () -> CanaryID? in
            while chunk < chunks.count {
                if index < chunks[chunk].count {
                    let id = chunks[chunk][index]
                    index += 1
                    if let after, id <= after { continue }
                    return id
                }
                chunk += 1
                index = 0
            }
            return nil
        }.lazy
    }

    /// The first chunk whose last id is not before `id` (`chunks.count` when there is none).
    private func chunkIndex(for id: CanaryID) -> Int {
        var low = 0
        var high = chunks.count
        while low < high {
            let middle = (low + high) / 2
            if chunks[middle].last! < id { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The first index in `chunk` whose id is not before `id`.
    private static func firstIndex(in chunk: [CanaryID], notBefore id: CanaryID) -> Int {
        var low = 0
        var high = chunk.count
        while low < high {
            let middle = (low + high) / 2
            if chunk[middle] < id { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
