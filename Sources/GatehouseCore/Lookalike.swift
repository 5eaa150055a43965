/// How alike two canaries' ids are, for saying "did you mean …?" when a person names a canary no
/// Flagger call has named: a name a typo or two away in the same namespace, or the same name in
/// another namespace (a forgotten `-n`).
public enum Lookalike {
    /// How far `candidate` is from `id`: the edit distance of their names within one namespace, 3 for
    /// the same name elsewhere in the cluster, nil when they are not alike (or the same).
    public static func distance(of candidate: CanaryID, from id: CanaryID) -> Int? {
        guard candidate != id, candidate.cluster == id.cluster else { return nil }
        if candidate.namespace != id.namespace { return candidate.name == id.name ? 3 : nil }
        let limit = min(2, max(1, id.name.count / 4))
        return editDistance(candidate.name, id.name, atMost: limit)
    }

    /// The Levenshtein distance of `a` and `b` (by character), or nil when it is more than `limit`.
    public static func editDistance(_ a: String, _ b: String, atMost limit: Int) -> Int? {
        let a = Array(a)
        let b = Array(b)
        guard abs(a.count - b.count) <= limit else { return nil }
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1] + Array(repeating: 0, count: b.count)
            for (j, y) in b.enumerated() {
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1))
            }
            guard current.min()! <= limit else { return nil }
            previous = current
        }
        return previous[b.count] <= limit ? previous[b.count] : nil
    }
}
