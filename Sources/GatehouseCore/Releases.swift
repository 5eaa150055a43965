import Foundation

/// One rollout of one canary as its audit trail tells it, its start included: what let it in, its
/// analysis, its end. The dashboard's timeline and `policy simulate` divide a trail the same way.
public struct Release: Sendable {
    /// Its entries, oldest first.
    public var entries: [AuditEntry]
    /// When its first entry was made.
    public var start: Date
    /// When it ended: an end signal, or the start of the next.
    public var end: Date?
    /// How it ended, when an end signal said so.
    public var outcome: CanaryPhase?
    /// The revision its traffic, promotion or rollback checks named, once one came.
    public var revision: Revision?

    /// The checksum its entries name first, when none of its checks named a revision (a release that
    /// never got past its rollout gate, or a trail without checks).
    public var anyChecksum: Revision? { revision ?? entries.lazy.compactMap(\.checksum).first }

    /// Whether it holds an answer of, or an approval for, the rollout gate.
    public var asksRolloutGate: Bool { entries.contains { $0.gate == .rollout } }

    /// A canary's rollouts, oldest first, each with its entries oldest first, its start and its end.
    /// A rollout ends with an end signal (post-rollout, "Promotion completed!", "Canary failed!");
    /// the next begins with the first answer to a check or approval after it (its rollout gate's, so
    /// that it is judged with the release it lets in) or with "New revision detected!", or where a traffic,
    /// promotion or rollback check names another revision.
    public static func split(_ oldestFirst: [AuditEntry]) -> [Release] {
        var releases: [Release] = []
        var current: Release?
        for entry in oldestFirst {
            let progress = entry.gate.map { [.traffic, .promotion, .rollback].contains($0) } ?? false
            if var open = current {
                // What the end itself closed (its gates reset) stays with it.
                let begins =
                    [.approved, .refused, .opened, .requested].contains(entry.action)
                    || entry.reason?.hasPrefix(RolloutSignal.startedPrefix) == true
                    || entry.reason?.hasPrefix(RolloutSignal.restartedPrefix) == true
                let newRevision =
                    progress && entry.checksum != nil && open.revision != nil && entry.checksum != open.revision
                if (open.end != nil && begins) || newRevision {
                    open.end = open.end ?? entry.at
                    releases.append(open)
                    current = nil
                }
            }
            var release = current ?? Release(entries: [], start: entry.at)
            release.entries.append(entry)
            if progress, release.revision == nil { release.revision = entry.checksum }
            let payload = FlaggerPayload(
                name: entry.name ?? "", namespace: entry.namespace ?? "", phase: entry.phase,
                metadata: entry.reason.map { ["eventMessage": $0] })
            if release.end == nil, let outcome = Canary.endOutcome(of: payload, as: entry.action) {
                release.end = entry.at
                release.outcome = outcome
            }
            current = release
        }
        if let current { releases.append(current) }
        return releases
    }

}
