import Foundation

/// One canary's audit trail divided into releases: one release is one rollout, its start included.
public enum Releases {
    /// Groups one canary's entries, newest first, by the rollout they concern, newest first; an entry
    /// that names none joins the rollout of the entry after it. Flagger asks confirm-rollout with the
    /// checksum of the release before (it records the new one only once the rollout is let in:
    /// scheduler.go:925), so what concerns the rollout gate joins the release after it, not the one it
    /// names. The first entry of each group is the one that started it.
    public static func grouping(_ entries: [AuditEntry]) -> [[AuditEntry]] {
        var groups: [[AuditEntry]] = []
        var checksum: Revision?
        for entry in entries {
            if groups.isEmpty || (entry.gate != .rollout && entry.checksum != nil && entry.checksum != checksum) {
                checksum = entry.checksum
                groups.append([])
            }
            groups[groups.count - 1].append(entry)
        }
        return groups
    }
}
