import Crypto
import Foundation
import GatehouseCore
import GatehouseStore
import HTTPTypes
import Hummingbird

/// A dashboard session, carried signed in a cookie. Every visitor has one (its id keys the CSRF
/// token of the sign-in form); signing in starts a new one naming the token or the person.
struct DashboardSession: Codable, Sendable, Equatable {
    /// Random, 16 bytes; new at each sign-in and sign-out.
    var id: String
    /// The access file token it was signed in with.
    var token: String?
    /// A fingerprint of that token's hash: a token replaced or removed from the file ends its sessions.
    var fingerprint: String?
    /// The person single sign-on named, and their groups.
    var person: String?
    var groups: [String]?
    /// When it ends (Unix seconds).
    var expires: Int64

    /// Whether someone signed in with it.
    var isSignedIn: Bool { token != nil || person != nil }
}

/// Issues, reads and ends dashboard sessions, and derives each one's CSRF token.
final class DashboardSessions: Sendable {
    static let cookieName = "gatehouse_session"

    /// Signs the session cookie, and single sign-on's attempt cookie.
    let seal: Seal
    /// How long a session lasts.
    let lifetime: TimeInterval

    /// `secret` signs the cookies; without one, a random key: sessions end when the process does.
    init(secret: String?, lifetime: TimeInterval) {
        seal = Seal(
            key: secret.map { SymmetricKey(data: SHA256.hash(data: Data($0.utf8))) } ?? SymmetricKey(size: .bits256))
        self.lifetime = lifetime
    }

    /// A new session, signed in with `token` or not at all.
    func start(with token: AccessPolicy.Token? = nil, at now: Date) -> DashboardSession {
        let id = SymmetricKey(size: .bits128).withUnsafeBytes { Data($0) }.base64URLString
        return DashboardSession(
            id: id, token: token?.name, fingerprint: token.map(Self.fingerprint),
            expires: Int64(now.addingTimeInterval(lifetime).timeIntervalSince1970))
    }

    /// A new session for a person single sign-on named.
    func start(person: String, groups: [String], at now: Date) -> DashboardSession {
        var session = start(at: now)
        session.person = person
        session.groups = groups
        return session
    }

    /// The session a cookie carries, if it is ours and not over (whether it was signed out is
    /// `isSignedOut`'s to say).
    func session(from cookie: String, at now: Date) -> DashboardSession? {
        guard let session = seal.value(DashboardSession.self, from: cookie),
            session.expires > Int64(now.timeIntervalSince1970)
        else { return nil }
        return session
    }

    /// Whether a signed-in session was signed out (`end`): looked up in the database, so that a
    /// sign-out holds across restarts and replicas; when storage cannot answer, it counts as signed out.
    func isSignedOut(_ session: DashboardSession, store: GateStore) async -> Bool {
        guard session.isSignedIn else { return false }
        return (try? await store.isUsed(Self.signOutMark(of: session))) != false
    }

    /// Ends a session before its time (sign-out), for every replica and after restarts: its mark is
    /// stored with the single-use tokens, until the session would have ended anyway.
    func end(_ session: DashboardSession, at now: Date, store: GateStore) async throws {
        guard session.isSignedIn else { return }
        _ = try await store.useOnce(
            Self.signOutMark(of: session), expiresAt: Date(timeIntervalSince1970: TimeInterval(session.expires)),
            at: now)
    }

    /// What marks a session signed out among the single-use tokens (apart from links' nonces).
    private static func signOutMark(of session: DashboardSession) -> String {
        "signed-out session " + session.id
    }

    /// The token every form of this session must carry.
    func csrfToken(for session: DashboardSession) -> String {
        seal.signature(of: "csrf " + session.id)
    }

    /// The cookie that carries `session`: HttpOnly, SameSite=Lax, Secure when the page came over TLS.
    func cookie(for session: DashboardSession, secure: Bool, at now: Date) -> Cookie {
        Cookie(
            name: Self.cookieName, value: seal.token(for: session),
            maxAge: max(0, Int(session.expires - Int64(now.timeIntervalSince1970))), path: "/", secure: secure,
            httpOnly: true, sameSite: .lax)
    }

    /// The token a session was signed in with, if the access file still holds it unchanged.
    func token(of session: DashboardSession, in policy: AccessPolicy) -> AccessPolicy.Token? {
        guard let name = session.token else { return nil }
        return policy.tokens.first { $0.name == name && Self.fingerprint($0) == session.fingerprint }
    }

    private static func fingerprint(_ token: AccessPolicy.Token) -> String {
        SHA256.hash(data: Data(token.hash)).prefix(12).hexString
    }
}

/// How the dashboard knows its viewer.
enum SignInMethod: Sendable {
    /// No access file: everyone may do everything, as with the API.
    case open
    /// An authenticating proxy named them.
    case proxy
    /// They signed in with an access token.
    case token
    /// They signed in through single sign-on.
    case singleSignOn
    /// Not signed in.
    case none
}

/// What the dashboard knows of one request: the session, its CSRF token, how the viewer is known.
struct DashboardVisit: Sendable {
    var session: DashboardSession
    var csrfToken: String
    var method: SignInMethod
    /// Whether the page came over TLS (a proxy's `X-Forwarded-Proto: https`): cookies are then Secure.
    var isSecure: Bool
}

/// Knows the dashboard's viewer: a trusted proxy's user header, else the session's token, else
/// (with no access file) everyone. Sets the caller every route authorizes with, the session
/// cookie when it is new, and the headers every page carries.
struct DashboardSignIn: RouterMiddleware {
    typealias Context = GatehouseRequestContext

    let access: AccessControl?
    let sessions: DashboardSessions
    let proxies: TrustedProxies?
    /// Renders a refusal as a page.
    let pages: DashboardPages
    /// Where sign-outs are kept.
    let store: GateStore

    /// The actor recorded for dashboard changes when there is no access control.
    static let openActor = "dashboard"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        var context = context
        let now = Date()
        var existing = request.cookies[DashboardSessions.cookieName].flatMap {
            sessions.session(from: $0.value, at: now)
        }
        if let session = existing, await sessions.isSignedOut(session, store: store) { existing = nil }
        let session = existing ?? sessions.start(at: now)
        let (caller, method) = viewer(of: request, session: session, context: context)
        context.caller = caller
        let visit = DashboardVisit(
            session: session, csrfToken: sessions.csrfToken(for: session), method: method,
            isSecure: Self.isSecure(request))
        context.visit = visit
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = try pages.failure(error, request: request, context: context)
        }
        // A new visitor's session, unless the page started another (sign-in, sign-out).
        let setsSession = response.headers[values: .setCookie].contains {
            $0.hasPrefix(DashboardSessions.cookieName + "=")
        }
        if existing == nil && !setsSession {
            response.setCookie(sessions.cookie(for: session, secure: visit.isSecure, at: now))
        }
        Self.secure(&response.headers)
        return response
    }

    /// The caller and how they are known.
    private func viewer(of request: Request, session: DashboardSession, context: Context) -> (Caller?, SignInMethod) {
        if let proxies, proxies.trusts(context.remoteAddress),
            let user = Self.header(proxies.userHeader, of: request)
        {
            let groups =
                Self.header(proxies.groupsHeader, of: request)?.split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } ?? []
            guard let access else { return (.unrestricted(actor: user), .proxy) }
            return (
                .person(name: user, groups: groups, grants: access.policy.personGrants(user: user, groups: groups)),
                .proxy
            )
        }
        guard let access else { return (.unrestricted(actor: Self.openActor), .open) }
        if let person = session.person {
            let groups = session.groups ?? []
            return (
                .person(name: person, groups: groups, grants: access.policy.personGrants(user: person, groups: groups)),
                .singleSignOn
            )
        }
        if let token = sessions.token(of: session, in: access.policy) { return (.token(token), .token) }
        return (nil, .none)
    }

    /// A header's value, if present, printable and of a sensible length.
    private static func header(_ name: String, of request: Request) -> String? {
        guard let field = HTTPField.Name(name),
            let value = request.headers[field]?.trimmingCharacters(in: .whitespaces), !value.isEmpty,
            value.count <= 256, value.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
        else { return nil }
        return value
    }

    private static func isSecure(_ request: Request) -> Bool {
        request.uri.scheme == .https
            || request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased().hasPrefix("https") == true
    }

    /// What every dashboard answer carries: no framing, no inline script, nothing from elsewhere.
    private static func secure(_ headers: inout HTTPFields) {
        headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        if headers[.cacheControl] == nil { headers[.cacheControl] = "no-store" }
    }
}
