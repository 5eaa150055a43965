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

    /// The name recorded in the audit trail.
    public var actor: String {
        switch self {
        case .unrestricted(let actor): actor
        case .token(let token): token.name
        }
    }

    /// Whether the caller may do `action` in `namespace` (nil: in every namespace).
    public func allows(_ action: AccessAction, in namespace: String?) -> Bool {
        switch self {
        case .unrestricted: true
        case .token(let token): token.grant.allows(action, in: namespace)
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

    /// Checks that the caller may do `action` in `namespace` (nil: every namespace) and returns the actor to record.
    func authorize(_ action: AccessAction, in namespace: String?, context: some CallerContext) throws -> String {
        if let namespace { try requireNamespace(namespace) }
        let caller = try requireCaller(context)
        guard caller.allows(action, in: namespace) else {
            let scope = namespace.map { "in namespace \($0)" } ?? "in every namespace"
            throw GatehouseError.forbidden("\(caller.actor) may not \(action.rawValue) \(scope)")
        }
        return caller.actor
    }

    /// Whether the caller may see a namespace's canaries and events.
    func canRead(_ namespace: String, context: some CallerContext) -> Bool {
        (namespaces?.allows(namespace) ?? true) && (context.caller?.allows(.read, in: namespace) ?? false)
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

/// With `--flagger-token`, Flagger-facing routes require that secret in the webhook's `metadata.token`,
/// so a stray caller cannot use up steps or trigger a rollback check.
struct FlaggerSecretMiddleware: RouterMiddleware {
    typealias Context = GatehouseRequestContext

    let secret: FlaggerSecret

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        try secret.verify(context.flaggerCall?.payload)
        return try await next(request, context)
    }
}

/// The secret Flagger sends in `metadata.token`, if one is configured.
struct FlaggerSecret: Sendable {
    /// The secret's SHA-256 hash; nil when no secret is configured.
    private let hash: [UInt8]?

    init(_ secret: String?) {
        hash = secret.map { Array(SHA256.hash(data: Data($0.utf8))) }
    }

    /// Refuses a payload without the configured secret.
    func verify(_ payload: FlaggerPayload?) throws {
        guard let hash else { return }
        // Hashing the presented token first makes the comparison's time independent of the secret's length too.
        let presented = Array(SHA256.hash(data: Data((payload?.metadata?["token"] ?? "").utf8)))
        guard constantTimeEqual(presented, hash) else {
            throw GatehouseError.forbidden("the webhook's metadata.token is missing or wrong")
        }
    }
}
