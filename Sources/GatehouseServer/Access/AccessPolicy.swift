import Crypto
import Foundation
import GatehouseCore
import Yams

/// What a caller may do.
public enum AccessAction: String, Sendable, Codable, CaseIterable {
    /// See canaries, gates, the audit trail and freezes.
    case read
    /// Open gates.
    case open
    /// Close gates.
    case close
    /// Ask for a rollback.
    case rollback
    /// Set and lift freezes.
    case freeze
}

/// A set of names (namespaces or clusters), as exact names and globs (`*`, `team-*`).
public struct NameScope: Sendable, Equatable {
    /// The patterns as written.
    public let patterns: [String]

    /// Creates a scope from exact names and globs.
    public init(_ patterns: [String]) { self.patterns = patterns }

    /// Every name.
    public static let everything = NameScope(["*"])

    /// Whether the scope includes `name`.
    public func contains(_ name: String) -> Bool {
        patterns.contains { Glob.matches($0, name) }
    }

    /// Whether the scope includes a name, or every name when it is nil (needed to act on all at once).
    public func contains(_ name: String?) -> Bool {
        guard let name else { return isEverything }
        return contains(name)
    }

    /// Whether the scope includes every name.
    public var isEverything: Bool { patterns.contains("*") }

}

/// Namespaces in clusters, as an access grant or a notification target lists them.
public struct Scope: Sendable, Equatable {
    /// The clusters (every one unless a file says otherwise; the unnamed cluster of a
    /// single-cluster setup is in every scope that `*` is).
    public var clusters: NameScope
    /// The namespaces.
    public var namespaces: NameScope

    /// Creates a scope.
    public init(clusters: NameScope = .everything, namespaces: NameScope) {
        self.clusters = clusters
        self.namespaces = namespaces
    }

    /// Whether the scope holds all of `area`.
    public func includes(_ area: Area) -> Bool {
        clusters.contains(area.cluster) && namespaces.contains(area.namespace)
    }

    /// Whether the scope holds some of `area` (what a freeze of it concerns).
    public func touches(_ area: Area) -> Bool {
        (area.cluster.map(clusters.contains) ?? true) && (area.namespace.map(namespaces.contains) ?? true)
    }
}

/// What one caller is granted: actions in a scope.
public struct Grant: Sendable, Equatable {
    /// Where.
    public var scope: Scope
    /// The actions.
    public var actions: Set<AccessAction>

    /// Creates a grant.
    public init(scope: Scope, actions: Set<AccessAction>) {
        self.scope = scope
        self.actions = actions
    }

    /// Whether this grant allows `action` somewhere in `area`.
    public func reaches(_ action: AccessAction, in area: Area) -> Bool {
        actions.contains(action) && scope.touches(area)
    }

    /// Whether this grant allows `action` in all of `area`.
    public func allows(_ action: AccessAction, in area: Area) -> Bool {
        actions.contains(action) && scope.includes(area)
    }
}

/// The access file: scoped tokens (stored only as SHA-256 hashes), people and groups, CI jobs
/// known by their identity tokens, Slack users and channels, and each cluster's Flagger secret.
public struct AccessPolicy: Sendable {
    /// A token's name, kind, hash and grant.
    public struct Token: Sendable, Equatable {
        /// The name: a person's (`kind: person`), a team's or a job's.
        public var name: String
        /// Whose it is: one person's, or shared (the default), or a job's.
        public var kind: Principal.Kind = .sharedToken
        /// The SHA-256 of the token, 32 bytes.
        public var hash: [UInt8]
        /// What it may do.
        public var grant: Grant
    }

    /// A CI job (or any workload) known by the OpenID Connect ID token it presents as its bearer
    /// token: tokens from `issuer`, for `audience`, whose claims match every one of `claims`
    /// (exact texts or globs), are this workload.
    public struct Workload: Sendable, Equatable {
        /// The name recorded (as `workload:NAME`).
        public var name: String
        /// The token issuer, exactly as its tokens' `iss` (https://token.actions.githubusercontent.com).
        public var issuer: String
        /// The audience its tokens must be issued for (`aud`).
        public var audience: String
        /// Claims and the patterns their values must match (`repository: acme/shop`, `ref: refs/tags/*`).
        public var claims: [String: String]
        /// What it may do.
        public var grant: Grant

        /// Whether verified `claims` are this workload's.
        func matches(_ claims: IdentityClaims) -> Bool {
            self.claims.allSatisfy { name, pattern in claims.text(name).map { Glob.matches(pattern, $0) } ?? false }
        }
    }

    /// The tokens.
    public var tokens: [Token]
    /// Slack user IDs and what they may do.
    public var slackUsers: [String: Grant]
    /// Slack channel IDs and what anyone in them may do.
    public var slackChannels: [String: Grant]
    /// Each cluster's Flagger secret: a call carrying one belongs to that cluster.
    public var flaggerClusters: [ClusterSecret] = []
    /// People (signed in through single sign-on, or named by an authenticating proxy), and what they may do.
    public var people: [String: Grant] = [:]
    /// Groups (from single sign-on's groups claim, or a proxy's groups header), and what their members may do.
    public var groups: [String: Grant] = [:]
    /// The person each Slack user is, where the file says (`person:`); a Slack user not mapped is
    /// known as `slack:USER_ID`.
    public var slackPeople: [String: String] = [:]
    /// CI jobs and other workloads, known by their identity tokens.
    public var workloads: [Workload] = []

    /// A cluster and the SHA-256 of the secret its Flagger sends in `metadata.token`.
    public struct ClusterSecret: Sendable, Equatable {
        /// The cluster's name.
        public var cluster: String
        /// The SHA-256 of its secret, 32 bytes.
        public var hash: [UInt8]
    }

    /// Reads an access file (YAML or JSON), or explains in one sentence what is wrong with it.
    public static func parse(_ text: String) throws(InvalidInput) -> AccessPolicy {
        let file: AccessFile
        do {
            file = try YAMLDecoder().decode(AccessFile.self, from: text)
        } catch let error as InvalidInput {
            throw error
        } catch {
            throw InvalidInput("the access file cannot be read: \(error)")
        }
        var names = Set<String>()
        var tokens: [Token] = []
        for (index, entry) in (file.tokens ?? []).enumerated() {
            let location = "token \(index + 1)"
            guard !entry.name.isEmpty, names.insert(entry.name).inserted else {
                throw InvalidInput("\(location): a token needs a name of its own")
            }
            guard let hash = hexBytes(entry.sha256.lowercased()), hash.count == 32 else {
                throw InvalidInput(
                    "\(location) (\(entry.name)): sha256 must be 64 hex digits, the SHA-256 of the token (gatehouse token hash)"
                )
            }
            let kind: Principal.Kind
            switch entry.kind ?? "shared" {
            case "person": kind = .person
            case "shared": kind = .sharedToken
            case "workload": kind = .workload
            case let other:
                throw InvalidInput(
                    "\(location) (\(entry.name)): kind must be person (one person's token), shared (a team's or a job's; the default) or workload, not '\(other)'"
                )
            }
            tokens.append(Token(name: entry.name, kind: kind, hash: hash, grant: try entry.grant(location)))
        }
        var users: [String: Grant] = [:]
        var slackPeople: [String: String] = [:]
        for entry in file.slack?.users ?? [] {
            users[entry.id] = try entry.grant("slack user \(entry.id)")
            if let person = entry.person {
                guard !person.isEmpty, Principal.isPerson(actor: person) else {
                    throw InvalidInput("slack user \(entry.id): person must be a person's name")
                }
                slackPeople[entry.id] = person
            }
        }
        var channels: [String: Grant] = [:]
        for entry in file.slack?.channels ?? [] { channels[entry.id] = try entry.grant("slack channel \(entry.id)") }
        var clusters: [ClusterSecret] = []
        for (index, entry) in (file.flagger ?? []).enumerated() {
            let location = "flagger entry \(index + 1)"
            do {
                try KubernetesName.validateLabel(entry.cluster, field: "cluster")
            } catch {
                throw InvalidInput("\(location): \(error.message)")
            }
            guard !clusters.contains(where: { $0.cluster == entry.cluster }) else {
                throw InvalidInput("\(location): cluster \(entry.cluster) is listed twice")
            }
            guard let hash = hexBytes(entry.sha256.lowercased()), hash.count == 32 else {
                throw InvalidInput(
                    "\(location) (\(entry.cluster)): sha256 must be 64 hex digits, the SHA-256 of that cluster's Flagger secret (gatehouse token hash)"
                )
            }
            clusters.append(ClusterSecret(cluster: entry.cluster, hash: hash))
        }
        if file.people != nil && file.proxy != nil {
            throw InvalidInput("people: and proxy: are the same section (proxy: is its older name); keep one")
        }
        let section = file.people ?? file.proxy
        var people: [String: Grant] = [:]
        for entry in section?.users ?? [] {
            people[entry.name] = try entry.grant("person \(entry.name)")
        }
        var groups: [String: Grant] = [:]
        for entry in section?.groups ?? [] {
            groups[entry.name] = try entry.grant("group \(entry.name)")
        }
        var workloads: [Workload] = []
        for (index, entry) in (file.workloads ?? []).enumerated() {
            let location = "workload \(index + 1)"
            guard !entry.name.isEmpty, !workloads.contains(where: { $0.name == entry.name }) else {
                throw InvalidInput("\(location): a workload needs a name of its own")
            }
            guard let url = URL(string: entry.issuer), url.scheme == "https" || url.scheme == "http", url.host != nil
            else {
                throw InvalidInput(
                    "\(location) (\(entry.name)): issuer must be the https address its tokens name in iss")
            }
            guard !entry.audience.isEmpty else {
                throw InvalidInput(
                    "\(location) (\(entry.name)): audience must name what its tokens are issued for (aud)")
            }
            guard let claims = entry.claims, !claims.isEmpty else {
                throw InvalidInput(
                    "\(location) (\(entry.name)): claims must say which tokens of \(entry.issuer) are this workload (for example repository: acme/shop); without any, every job the issuer serves would be"
                )
            }
            workloads.append(
                Workload(
                    name: entry.name, issuer: entry.issuer, audience: entry.audience, claims: claims,
                    grant: try entry.grant("\(location) (\(entry.name))")))
        }
        return AccessPolicy(
            tokens: tokens, slackUsers: users, slackChannels: channels, flaggerClusters: clusters,
            people: people, groups: groups, slackPeople: slackPeople, workloads: workloads)
    }

    /// What a person may do: their own entry's grant and their groups'.
    public func personGrants(user: String, groups: [String]) -> [Grant] {
        [people[user]].compactMap { $0 } + groups.compactMap { self.groups[$0] }
    }

    /// The cluster whose Flagger secret is `presented`; every stored hash is compared in constant time.
    public func flaggerCluster(presented: String) -> String? {
        let digest = Array(SHA256.hash(data: Data(presented.utf8)))
        var found: String?
        for entry in flaggerClusters where constantTimeEqual(entry.hash, digest) {
            found = entry.cluster
        }
        return found
    }

    /// The token whose hash matches `presented`; every stored hash is compared in constant time.
    public func token(presented: String) -> Token? {
        let digest = Array(SHA256.hash(data: Data(presented.utf8)))
        var found: Token?
        for token in tokens where constantTimeEqual(token.hash, digest) {
            found = token
        }
        return found
    }

    /// What a Slack user may do: their own grant and the channel's they write in.
    public func slackGrants(user: String, channel: String) -> [Grant] {
        [slackUsers[user], slackChannels[channel]].compactMap { $0 }
    }

    /// The SHA-256 of a token, as the access file stores it.
    public static func hash(of token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).hexString
    }

    /// A new random token: 32 bytes from the system's generator, base64url.
    public static func generateToken() -> String {
        let key = SymmetricKey(size: .bits256)
        let bytes = key.withUnsafeBytes { Data($0) }
        return "gh_" + bytes.base64URLString
    }

    private static func hexBytes(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2, limitedBy: text.endIndex) ?? text.endIndex
            guard let byte = UInt8(text[index..<next], radix: 16), text.distance(from: index, to: next) == 2 else {
                return nil
            }
            bytes.append(byte)
            index = next
        }
        return bytes
    }
}

/// Compares two byte strings without stopping at the first difference.
func constantTimeEqual(_ left: [UInt8], _ right: [UInt8]) -> Bool {
    guard left.count == right.count else { return false }
    var difference: UInt8 = 0
    for index in left.indices { difference |= left[index] ^ right[index] }
    return difference == 0
}

/// The access file as written.
private struct AccessFile: Decodable {
    struct Entry: Decodable {
        var clusters: [String]?
        var namespaces: [String]
        var actions: [String]

        func grant(_ location: String) throws(InvalidInput) -> Grant {
            guard !namespaces.isEmpty else { throw InvalidInput("\(location): namespaces must not be empty") }
            if let clusters, clusters.isEmpty {
                throw InvalidInput("\(location): clusters must not be empty (leave it out for every cluster)")
            }
            var actions = Set<AccessAction>()
            for action in self.actions {
                guard let parsed = AccessAction(rawValue: action) else {
                    throw InvalidInput(
                        "\(location): unknown action '\(action)'; expected \(AccessAction.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                actions.insert(parsed)
            }
            return Grant(
                scope: Scope(clusters: clusters.map(NameScope.init) ?? .everything, namespaces: NameScope(namespaces)),
                actions: actions)
        }
    }

    struct TokenEntry: Decodable {
        var name: String
        var kind: String?
        var sha256: String
        var clusters: [String]?
        var namespaces: [String]
        var actions: [String]

        func grant(_ location: String) throws(InvalidInput) -> Grant {
            try Entry(clusters: clusters, namespaces: namespaces, actions: actions).grant("\(location) (\(name))")
        }
    }

    struct SlackEntry: Decodable {
        var id: String
        /// The person this Slack user is (users only).
        var person: String?
        var clusters: [String]?
        var namespaces: [String]
        var actions: [String]

        func grant(_ location: String) throws(InvalidInput) -> Grant {
            try Entry(clusters: clusters, namespaces: namespaces, actions: actions).grant(location)
        }
    }

    struct Slack: Decodable {
        var users: [SlackEntry]?
        var channels: [SlackEntry]?
    }

    /// A person or group as an authenticating proxy names them, and what they may do.
    struct NamedEntry: Decodable {
        var name: String
        var clusters: [String]?
        var namespaces: [String]
        var actions: [String]

        func grant(_ location: String) throws(InvalidInput) -> Grant {
            try Entry(clusters: clusters, namespaces: namespaces, actions: actions).grant(location)
        }
    }

    /// People and groups: signed in through single sign-on, or behind an authenticating proxy.
    struct People: Decodable {
        var users: [NamedEntry]?
        var groups: [NamedEntry]?
    }

    /// The secret one cluster's Flagger sends in `metadata.token`, which names that cluster.
    struct FlaggerEntry: Decodable {
        var cluster: String
        var sha256: String
    }

    /// A CI job known by its identity token.
    struct WorkloadEntry: Decodable {
        var name: String
        var issuer: String
        var audience: String
        var claims: [String: String]?
        var clusters: [String]?
        var namespaces: [String]
        var actions: [String]

        func grant(_ location: String) throws(InvalidInput) -> Grant {
            try Entry(clusters: clusters, namespaces: namespaces, actions: actions).grant(location)
        }
    }

    var tokens: [TokenEntry]?
    var slack: Slack?
    var flagger: [FlaggerEntry]?
    var people: People?
    var proxy: People?
    var workloads: [WorkloadEntry]?
}
