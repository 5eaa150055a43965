import Foundation
import JWTKit
import Logging

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// One claim's value in an identity token, as JSON has it.
enum ClaimValue: Codable, Sendable, Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case array([ClaimValue])
    case object([String: ClaimValue])
    case null

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([ClaimValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: ClaimValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }

    /// The value as text, for matching a claim against a pattern: strings as they are, numbers
    /// and booleans as JSON writes them; nil for arrays, objects and null.
    var text: String? {
        switch self {
        case .string(let value): value
        case .number(let value): value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        case .bool(let value): value ? "true" : "false"
        case .array, .object, .null: nil
        }
    }
}

/// The verified claims of an OpenID Connect ID token: a person's, from signing in, or a job's,
/// from its CI (GitHub Actions, GitLab CI, a Kubernetes service account).
struct IdentityClaims: JWTIdentityToken {
    var issuer: IssuerClaim
    var audience: AudienceClaim
    var expires: ExpirationClaim
    var notBefore: NotBeforeClaim?
    var subject: SubjectClaim
    /// Every claim, by name.
    var claims: [String: ClaimValue]

    /// How far clocks may disagree.
    static let leeway: TimeInterval = 60

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        issuer = try container.decode(IssuerClaim.self, forKey: Key(stringValue: "iss"))
        audience = try container.decode(AudienceClaim.self, forKey: Key(stringValue: "aud"))
        expires = try container.decode(ExpirationClaim.self, forKey: Key(stringValue: "exp"))
        notBefore = try container.decodeIfPresent(NotBeforeClaim.self, forKey: Key(stringValue: "nbf"))
        subject = try container.decode(SubjectClaim.self, forKey: Key(stringValue: "sub"))
        var claims: [String: ClaimValue] = [:]
        for key in container.allKeys { claims[key.stringValue] = try container.decode(ClaimValue.self, forKey: key) }
        self.claims = claims
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (name, value) in claims { try container.encode(value, forKey: Key(stringValue: name)) }
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try expires.verifyNotExpired(currentDate: Date().addingTimeInterval(-Self.leeway))
        try notBefore?.verifyNotBefore(currentDate: Date().addingTimeInterval(Self.leeway))
    }

    /// Whom the token names (`sub`).
    var subjectName: String { subject.value }
    /// The audiences it was issued for (`aud`).
    var audiences: [String] { audience.value }
    /// Who issued it (`iss`).
    var issuerName: String { issuer.value }

    /// A claim as text (see `ClaimValue.text`); a dotted name reaches into objects (`a.b`).
    func text(_ name: String) -> String? { value(name)?.text }

    /// A claim as a list of texts: an array's texts, or a single text (how providers send groups).
    func texts(_ name: String) -> [String] {
        switch value(name) {
        case .array(let values)?: values.compactMap(\.text)
        case let value?: value.text.map { [$0] } ?? []
        case nil: []
        }
    }

    private func value(_ name: String) -> ClaimValue? {
        if let direct = claims[name] { return direct }
        var parts = name.split(separator: ".").map(String.init)[...]
        guard let first = parts.popFirst(), var current = claims[first] else { return nil }
        for part in parts {
            guard case .object(let object) = current, let next = object[part] else { return nil }
            current = next
        }
        return current
    }
}

/// What an OpenID provider's discovery document says (`/.well-known/openid-configuration`).
struct ProviderMetadata: Decodable, Sendable {
    var issuer: String
    var jwksURI: String
    var authorizationEndpoint: String?
    var tokenEndpoint: String?

    enum CodingKeys: String, CodingKey {
        case issuer
        case jwksURI = "jwks_uri"
        case authorizationEndpoint = "authorization_endpoint"
        case tokenEndpoint = "token_endpoint"
    }
}

/// Why an identity token was refused, in one sentence.
struct IdentityTokenRefused: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// The keys of the OpenID providers this service trusts, fetched through discovery and kept.
/// A token naming a key id not seen yet makes its provider's keys be fetched again, at most once
/// every `refreshInterval` for each provider (a key rotation is followed at once; a flood of
/// made-up key ids costs one fetch a minute). Only issuers named in configuration are ever fetched.
actor IssuerKeys {
    private struct Provider {
        var metadata: ProviderMetadata
        var keys: JWTKeyCollection
        var keyIDs: Set<String>
    }

    private var providers: [String: Provider] = [:]
    private var fetching: [String: Task<Provider, any Error>] = [:]
    /// When an unknown key id last made each provider's keys be fetched again.
    private var refreshedForUnknownKey: [String: ContinuousClock.Instant] = [:]
    private let session: URLSession
    private let refreshInterval: Duration
    private let logger: Logger
    /// The most a discovery document or key set may weigh.
    static let largestDocument = 1 << 20
    /// The most keys kept of one provider.
    static let mostKeys = 64

    init(refreshInterval: Duration = .seconds(60), timeout: TimeInterval = 5, logger: Logger) {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        session = URLSession(configuration: configuration)
        self.refreshInterval = refreshInterval
        self.logger = logger
    }

    /// The provider's discovery document, fetched once and kept.
    func metadata(of issuer: String) async throws -> ProviderMetadata {
        try await provider(issuer, refresh: false).metadata
    }

    /// Verifies `token`'s signature against `issuer`'s keys, its issuer, audience (one of
    /// `audiences`), expiry and not-before; returns its claims or says why it is refused.
    func verify(_ token: String, issuer: String, audiences: [String]) async throws -> IdentityClaims {
        let keyID = Self.keyID(of: token)
        var provider = try await provider(issuer, refresh: false)
        if let keyID, !provider.keyIDs.contains(keyID),
            refreshedForUnknownKey[issuer].map({ ContinuousClock.now - $0 >= refreshInterval }) ?? true
        {
            refreshedForUnknownKey[issuer] = ContinuousClock.now
            provider = try await self.provider(issuer, refresh: true)
        }
        if let keyID, !provider.keyIDs.contains(keyID) {
            throw IdentityTokenRefused("the identity token is signed with a key \(issuer) does not publish")
        }
        let claims: IdentityClaims
        do {
            claims = try await provider.keys.verify(token, as: IdentityClaims.self, expectedAudiences: audiences)
        } catch let error as JWTError {
            throw IdentityTokenRefused("the identity token is not valid: \(Self.words(error))")
        }
        guard claims.issuerName == issuer else {
            throw IdentityTokenRefused(
                "the identity token was issued by \(claims.issuerName.prefix(200)), not \(issuer)")
        }
        return claims
    }

    /// The issuer a token says it comes from, read without verifying anything (to pick its keys).
    static func unverifiedIssuer(of token: String) -> String? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = Data(base64URL: String(parts[1])),
            let object = try? JSONSerialization.jsonObject(with: payload) as? [String: Any]
        else { return nil }
        return object["iss"] as? String
    }

    /// Whether a bearer token has the shape of a JWT (three base64url parts, a JSON header).
    static func looksLikeJWT(_ token: String) -> Bool {
        token.hasPrefix("eyJ") && token.split(separator: ".", omittingEmptySubsequences: false).count == 3
    }

    private static func keyID(of token: String) -> String? {
        guard let header = token.split(separator: ".").first, let data = Data(base64URL: String(header)),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object["kid"] as? String
    }

    private static func words(_ error: JWTError) -> String {
        let text = "\(error)"
        if text.contains("exp") || text.lowercased().contains("expired") { return "it has expired" }
        if text.lowercased().contains("audience") { return "it was not issued for this service (aud)" }
        if text.lowercased().contains("signature") { return "its signature does not verify" }
        if text.lowercased().contains("nbf") || text.lowercased().contains("not before") {
            return "it is not valid yet (nbf)"
        }
        return "it cannot be read as a signed ID token"
    }

    private func provider(_ issuer: String, refresh: Bool) async throws -> Provider {
        if !refresh, let known = providers[issuer] { return known }
        if let running = fetching[issuer] { return try await running.value }
        let task = Task { [session, logger] in
            try await Self.fetch(issuer, session: session, logger: logger)
        }
        fetching[issuer] = task
        defer { fetching[issuer] = nil }
        do {
            let fetched = try await task.value
            providers[issuer] = fetched
            return fetched
        } catch {
            // Keys fetched before stay usable when the provider cannot be reached for a moment.
            if let known = providers[issuer] { return known }
            throw error
        }
    }

    private static func fetch(_ issuer: String, session: URLSession, logger: Logger) async throws -> Provider {
        let trimmed = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        let metadata = try await document(
            ProviderMetadata.self, at: trimmed + "/.well-known/openid-configuration", session: session)
        guard metadata.issuer == issuer else {
            throw IdentityTokenRefused(
                "\(issuer)'s discovery document names another issuer (\(metadata.issuer.prefix(200)))")
        }
        let keySet = try await document(JWKS.self, at: metadata.jwksURI, session: session)
        let keys = JWTKeyCollection()
        var keyIDs = Set<String>()
        for key in keySet.keys.prefix(mostKeys) {
            guard key.keyIdentifier != nil || keySet.keys.count == 1 else { continue }
            do {
                try await keys.add(jwk: key)
                if let id = key.keyIdentifier { keyIDs.insert(id.string) }
            } catch {
                logger.notice("a key of \(issuer) is not usable: \(error)")
            }
        }
        logger.info("identity provider keys fetched", metadata: ["issuer": "\(issuer)", "keys": "\(keyIDs.count)"])
        return Provider(metadata: metadata, keys: keys, keyIDs: keyIDs)
    }

    private static func document<Document: Decodable>(
        _ type: Document.Type, at address: String, session: URLSession
    ) async throws -> Document {
        guard let url = URL(string: address), url.scheme == "https" || url.scheme == "http" else {
            throw IdentityTokenRefused("\(address.prefix(200)) is not an http(s) address")
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(from: url)
        } catch {
            throw IdentityTokenRefused("\(address) cannot be reached: \(error.localizedDescription)")
        }
        guard (response as? HTTPURLResponse)?.statusCode == 200, data.count <= largestDocument else {
            throw IdentityTokenRefused("\(address) did not answer with a document")
        }
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch {
            throw IdentityTokenRefused("\(address) did not answer with a valid document")
        }
    }
}
