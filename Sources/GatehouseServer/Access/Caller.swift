import Crypto
import Foundation
import GatehouseCore
import HTTPTypes
import Hummingbird

/// Who is calling, once the bearer token (if any) has been checked.
public enum Caller: Sendable {
    /// No access control is configured: everyone may do everything, as with the loadtester.
    case unrestricted(actor: String)
    /// A token from the access file.
    case token(AccessPolicy.Token)
    /// A person an authenticating proxy named, with the grants the access file gives them and their groups.
    case person(name: String, grants: [Grant])

    /// The name recorded in the audit trail.
    public var actor: String {
        switch self {
        case .unrestricted(let actor): actor
        case .token(let token): token.name
        case .person(let name, _): name
        }
    }

    /// Whether the caller may do `action` in all of `area`.
    public func allows(_ action: AccessAction, in area: Area) -> Bool {
        grants.map { $0.contains { $0.allows(action, in: area) } } ?? true
    }

    /// Whether the caller may do `action` somewhere in `area`.
    public func reaches(_ action: AccessAction, in area: Area) -> Bool {
        grants.map { $0.contains { $0.reaches(action, in: area) } } ?? true
    }

    /// What the caller is granted; nil when nothing is restricted.
    private var grants: [Grant]? {
        switch self {
        case .unrestricted: nil
        case .token(let token): [token.grant]
        case .person(_, let grants): grants
        }
    }
}

/// A request context that knows its caller.
public protocol CallerContext: RequestContext {
    /// The caller, set by `BearerAuthMiddleware` on routes that need one.
    var caller: Caller? { get }
}

/// The loadtester's `--namespace-regexp`: canaries outside matching namespaces are refused.
public struct NamespaceFilter: Sendable {
    /// The expression as given.
    public let pattern: String
    private let expression: NSRegularExpression

    /// Compiles the expression, or explains what is wrong with it.
    public init(_ pattern: String) throws(InvalidInput) {
        do {
            expression = try NSRegularExpression(pattern: pattern)
        } catch {
            throw InvalidInput("--namespace-regexp '\(pattern)' is not a valid regular expression")
        }
        self.pattern = pattern
    }

    /// Whether the expression matches somewhere in the namespace, as the loadtester's does (anchor it with ^…$).
    public func allows(_ namespace: String) -> Bool {
        expression.firstMatch(in: namespace, range: NSRange(namespace.startIndex..., in: namespace)) != nil
    }
}

/// Decides whether a caller may act, in one place for every operator route.
struct AccessGuard: Sendable {
    let namespaces: NamespaceFilter?

    /// Refuses a canary outside `--namespace-regexp`, whoever asks (Flagger included).
    func requireNamespace(_ namespace: String) throws {
        if let namespaces, !namespaces.allows(namespace) {
            throw GatehouseError.forbidden(
                "namespace \(namespace) is not served here (--namespace-regexp '\(namespaces.pattern)')")
        }
    }

    /// Refuses a request that reached an operator route without a caller.
    @discardableResult
    func requireCaller(_ context: some CallerContext) throws -> Caller {
        guard let caller = context.caller else {
            throw GatehouseError.unauthorized("this request needs a bearer token")
        }
        return caller
    }

    /// Checks that the caller may do `action` in all of `area` and returns the actor to record.
    func authorize(_ action: AccessAction, in area: Area, context: some CallerContext) throws -> String {
        if let namespace = area.namespace { try requireNamespace(namespace) }
        let caller = try requireCaller(context)
        guard caller.allows(action, in: area) else {
            throw GatehouseError.forbidden("\(caller.actor) may not \(action.rawValue) in \(area)")
        }
        return caller.actor
    }

    /// Whether the caller may see something in `area`: a canary's namespace, or what a freeze covers.
    func canRead(_ area: Area, context: some CallerContext) -> Bool {
        (area.namespace.map { namespaces?.allows($0) ?? true } ?? true)
            && (context.caller?.reaches(.read, in: area) ?? false)
    }
}

/// Resolves the bearer token to a caller; without an access file every caller is unrestricted and
/// names itself with `X-Gatehouse-Actor`.
struct BearerAuthMiddleware<Context: CallerContext & MutableCallerContext>: RouterMiddleware {
    let access: AccessControl?
    /// The actor recorded for an undeclared caller when there is no access control.
    var anonymousActor = "api"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        var context = context
        guard let access else {
            context.caller = .unrestricted(actor: ActorHeader.of(request, fallback: anonymousActor))
            return try await next(request, context)
        }
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            throw GatehouseError.unauthorized("this request needs a bearer token (Authorization: Bearer TOKEN)")
        }
        let presented = header.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces)
        guard let token = access.policy.token(presented: presented) else {
            throw GatehouseError.unauthorized("the bearer token is not known")
        }
        context.caller = .token(token)
        return try await next(request, context)
    }
}

/// A context whose caller can be set.
public protocol MutableCallerContext {
    /// The caller.
    var caller: Caller? { get set }
}

/// Flagger's secrets, if any are configured: `--flagger-token`, which any cluster's Flagger may
/// send, and the access file's `flagger:` list, whose secrets each name one cluster. A call must
/// carry one of them in `metadata.token`; the secret decides its cluster when it names one,
/// `metadata.cluster` otherwise.
struct FlaggerSecret: Sendable {
    /// The SHA-256 of `--flagger-token`; nil when none is configured.
    private let hash: [UInt8]?
    /// The access file, whose `flagger:` list is read as it is now.
    private let access: AccessControl?

    init(_ secret: String?, access: AccessControl? = nil) {
        hash = secret.map { Array(SHA256.hash(data: Data($0.utf8))) }
        self.access = access
    }

    /// The cluster a call belongs to; refuses one without a configured secret, or whose
    /// `metadata.cluster` is not the cluster its secret names.
    func cluster(of payload: FlaggerPayload) throws -> String {
        let named = payload.metadata?["cluster"]
        let clusters = access?.policy.flaggerClusters ?? []
        guard hash != nil || !clusters.isEmpty else { return named ?? "" }
        let presented = payload.metadata?["token"] ?? ""
        if let owner = access?.policy.flaggerCluster(presented: presented) {
            if let named, named != owner {
                throw GatehouseError.forbidden(
                    "metadata.cluster is \(named.prefix(63)), but the webhook's metadata.token is cluster \(owner)'s")
            }
            return owner
        }
        // Hashing the presented token first makes the comparison's time independent of the secret's length too.
        guard let hash, constantTimeEqual(Array(SHA256.hash(data: Data(presented.utf8))), hash) else {
            throw GatehouseError.forbidden("the webhook's metadata.token is missing or wrong")
        }
        return named ?? ""
    }
}
