/// Who makes a request, once verified: a kind and a name, and for people the groups an identity
/// source (single sign-on, an authenticating proxy) says they belong to.
///
/// The audit trail, gates and rules know a principal by its `actor`: a person by their name, any
/// other kind by its name after the kind (`token:ci`, `workload:shop-deploy`), so that one text
/// says both who and what, and a name in a rule's `from:` can only ever match a person.
public struct Principal: Sendable, Equatable {
    /// What kind of principal it is.
    public enum Kind: String, Sendable, CaseIterable, Codable {
        /// A person: signed in through single sign-on, named by a trusted proxy, a Slack user, or a
        /// personal token (`kind: person` in the access file).
        case person
        /// A job: a CI pipeline presenting its identity token, Flagger, Gatehouse itself.
        case workload
        /// A token shared by a team or a job (the access file's default kind).
        case sharedToken = "shared token"
        /// A name the caller gave itself, with no access control configured (as the loadtester).
        case declared
    }

    /// The kind.
    public var kind: Kind
    /// The verified name (or, for `declared`, the name given).
    public var name: String
    /// The person's groups, from their identity source.
    public var groups: [String]

    /// Creates one.
    public init(_ kind: Kind, _ name: String, groups: [String] = []) {
        self.kind = kind
        self.name = name
        self.groups = groups
    }

    /// The name the audit trail, gates and rules know it by.
    public var actor: String {
        switch kind {
        case .person, .declared: name
        case .workload: Self.workloadPrefix + name
        case .sharedToken: Self.tokenPrefix + name
        }
    }

    /// Whether rules that count people count this principal's approvals (`isPerson(actor:)`). A
    /// declared name counts: without access control nothing is verified, and the README says so.
    public var isPerson: Bool { Self.isPerson(actor: actor) }

    /// What `from:` and `overrideBy:` name a group by: `group:NAME`.
    public static let groupPrefix = "group:"
    static let workloadPrefix = "workload:"
    static let tokenPrefix = "token:"

    /// The actors of Gatehouse's own changes and of channels that verify no person (approval links).
    public static let systemActors: Set<String> = [Gate.systemActor, Gate.flaggerActor, "link"]

    /// Whether a recorded actor is a person's: not a token's, a workload's, or Gatehouse's own.
    public static func isPerson(actor: String) -> Bool {
        !actor.hasPrefix(workloadPrefix) && !actor.hasPrefix(tokenPrefix) && !systemActors.contains(actor)
    }

    /// Whether this principal is among `names`: by its actor, or, for a person, by one of its groups
    /// (`group:NAME`).
    public func isNamed(in names: [String]) -> Bool {
        names.contains(actor)
            || (isPerson
                && names.contains {
                    $0.hasPrefix(Self.groupPrefix) && groups.contains(String($0.dropFirst(Self.groupPrefix.count)))
                })
    }

    /// The principal in words, for refusals and pages: "alice", "shared token ci", "workload shop-deploy".
    public var described: String {
        switch kind {
        case .person, .declared: name
        case .workload: "workload \(name)"
        case .sharedToken: "shared token \(name)"
        }
    }
}
