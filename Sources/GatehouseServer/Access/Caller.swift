import Crypto
import Foundation
import GatehouseCore
import HTTPTypes
import Hummingbird

/// Who is calling, verified: the principal and what it is granted.
public struct Caller: Sendable {
    /// Who: a person, a workload, a shared token, or (without access control) a declared name.
    public var principal: Principal
    /// What it may do; nil when nothing is restricted (no access file).
    public var grants: [Grant]?

    /// Creates one.
    public init(_ principal: Principal, grants: [Grant]?) {
        self.principal = principal
        self.grants = grants
    }

    /// No access control is configured: everyone may do everything, as with the loadtester.
    public static func unrestricted(actor: String) -> Caller { Caller(Principal(.declared, actor), grants: nil) }

    /// A token from the access file: a person's or a shared one, as the file says.
    public static func token(_ token: AccessPolicy.Token) -> Caller {
        Caller(Principal(token.kind, token.name), grants: [token.grant])
    }

    /// A person an identity source named (single sign-on, an authenticating proxy), with their groups
    /// and the grants the access file gives them and their groups.
    public static func person(name: String, groups: [String], grants: [Grant]) -> Caller {
        Caller(Principal(.person, name, groups: groups), grants: grants)
    }

    /// The name recorded in the audit trail.
    public var actor: String { principal.actor }

    /// Whether the caller may do `action` in all of `area`.
    public func allows(_ action: AccessAction, in area: Area) -> Bool {
        grants.map { $0.contains { $0.allows(action, in: area) } } ?? true
    }

    /// Whether the caller may do `action` somewhere in `area`.
    public func reaches(_ action: AccessAction, in area: Area) -> Bool {
        grants.map { $0.contains { $0.reaches(action, in: area) } } ?? true
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

    /// Checks that the request's caller may do `action` in all of `area` and returns who it is.
    @discardableResult
    func authorize(_ action: AccessAction, in area: Area, context: some CallerContext) throws -> Principal {
        try authorize(action, in: area, caller: try requireCaller(context))
    }

    /// Checks that `caller` may do `action` in all of `area` (and that the area is served here) and
    /// returns who it is. The one place every change is authorized (`GateOperations`).
    func authorize(_ action: AccessAction, in area: Area, caller: Caller) throws -> Principal {
        if let namespace = area.namespace { try requireNamespace(namespace) }
        guard caller.allows(action, in: area) else {
            throw GatehouseError.forbidden("\(caller.principal.described) may not \(action.rawValue) in \(area)")
        }
        return caller.principal
    }

    /// Whether the caller may see something in `area`: a canary's namespace, or what a freeze covers.
    func canRead(_ area: Area, context: some CallerContext) -> Bool {
        (area.namespace.map { namespaces?.allows($0) ?? true } ?? true)
            && (context.caller?.reaches(.read, in: area) ?? false)
    }
}

/// Resolves the bearer token to a caller: a token from the access file, or a workload's OpenID
/// Connect ID token (its CI's, verified against its issuer's keys); without an access file every
/// caller is unrestricted and names itself with `X-Gatehouse-Actor`.
struct BearerAuthMiddleware<Context: CallerContext & MutableCallerContext>: RouterMiddleware {
    let access: AccessControl?
    /// Verifies workloads' identity tokens.
    var identity: IssuerKeys?
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
        let policy = access.policy
        if let token = policy.token(presented: presented) {
            context.caller = .token(token)
        } else if IssuerKeys.looksLikeJWT(presented), let identity {
            context.caller = try await Self.workload(presented, policy: policy, identity: identity)
        } else {
            throw GatehouseError.unauthorized("the bearer token is not known")
        }
        return try await next(request, context)
    }

    /// The workload an identity token proves: verified against the keys of the issuer it names
    /// (only issuers the access file lists are ever asked), then matched against each workload of
    /// that issuer; every workload it matches grants what it lists.
    static func workload(_ token: String, policy: AccessPolicy, identity: IssuerKeys) async throws -> Caller {
        guard let issuer = IssuerKeys.unverifiedIssuer(of: token),
            case let candidates = policy.workloads.filter({ $0.issuer == issuer }), !candidates.isEmpty
        else {
            throw GatehouseError.unauthorized("the bearer token is not known, and no workload trusts its issuer")
        }
        let claims: IdentityClaims
        do {
            claims = try await identity.verify(
                token, issuer: issuer, audiences: Array(Set(candidates.map(\.audience))))
        } catch let refused as IdentityTokenRefused {
            throw GatehouseError.unauthorized(refused.message)
        }
        let matched = candidates.filter { $0.matches(claims) && claims.audiences.contains($0.audience) }
        guard let first = matched.first else {
            throw GatehouseError.forbidden(
                "the identity token of \(claims.subjectName.prefix(200)) from \(issuer) matches no workload in the access file"
            )
        }
        return Caller(Principal(.workload, first.name), grants: matched.map(\.grant))
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
