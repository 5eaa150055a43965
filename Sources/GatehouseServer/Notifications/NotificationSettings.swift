import Foundation
import GatehouseCore
import GatehouseStore
import Yams

/// The notifications file: where messages go, and how approval links look.
public struct NotificationSettings: Sendable {
    /// One destination.
    public struct Target: Sendable, Equatable {
        /// How the message is shaped.
        public enum Kind: String, Sendable, Decodable {
            /// A Slack incoming webhook: a Block Kit message.
            case slack
            /// Any HTTP endpoint: Gatehouse's JSON payload.
            case webhook
            /// A Microsoft Teams channel's Workflows webhook: an Adaptive Card.
            case teams
            /// A Google Chat space's incoming webhook: a card (cardsV2).
            case googleChat = "googlechat"
        }

        /// A name for logs and metrics.
        public var name: String
        /// The message's shape.
        public var kind: Kind
        /// Where it is POSTed.
        public var url: String
        /// The clusters and namespaces whose facts it receives (a freeze goes to every target it touches).
        public var scope: Scope
        /// The kinds of fact it receives; nil receives all.
        public var kinds: Set<Notable.Kind>?
    }

    /// The cluster's name, shown in every message.
    public var cluster: String
    /// The base URL approval links point to (this service as people reach it); nil sends no links.
    public var linkBaseURL: String?
    /// How long an approval link works.
    public var linkTTL: TimeInterval
    /// After how long a waiting canary gets one reminder; nil sends none.
    public var reminderAfter: TimeInterval?
    /// How long delivery is retried before giving up.
    public var giveUpAfter: TimeInterval
    /// The destinations.
    public var targets: [Target]

    /// Reads the file (YAML or JSON), or says in one sentence what is wrong with it.
    public static func parse(_ text: String) throws(InvalidInput) -> NotificationSettings {
        let file: File
        do {
            file = try YAMLDecoder().decode(File.self, from: text)
        } catch {
            throw InvalidInput("the notifications file cannot be read: \(error)")
        }
        var targets: [Target] = []
        for (index, entry) in file.targets.enumerated() {
            guard let url = URL(string: entry.url), url.scheme == "http" || url.scheme == "https" else {
                throw InvalidInput("target \(index + 1): url '\(entry.url)' is not an http(s) URL")
            }
            var kinds: Set<Notable.Kind>?
            if let names = entry.kinds {
                kinds = []
                for name in names {
                    guard let kind = Notable.Kind(rawValue: name) else {
                        throw InvalidInput(
                            "target \(index + 1): unknown kind '\(name)'; expected \(Notable.Kind.allCases.map(\.rawValue).joined(separator: ", "))"
                        )
                    }
                    kinds?.insert(kind)
                }
            }
            targets.append(
                Target(
                    name: entry.name ?? "\(entry.kind.rawValue)-\(index + 1)", kind: entry.kind, url: entry.url,
                    scope: Scope(
                        clusters: NameScope(entry.clusters ?? ["*"]), namespaces: NameScope(entry.namespaces ?? ["*"])),
                    kinds: kinds))
        }
        if let base = file.linkBaseURL, URL(string: base)?.scheme == nil {
            throw InvalidInput("linkBaseURL '\(base)' is not a URL")
        }
        return NotificationSettings(
            cluster: file.cluster ?? "kubernetes",
            linkBaseURL: file.linkBaseURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 },
            linkTTL: try file.linkTTL.map { text throws(InvalidInput) in
                try DurationText.seconds(from: text, field: "linkTTL")
            } ?? 86400,
            reminderAfter: try file.reminderAfter.map { text throws(InvalidInput) in
                try DurationText.seconds(from: text, field: "reminderAfter")
            },
            giveUpAfter: try file.giveUpAfter.map { text throws(InvalidInput) in
                try DurationText.seconds(from: text, field: "giveUpAfter")
            } ?? 3600,
            targets: targets)
    }

    private struct File: Decodable {
        struct Entry: Decodable {
            var name: String?
            var kind: Target.Kind
            var url: String
            var clusters: [String]?
            var namespaces: [String]?
            var kinds: [String]?
        }

        var cluster: String?
        var linkBaseURL: String?
        var linkTTL: String?
        var reminderAfter: String?
        var giveUpAfter: String?
        var targets: [Entry]
    }
}
