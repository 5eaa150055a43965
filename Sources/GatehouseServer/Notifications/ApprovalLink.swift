import Crypto
import Foundation
import GatehouseCore

/// A signed, expiring link that approves one gate, or rolls back, for one canary and one rollout.
public struct ApprovalLink: Sendable, Equatable, Codable {
    /// What the link does.
    public enum Action: String, Sendable, Codable {
        /// Open the gate for this rollout.
        case approve
        /// Ask Flagger to roll this rollout back.
        case rollback
    }

    /// The canary's cluster; absent (in links signed before clusters were named, too) for the unnamed one.
    public var cluster: String?
    /// The canary's namespace.
    public var namespace: String
    /// The canary's name.
    public var name: String
    /// The gate it opens (rollback for a rollback link).
    public var gate: GateKind
    /// The rollout it is for.
    public var checksum: String
    /// What it does.
    public var action: Action
    /// For a traffic approval: how many checks it covers; nil is the rest of the rollout.
    public var steps: Int?
    /// When it stops working (Unix seconds).
    public var expires: Int64
    /// Makes each link single-use.
    public var nonce: String

    /// Creates a link's fields.
    public init(
        cluster: String = "", namespace: String, name: String, gate: GateKind, checksum: String, action: Action,
        expires: Int64,
        nonce: String,
        steps: Int? = nil
    ) {
        self.steps = steps
        self.cluster = cluster.isEmpty ? nil : cluster
        self.namespace = namespace
        self.name = name
        self.gate = gate
        self.checksum = checksum
        self.action = action
        self.expires = expires
        self.nonce = nonce
    }

    /// The approval the link gives: for the traffic gate, its steps or the rest of the rollout.
    public var openRequest: OpenRequest {
        var request = OpenRequest(reason: "approved from a notification", boundChecksum: Revision(checksum))
        if gate == .traffic { request.cover(steps.map(TrafficSteps.count) ?? .rest) }
        return request
    }

    /// The canary.
    public func canary() throws(InvalidInput) -> CanaryID {
        try CanaryID(cluster: cluster ?? "", namespace: namespace, name: name)
    }

    /// When it stops working.
    public var expiresAt: Date { Date(timeIntervalSince1970: TimeInterval(expires)) }
}

/// Signs and checks approval links with HMAC-SHA256 and the server's link secret.
public struct LinkSigner: Sendable {
    private let seal: Seal

    /// Creates a signer from the link secret.
    public init(secret: String) {
        seal = Seal(key: SymmetricKey(data: Data(secret.utf8)))
    }

    /// The link's token: its fields and their signature, both base64url.
    public func token(for link: ApprovalLink) -> String {
        seal.token(for: link)
    }

    /// Why a token is refused.
    public enum Refusal: Error, Equatable {
        /// Not signed by this server, or altered.
        case invalid
        /// Past its time.
        case expired(Date)
    }

    /// The link a token carries, if its signature holds and it has not expired.
    public func verify(_ token: String, at now: Date = Date()) -> Result<ApprovalLink, Refusal> {
        guard let link = seal.value(ApprovalLink.self, from: token) else { return .failure(.invalid) }
        guard link.expiresAt > now else { return .failure(.expired(link.expiresAt)) }
        return .success(link)
    }
}

/// Values carried by clients and signed with HMAC-SHA256 (approval links, dashboard sessions):
/// `base64url(JSON).base64url(signature)`.
struct Seal: Sendable {
    let key: SymmetricKey

    /// The value and its signature, as one token.
    func token(for value: some Encodable) -> String {
        let payload = ((try? JSONEncoder().encode(value)) ?? Data()).base64URLString
        return payload + "." + signature(of: payload)
    }

    /// The value a token carries, if its signature holds.
    func value<Value: Decodable>(_ type: Value.Type, from token: String) -> Value? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let signature = Data(base64URL: String(parts[1])),
            HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: Data(parts[0].utf8), using: key),
            let payload = Data(base64URL: String(parts[0]))
        else { return nil }
        return try? JSONDecoder().decode(type, from: payload)
    }

    /// The signature of `text`, base64url.
    func signature(of text: String) -> String {
        Data(HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: key)).base64URLString
    }
}
