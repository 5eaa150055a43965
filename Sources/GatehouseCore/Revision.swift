/// A revision of a canary as Flagger names it: the checksum of its pod template that Flagger sends
/// with every call (`checksum` in the webhook's payload). Never empty: a call that carries none (an
/// old Flagger sends an empty string) has no revision, `nil`, which is the only spelling of "none".
public struct Revision: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The checksum as Flagger sent it.
    public let text: String

    /// The revision a checksum names; nil for none (absent or empty).
    public init?(_ text: String?) {
        guard let text, !text.isEmpty else { return nil }
        self.text = text
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let revision = Revision(text) else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: decoder.codingPath, debugDescription: "a revision is never empty"))
        }
        self = revision
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }

    public var description: String { text }
}

extension Revision {
    /// What a once-gate was used for, once a check passed it: a revision, or a call that named none
    /// (an old Flagger's), which binds it all the same.
    public enum Binding: Hashable, Sendable, Codable, CustomStringConvertible {
        case revision(Revision)
        case unnamed

        /// The binding a call of `revision` makes.
        public init(_ revision: Revision?) {
            self = revision.map(Binding.revision) ?? .unnamed
        }

        /// The revision bound, when the call named one.
        public var revision: Revision? {
            if case .revision(let revision) = self { return revision }
            return nil
        }

        public var description: String { revision?.text ?? "(no checksum)" }

        /// Written as the revision's text, or an empty string for a call that named none.
        public init(from decoder: any Decoder) throws {
            self.init(Revision(try decoder.singleValueContainer().decode(String.self)))
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(revision?.text ?? "")
        }
    }
}
