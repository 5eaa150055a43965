import GatehouseCore
import Logging

extension AuditEntry {
    /// The entry as one log sentence: `opened promotion gate of test/podinfo`,
    /// `event of test/podinfo: Promotion completed! …`, `freeze-set on test`.
    var sentence: String {
        let canary = [cluster, namespace, name].compactMap { $0 }.joined(separator: "/")
        let subject = gate.map { "\($0.rawValue) gate of \(canary)" } ?? (canary.isEmpty ? "everything" : canary)
        switch action {
        case .event, .postRollout: return "\(action.rawValue) of \(subject)\(reason.map { ": \($0)" } ?? "")"
        case .freezeSet, .freezeLifted, .notificationFailed: return "\(action.rawValue) on \(subject)"
        default: return "\(action.rawValue) \(subject)"
        }
    }

    /// The entry's fields as log metadata; absent fields are left out.
    var logMetadata: Logger.Metadata {
        var metadata: Logger.Metadata = ["action": "\(action.rawValue)", "actor": "\(actor)"]
        let fields: [(String, String?)] = [
            ("cluster", cluster), ("namespace", namespace), ("canary", name), ("gate", gate?.rawValue),
            ("reason", reason), ("checksum", checksum?.text), ("phase", phase?.rawValue),
        ]
        for case (let key, let value?) in fields { metadata[key] = "\(value)" }
        return metadata
    }
}
