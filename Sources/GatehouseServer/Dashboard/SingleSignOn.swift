import Crypto
import Foundation
import GatehouseCore
import HTTPTypes
import Hummingbird

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Single sign-on for the dashboard: OpenID Connect's authorization code flow with PKCE (S256),
/// `state` and `nonce`. The provider is found through discovery; its ID token is checked against
/// its published keys (signature, issuer, audience, expiry) and the nonce this sign-in sent.
struct SingleSignOn: Sendable {
    /// How the dashboard signs in at the provider.
    struct Settings: Sendable, Equatable {
        var issuer: String
        var clientID: String
        var clientSecret: String?
        var nameClaim = "email"
        var groupsClaim = "groups"
        var scopes = "openid email profile"
        var redirectURL: String?
    }

    /// One sign-in under way, kept signed in a short-lived cookie between leaving for the provider
    /// and coming back: what the answer must match, and where to return.
    struct Attempt: Codable {
        var state: String
        var nonce: String
        var verifier: String
        var redirect: String
        var next: String
        var expires: Int64
    }

    /// A person the provider vouched for.
    struct SignedIn {
        var name: String
        var groups: [String]
    }

    static let attemptCookie = "gatehouse_sso"
    /// How long a person may take at the provider.
    static let attemptLifetime: TimeInterval = 600
    static let callbackPath = "/sign-in/sso/callback"

    let settings: Settings
    let keys: IssuerKeys
    private let seal: Seal
    private let session: URLSession

    init(settings: Settings, keys: IssuerKeys, sessions: DashboardSessions) {
        self.settings = settings
        self.keys = keys
        seal = sessions.seal
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 10
        configuration.timeoutIntervalForResource = 10
        session = URLSession(configuration: configuration)
    }

    /// Sends the browser to the provider, remembering this attempt in a cookie.
    func start(next: String, request: Request, isSecure: Bool, at now: Date) async throws -> Response {
        let metadata: ProviderMetadata
        do {
            metadata = try await keys.metadata(of: settings.issuer)
        } catch let refused as IdentityTokenRefused {
            throw GatehouseError.unavailable("single sign-on is unavailable: \(refused.message)")
        }
        guard let endpoint = metadata.authorizationEndpoint, var address = URLComponents(string: endpoint) else {
            throw GatehouseError.unavailable(
                "single sign-on is unavailable: the provider names no authorization endpoint")
        }
        let redirect = settings.redirectURL ?? Self.ownAddress(of: request, isSecure: isSecure) + Self.callbackPath
        let attempt = Attempt(
            state: Self.random(), nonce: Self.random(), verifier: Self.random(bytes: 32), redirect: redirect,
            next: next, expires: Int64(now.addingTimeInterval(Self.attemptLifetime).timeIntervalSince1970))
        address.queryItems =
            (address.queryItems ?? []) + [
                URLQueryItem(name: "response_type", value: "code"),
                URLQueryItem(name: "client_id", value: settings.clientID),
                URLQueryItem(name: "redirect_uri", value: redirect),
                URLQueryItem(name: "scope", value: settings.scopes),
                URLQueryItem(name: "state", value: attempt.state),
                URLQueryItem(name: "nonce", value: attempt.nonce),
                URLQueryItem(name: "code_challenge", value: Self.challenge(of: attempt.verifier)),
                URLQueryItem(name: "code_challenge_method", value: "S256"),
            ]
        var response = Response(status: .seeOther, headers: [.location: address.string ?? endpoint])
        response.setCookie(
            Cookie(
                name: Self.attemptCookie, value: seal.token(for: attempt), maxAge: Int(Self.attemptLifetime),
                path: "/sign-in/sso", secure: isSecure, httpOnly: true, sameSite: .lax))
        return response
    }

    /// Reads the provider's answer: the attempt it answers (state), the code exchanged for tokens
    /// (with the PKCE verifier), the ID token verified, its nonce matched. Says in one sentence why not.
    func finish(_ request: Request, at now: Date) async throws -> (SignedIn, next: String) {
        let query = request.uri.queryParameters
        guard
            let attempt = request.cookies[Self.attemptCookie].flatMap({ seal.value(Attempt.self, from: $0.value) }),
            attempt.expires > Int64(now.timeIntervalSince1970)
        else {
            throw GatehouseError.unauthorized(
                "this sign-in was not started here or took too long (over ten minutes); sign in again")
        }
        if let error = query["error"] {
            let description = query["error_description"].map { ": \(String($0).prefix(200))" } ?? ""
            throw GatehouseError.unauthorized(
                "the identity provider refused the sign-in (\(error.prefix(80))\(description))")
        }
        guard let state = query["state"], constantTimeEqual(Array(state.utf8), Array(attempt.state.utf8)) else {
            throw GatehouseError.unauthorized("the sign-in's state does not match the one sent; sign in again")
        }
        guard let code = query["code"], !code.isEmpty else {
            throw GatehouseError.unauthorized("the identity provider sent no code; sign in again")
        }
        let idToken = try await exchange(String(code), attempt: attempt)
        let claims: IdentityClaims
        do {
            claims = try await keys.verify(idToken, issuer: settings.issuer, audiences: [settings.clientID])
        } catch let refused as IdentityTokenRefused {
            throw GatehouseError.unauthorized(refused.message)
        }
        guard let nonce = claims.text("nonce"), constantTimeEqual(Array(nonce.utf8), Array(attempt.nonce.utf8)) else {
            throw GatehouseError.unauthorized("the ID token's nonce is not this sign-in's; sign in again")
        }
        guard let name = claims.text(settings.nameClaim), !name.isEmpty, name.count <= 256,
            Principal.isPerson(actor: name)
        else {
            throw GatehouseError.unauthorized(
                "the ID token has no \(settings.nameClaim) claim to name you by (--oidc-name-claim)")
        }
        return (SignedIn(name: name, groups: Array(claims.texts(settings.groupsClaim).prefix(256))), attempt.next)
    }

    /// The cookie that ends an attempt once it is answered.
    func attemptEnded(isSecure: Bool) -> Cookie {
        Cookie(
            name: Self.attemptCookie, value: "", maxAge: 0, path: "/sign-in/sso", secure: isSecure, httpOnly: true,
            sameSite: .lax)
    }

    /// Exchanges the code at the token endpoint (client_secret_basic when there is a secret) for the ID token.
    private func exchange(_ code: String, attempt: Attempt) async throws -> String {
        let metadata: ProviderMetadata
        do {
            metadata = try await keys.metadata(of: settings.issuer)
        } catch let refused as IdentityTokenRefused {
            throw GatehouseError.unavailable("single sign-on is unavailable: \(refused.message)")
        }
        guard let endpoint = metadata.tokenEndpoint.flatMap(URL.init(string:)) else {
            throw GatehouseError.unavailable("single sign-on is unavailable: the provider names no token endpoint")
        }
        var request = URLRequest(url: endpoint, timeoutInterval: 10)
        request.httpMethod = "POST"
        request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        var fields = [
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", attempt.redirect),
            ("code_verifier", attempt.verifier),
        ]
        if let secret = settings.clientSecret {
            let credentials = "\(Self.formEncoded(settings.clientID)):\(Self.formEncoded(secret))"
            request.setValue(
                "Basic " + Data(credentials.utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        } else {
            fields.append(("client_id", settings.clientID))
        }
        request.httpBody = Data(fields.map { "\($0)=\(Self.formEncoded($1))" }.joined(separator: "&").utf8)
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(for: request)
        } catch {
            throw GatehouseError.unavailable(
                "the identity provider's token endpoint cannot be reached: \(error.localizedDescription)")
        }
        struct Tokens: Decodable {
            var idToken: String?
            var error: String?
            enum CodingKeys: String, CodingKey {
                case idToken = "id_token"
                case error
            }
        }
        let tokens = try? JSONDecoder().decode(Tokens.self, from: data.prefix(IssuerKeys.largestDocument))
        guard (response as? HTTPURLResponse)?.statusCode == 200, let idToken = tokens?.idToken else {
            throw GatehouseError.unauthorized(
                "the identity provider did not exchange the code for an ID token (\(tokens?.error ?? "no id_token")); sign in again"
            )
        }
        return idToken
    }

    /// This service's address as the browser reached it (scheme from TLS or the proxy's header).
    private static func ownAddress(of request: Request, isSecure: Bool) -> String {
        "\(isSecure ? "https" : "http")://\(request.head.authority ?? "localhost")"
    }

    private static func random(bytes: Int = 16) -> String {
        SymmetricKey(size: SymmetricKeySize(bitCount: bytes * 8)).withUnsafeBytes { Data($0) }.base64URLString
    }

    /// PKCE's S256 challenge: base64url(SHA-256(verifier)).
    static func challenge(of verifier: String) -> String {
        Data(SHA256.hash(data: Data(verifier.utf8))).base64URLString
    }

    /// A form field's value encoded (application/x-www-form-urlencoded).
    private static func formEncoded(_ text: String) -> String {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._*")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
