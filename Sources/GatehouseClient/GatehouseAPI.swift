import Foundation
import GatehouseCore

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A client of the Gatehouse operator API, over Foundation's URLSession (libcurl on Linux).
public struct GatehouseAPI: Sendable {
    /// The service's base URL.
    public let server: URL
    /// A bearer token sent with every request, if any.
    public let token: String?
    /// How long one request may take.
    public let timeout: TimeInterval
    /// Who acts, for the audit trail, until scoped tokens name the actor.
    public let actor: String?
    private let session: URLSession

    /// A response: the decoded value and the raw JSON, for `--output json`.
    public struct Reply<Value: Sendable>: Sendable {
        /// The decoded value.
        public var value: Value
        /// The body exactly as the service sent it.
        public var json: Data
    }

    /// Creates a client.
    public init(server: URL, token: String? = nil, timeout: TimeInterval = 10, actor: String? = nil) {
        self.server = server
        self.token = token
        self.timeout = timeout
        self.actor = actor
        // corelibs-foundation applies the session's request timeout, not only the request's own.
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        session = URLSession(configuration: configuration)
    }

    /// Opens a gate of a canary.
    public func open(_ gate: GateKind, of canary: CanaryID, _ options: OpenOptions) async throws(ClientError)
        -> Reply<CanaryStatus>
    {
        try await send(
            "POST", canaryPath(canary) + ["gates", gate.rawValue, "open"], query: cluster(of: canary),
            body: options.body)
    }

    /// Closes a gate of a canary.
    public func close(_ gate: GateKind, of canary: CanaryID, reason: String?) async throws(ClientError)
        -> Reply<CanaryStatus>
    {
        try await send(
            "POST", canaryPath(canary) + ["gates", gate.rawValue, "close"], query: cluster(of: canary),
            body: reason.map { ["reason": .string($0)] } ?? [:])
    }

    /// Asks Flagger to roll back the canary's current rollout.
    public func rollback(_ canary: CanaryID, _ options: OpenOptions) async throws(ClientError) -> Reply<CanaryStatus> {
        try await send("POST", canaryPath(canary) + ["rollback"], query: cluster(of: canary), body: options.body)
    }

    /// Asks for the canary's release to be approved (the asker's own approval then does not count).
    public func requestApproval(of canary: CanaryID, reason: String?) async throws(ClientError) -> Reply<CanaryStatus> {
        try await send(
            "POST", canaryPath(canary) + ["request"], query: cluster(of: canary),
            body: reason.map { ["reason": .string($0)] } ?? [:])
    }

    /// Lifts one policy rule for the canary's rollout.
    public func override(rule: String, of canary: CanaryID, reason: String, ttl: String?) async throws(ClientError)
        -> Reply<CanaryStatus>
    {
        var body: [String: JSONValue] = ["rule": .string(rule), "reason": .string(reason)]
        if let ttl { body["ttl"] = .string(ttl) }
        return try await send("POST", canaryPath(canary) + ["overrides"], query: cluster(of: canary), body: body)
    }

    /// Who the service takes this client for, and what it may do.
    public func whoAmI() async throws(ClientError) -> Reply<Identity> {
        try await send("GET", ["v1", "whoami"])
    }

    /// The guardrails policy in force.
    public func policy() async throws(ClientError) -> Reply<PolicyStatus> {
        try await send("GET", ["v1", "policy"])
    }

    /// Every canary, or those of one namespace or cluster, page after page.
    public func canaries(namespace: String? = nil, cluster: String? = nil) async throws(ClientError)
        -> Reply<[CanaryStatus]>
    {
        var canaries: [CanaryStatus] = []
        var after: String?
        var pages: [Data] = []
        repeat {
            var query = namespace.map { [URLQueryItem(name: "namespace", value: $0)] } ?? []
            if let cluster { query.append(URLQueryItem(name: "cluster", value: cluster)) }
            if let after { query.append(URLQueryItem(name: "after", value: after)) }
            let reply: Reply<CanaryList> = try await send("GET", ["v1", "canaries"], query: query)
            canaries += reply.value.canaries
            pages.append(reply.json)
            after = reply.value.next
        } while after != nil
        // One page is passed on as the service sent it; several are joined into one list.
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json =
            pages.count == 1 ? pages[0] : ((try? encoder.encode(CanaryList(canaries: canaries, next: nil))) ?? pages[0])
        return Reply(value: canaries, json: json)
    }

    /// The service's version.
    public func version() async throws(ClientError) -> Reply<ServiceVersion> {
        try await send("GET", ["v1", "version"])
    }

    /// One canary.
    public func canary(_ canary: CanaryID) async throws(ClientError) -> Reply<CanaryStatus> {
        try await send("GET", canaryPath(canary), query: cluster(of: canary))
    }

    /// Audit entries, newest first: of one canary or of everything.
    /// The audit trail, newest first: of one canary or all, only entries of `action` or by `actor` when given.
    /// The audit trail, newest first: of one canary or all, only entries of `action`, by `actor` or at
    /// or after `since` when given; `before` pages back (the previous page's `next`).
    public func events(
        of canary: CanaryID? = nil, action: String? = nil, actor: String? = nil, since: Date? = nil,
        before: Int64? = nil, limit: Int = 20
    ) async throws(ClientError) -> Reply<AuditPage> {
        let path = canary.map { canaryPath($0) + ["events"] } ?? ["v1", "events"]
        var query = [URLQueryItem(name: "limit", value: String(limit))] + (canary.map(cluster(of:)) ?? [])
        if let action { query.append(URLQueryItem(name: "action", value: action)) }
        if let actor { query.append(URLQueryItem(name: "actor", value: actor)) }
        if let since { query.append(URLQueryItem(name: "since", value: since.formatted(.iso8601))) }
        if let before { query.append(URLQueryItem(name: "before", value: String(before))) }
        return try await send("GET", path, query: query)
    }

    /// Sets a freeze on an area: a namespace or every one, of a cluster or of every one.
    public func freeze(_ area: Area, reason: String, until: String?, duration: String?) async throws(ClientError)
        -> Reply<Freeze>
    {
        var body: [String: JSONValue] = ["reason": .string(reason)]
        if let cluster = area.cluster { body["cluster"] = .string(cluster) }
        if let namespace = area.namespace { body["namespace"] = .string(namespace) }
        if let until { body["until"] = .string(until) }
        if let duration { body["for"] = .string(duration) }
        return try await send("POST", ["v1", "freezes"], body: body)
    }

    /// Lifts a freeze.
    public func unfreeze(id: Int64) async throws(ClientError) -> Reply<Freeze> {
        try await send("DELETE", ["v1", "freezes", String(id)])
    }

    /// Active freezes, or all of them.
    public func freezes(includingEnded: Bool = false) async throws(ClientError) -> Reply<[Freeze]> {
        let reply: Reply<FreezeList> = try await send(
            "GET", ["v1", "freezes"], query: includingEnded ? [URLQueryItem(name: "all", value: "true")] : [])
        return Reply(value: reply.value.freezes, json: reply.json)
    }

    // MARK: Transport

    private func canaryPath(_ canary: CanaryID) -> [String] {
        ["v1", "canaries", canary.namespace, canary.name]
    }

    /// The query naming a canary's cluster, when it has a name.
    private func cluster(of canary: CanaryID) -> [URLQueryItem] {
        canary.cluster.isEmpty ? [] : [URLQueryItem(name: "cluster", value: canary.cluster)]
    }

    private func send<Value: Decodable & Sendable>(
        _ method: String, _ path: [String], query: [URLQueryItem] = [], body: [String: JSONValue]? = nil
    ) async throws(ClientError) -> Reply<Value> {
        var url = server
        for component in path { url.appendPathComponent(component) }
        if !query.isEmpty, var components = URLComponents(url: url, resolvingAgainstBaseURL: false) {
            components.queryItems = query
            url = components.url ?? url
        }
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.httpMethod = method
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let actor { request.setValue(actor, forHTTPHeaderField: "X-Gatehouse-Actor") }
        if let body {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = try? JSONEncoder().encode(body)
        }

        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(for: request)
        } catch let error as URLError {
            switch error.code {
            case .timedOut:
                throw .timedOut(
                    "the Gatehouse service at \(server.absoluteString) did not answer within \(DurationText.format(timeout))"
                )
            default:
                throw .unreachable(
                    "cannot reach the Gatehouse service at \(server.absoluteString): \(error.localizedDescription)")
            }
        } catch {
            throw .unreachable("cannot reach the Gatehouse service at \(server.absoluteString): \(error)")
        }
        guard let http = response as? HTTPURLResponse else {
            throw .invalidResponse("the service at \(server.absoluteString) did not answer over HTTP")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard (200..<300).contains(http.statusCode) else {
            let message =
                (try? decoder.decode(ErrorBody.self, from: data).message)
                ?? "the service answered \(http.statusCode) to \(method) \(url.path)"
            if (400..<500).contains(http.statusCode) { throw .refused(status: http.statusCode, message: message) }
            throw .serverError(status: http.statusCode, message: message)
        }
        do {
            return Reply(value: try decoder.decode(Value.self, from: data), json: data)
        } catch {
            throw .invalidResponse(
                "the service at \(server.absoluteString) answered something that is not Gatehouse's API")
        }
    }
}
