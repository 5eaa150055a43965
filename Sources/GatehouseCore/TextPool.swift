import Synchronization

/// One copy of each text that many canaries repeat (a gate's reason "rollout ended: Succeeded", an
/// actor, a rule's name, Flagger's message with the canary's name taken out): a row's text is
/// read into a string of its own, and 100,000 copies of one reason took 6 MB of what memory keeps.
/// Texts short enough to be kept inside a string (15 bytes) take no room of their own and are not
/// pooled; nor, once the pool holds `limit` texts, are new ones (a text each canary has alone
/// would only fill it).
public final class TextPool: Sendable {
    private let texts = Mutex<[String: String]>([:])
    private let limit: Int

    public init(limit: Int = 4096) {
        self.limit = limit
    }

    /// The pool's copy of `text`, taken into the pool if there is room.
    public func shared(_ text: String) -> String {
        guard text.utf8.count > 15 else { return text }
        return texts.withLock { texts in
            if let held = texts[text] { return held }
            if texts.count < limit { texts[text] = text }
            return text
        }
    }
}
