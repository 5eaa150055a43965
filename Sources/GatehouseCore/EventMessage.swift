/// Flagger's last event message as a canary keeps it: with the canary's own name in it
/// ("Promotion completed! Scaling down podinfo.test") put back only when read, so that the text
/// itself is the same for every canary that last reported the same thing, and kept once. At
/// 100,000 canaries each message was a copy of its own, 10 MB of what memory holds (docs/scale.md).
struct EventMessage: Sendable, Equatable {
    /// A leading `mark`, then the message with each mention of the canary ("NAME.NAMESPACE", as
    /// Flagger writes it) replaced by `mark`; or a leading `plain`, then the message as it came,
    /// when it names the canary nowhere or holds the mark itself.
    private let stored: String

    private static let mark: UInt8 = 1
    private static let plain: UInt8 = 2
    /// The texts, each kept once.
    private static let pool = TextPool()

    init(_ message: String, of id: CanaryID) {
        var message = message
        let mention = Self.mention(of: id)
        let marked = message.withUTF8 { bytes in
            bytes.contains(Self.mark) ? nil : Self.replacing(mention, in: bytes, with: [Self.mark], after: Self.mark)
        }
        if let marked {
            stored = Self.pool.shared(String(decoding: marked, as: UTF8.self))
        } else {
            stored = String(decoding: [Self.plain] + Array(message.utf8), as: UTF8.self)
        }
    }

    /// The message as Flagger sent it about `id`.
    func text(of id: CanaryID) -> String {
        var stored = stored
        return stored.withUTF8 { bytes in
            let body = UnsafeBufferPointer(rebasing: bytes.dropFirst())
            guard bytes.first == Self.mark,
                let named = Self.replacing([Self.mark], in: body, with: Self.mention(of: id))
            else { return String(decoding: body, as: UTF8.self) }
            return String(decoding: named, as: UTF8.self)
        }
    }

    private static func mention(of id: CanaryID) -> [UInt8] {
        Array(id.name.utf8) + [UInt8(ascii: ".")] + Array(id.namespace.utf8)
    }

    /// `bytes` with each occurrence of `pattern` (not empty) replaced by `replacement`, left to
    /// right, after `first` if given; nil when there is none. Messages are short: a plain scan will do.
    private static func replacing(
        _ pattern: [UInt8], in bytes: UnsafeBufferPointer<UInt8>, with replacement: [UInt8], after first: UInt8? = nil
    ) -> [UInt8]? {
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count + 1 + replacement.count * 2)
        if let first { result.append(first) }
        var index = 0
        var found = false
        while index < bytes.count {
            if bytes[index] == pattern[0], index + pattern.count <= bytes.count,
                pattern.indices.allSatisfy({ bytes[index + $0] == pattern[$0] })
            {
                result += replacement
                index += pattern.count
                found = true
            } else {
                result.append(bytes[index])
                index += 1
            }
        }
        return found ? result : nil
    }
}
