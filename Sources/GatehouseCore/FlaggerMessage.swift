import Foundation

/// What Flagger's event messages say about a rollout's progress, read from their fixed wording
/// (Flagger v1.44: pkg/controller/scheduler.go's recordEventInfof/Warningf calls): the canary
/// weight it advanced to, and the analysis checks that failed.
public enum FlaggerMessage {
    /// The weight in "Advance podinfo.test canary weight 20"; nil for any other message.
    public static func advancedWeight(_ message: String) -> Int? {
        guard message.hasPrefix("Advance "), let range = message.range(of: " canary weight ") else { return nil }
        let digits = message[range.upperBound...].prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, digits.count <= 3 else { return nil }
        return Int(digits)
    }

    /// The canary weight after the event: the advanced weight; 0 when an analysis starts ("New
    /// revision detected!", "Starting canary analysis", scheduler.go:329, 451, 910) or a rollout ends
    /// and traffic goes back to the primary ("Promotion completed!", "Canary failed!", 422, 967);
    /// nil for an event that says nothing of the weight.
    public static func weight(after message: String) -> Int? {
        if let weight = advancedWeight(message) { return weight }
        let resets = ["New revision detected!", "Starting canary analysis", "Promotion completed!", "Canary failed!"]
        return resets.contains { message.hasPrefix($0) } ? 0 : nil
    }

    /// Whether the message reports an analysis check that failed ("Halt podinfo.test advancement
    /// success rate 91.20% < 99%"), not a halt that waits for a gate ("… waiting for promotion
    /// approval …") or for the primary to be ready.
    public static func isFailedCheck(_ message: String) -> Bool {
        guard message.hasPrefix("Halt "), message.contains(" advancement ") else { return false }
        return !message.contains(" waiting for ") && !message.contains("not ready")
    }
}
