import Crypto
import Foundation
import GatehouseCore
import GatehouseServer
import HTTPTypes
import HummingbirdTesting
import Logging
import Testing

/// Tokens used by the tests; the access file holds only their hashes.
enum Tokens {
    static let payments = "payments-token-1"
    static let ops = "ops-token-2"
    static let reader = "reader-token-3"

    static let file = """
        tokens:
          - name: payments-ci
            sha256: \(AccessPolicy.hash(of: payments))
            namespaces: [payments, "payments-*"]
            actions: [read, open]
          - name: ops
            sha256: \(AccessPolicy.hash(of: ops))
            namespaces: ["*"]
            actions: [read, open, close, rollback, freeze]
          - name: reader
            sha256: \(AccessPolicy.hash(of: reader))
            namespaces: [test]
            actions: [read]
        slack:
          users:
            - id: UALICE
              namespaces: ["*"]
              actions: [read, open, close, rollback, freeze]
            - id: UBOB
              namespaces: [test]
              actions: [read]
          channels:
            - id: CRELEASE
              namespaces: [payments]
              actions: [open]
        """
}

extension Client {
    func send(_ method: HTTPRequest.Method, _ path: String, token: String?, body: String? = nil) async throws -> Reply {
        var headers: HTTPFields = [ActorHeader.header: "mallory"]
        if let token { headers[.authorization] = "Bearer \(token)" }
        return try await send(method, path, body: body, headers: headers)
    }
}

enum ActorHeader {
    static let header = HTTPField.Name("X-Gatehouse-Actor")!
}

/// A service whose access file is `file` (the tokens above unless told otherwise).
func serverWithAccess(file: String = Tokens.file, _ adjust: @escaping (inout ServerArguments) -> Void = { _ in })
    throws -> TestServer
{
    let server = try TestServer { arguments in
        arguments.accessFile = arguments.databasePath.replacingOccurrences(of: "gatehouse.sqlite", with: "access.yaml")
        adjust(&arguments)
    }
    try file.write(toFile: try #require(server.arguments.accessFile), atomically: true, encoding: .utf8)
    return server
}

/// One operator request and the action it needs.
struct ScopedRequest: Sendable, CustomTestStringConvertible {
    var method: HTTPRequest.Method
    var path: String
    var body: String?
    /// Namespace acted on, nil for all.
    var namespace: String?
    var action: AccessAction

    var testDescription: String { "\(method) \(path)" }
}

@Suite("Scoped tokens", .timeLimit(.minutes(3)))
struct AccessControlTests {
    static let requests: [ScopedRequest] =
        ["payments", "test"].flatMap { (namespace: String) -> [ScopedRequest] in
            [
                ScopedRequest(method: .get, path: "/v1/canaries/\(namespace)/app", namespace: namespace, action: .read),
                ScopedRequest(
                    method: .get, path: "/v1/canaries/\(namespace)/app/events", namespace: namespace, action: .read),
                ScopedRequest(
                    method: .get, path: "/v1/events?namespace=\(namespace)", namespace: namespace, action: .read),
                ScopedRequest(
                    method: .post, path: "/v1/canaries/\(namespace)/app/gates/promotion/open", namespace: namespace,
                    action: .open),
                ScopedRequest(
                    method: .post, path: "/v1/canaries/\(namespace)/app/gates/promotion/close", namespace: namespace,
                    action: .close),
                ScopedRequest(
                    method: .post, path: "/v1/canaries/\(namespace)/app/rollback", body: #"{"force": true}"#,
                    namespace: namespace,
                    action: .rollback),
                ScopedRequest(
                    method: .post, path: "/gate/open", body: #"{"name": "app", "namespace": "\#(namespace)"}"#,
                    namespace: namespace,
                    action: .open),
                ScopedRequest(
                    method: .post, path: "/gate/close", body: #"{"name": "app", "namespace": "\#(namespace)"}"#,
                    namespace: namespace,
                    action: .close),
                ScopedRequest(
                    method: .post, path: "/rollback/open", body: #"{"name": "app", "namespace": "\#(namespace)"}"#,
                    namespace: namespace, action: .rollback),
                ScopedRequest(
                    method: .post, path: "/v1/freezes", body: #"{"namespace": "\#(namespace)", "reason": "r"}"#,
                    namespace: namespace, action: .freeze),
            ]
        } + [
            ScopedRequest(method: .get, path: "/v1/events", namespace: nil, action: .read),
            ScopedRequest(
                method: .post, path: "/v1/freezes", body: #"{"reason": "everything"}"#, namespace: nil, action: .freeze),
        ]

    static let grants: [(token: String, name: String, grant: Grant)] = [
        (
            Tokens.payments, "payments-ci",
            Grant(scope: Scope(namespaces: NameScope(["payments", "payments-*"])), actions: [.read, .open])
        ),
        (Tokens.ops, "ops", Grant(scope: Scope(namespaces: .everything), actions: Set(AccessAction.allCases))),
        (Tokens.reader, "reader", Grant(scope: Scope(namespaces: NameScope(["test"])), actions: [.read])),
    ]

    func auditCount(_ client: Client) async throws -> Int {
        let page = try await client.send(.get, "/v1/events?limit=500", token: Tokens.ops).json()
        return (page["events"] as? [Any])?.count ?? -1
    }

    @Test(
        "each token can do exactly what its scope allows; out of scope is 403 and changes nothing", arguments: requests)
    func scope(_ request: ScopedRequest) async throws {
        try await serverWithAccess().run { client in
            for (token, name, grant) in Self.grants {
                let before = try await auditCount(client)
                let reply = try await client.send(request.method, request.path, token: token, body: request.body)
                if grant.allows(request.action, in: Area(cluster: nil, namespace: request.namespace)) {
                    #expect(
                        reply.status.code < 400 || reply.status == .notFound, "\(name): \(reply.status) \(reply.text)")
                } else {
                    #expect(reply.status == .forbidden, "\(name) must be refused: \(reply.text)")
                    #expect(try await auditCount(client) == before, "a refused request must change nothing")
                }
            }
        }
    }

    @Test("no token or an unknown one is 401 and changes nothing", arguments: [nil, "nope", Tokens.ops + "x"])
    func unauthenticated(token: String?) async throws {
        try await serverWithAccess().run { client in
            for request in Self.requests {
                let reply = try await client.send(request.method, request.path, token: token, body: request.body)
                #expect(reply.status == .unauthorized, "\(request.testDescription)")
                #expect(reply.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            }
            #expect(try await client.send(.get, "/v1/canaries", token: token).status == .unauthorized)
            // A method no route serves is refused as such, whoever asks.
            let trace = try await client.send(.trace, "/v1/canaries", token: token)
            #expect(trace.status == .methodNotAllowed && trace.text.contains("TRACE is not allowed"))
            #expect(try await auditCount(client) == 0)
        }
    }

    @Test("the token's name is the actor in the audit trail, whatever the request claims")
    func actor() async throws {
        try await serverWithAccess().run { client in
            let reply = try await client.send(
                .post, "/v1/canaries/payments/cart/gates/rollout/open", token: Tokens.payments)
            #expect(reply.status == .ok)
            let events =
                try await client.send(.get, "/v1/events", token: Tokens.ops).json()["events"] as? [[String: Any]]
            // A shared token (the access file's default kind) is recorded as one.
            #expect(events?.first?["actor"] as? String == "token:payments-ci")
        }
    }

    @Test("lists show only what the token may read; Flagger's endpoints and health need no token")
    func visibility() async throws {
        try await serverWithAccess().run { client in
            for namespace in ["payments", "test"] {
                _ = try await client.hook("confirm-rollout", checksum: "c1", name: "app")
                _ = try await client.post(
                    "/v1/flagger/confirm-rollout", #"{"name": "app", "namespace": "\#(namespace)", "checksum": "c1"}"#)
            }
            let listed = try await client.send(.get, "/v1/canaries", token: Tokens.reader).json()
            let names = (listed["canaries"] as? [[String: Any]])?.compactMap { $0["namespace"] as? String }
            #expect(names == ["test"])
            #expect(try await client.get("/healthz").status == .ok)
            #expect(try await client.get("/metrics").status == .ok)
        }
    }

    @Test("only hashes are stored: the hash itself is not a token")
    func hashOnly() throws {
        let policy = try AccessPolicy.parse(Tokens.file)
        #expect(policy.token(presented: Tokens.ops)?.name == "ops")
        #expect(policy.token(presented: AccessPolicy.hash(of: Tokens.ops)) == nil)
        #expect(!Tokens.file.contains(Tokens.ops))
        #expect(throws: InvalidInput.self) {
            try AccessPolicy.parse(
                "tokens:\n  - name: x\n    sha256: \(Tokens.ops)\n    namespaces: [a]\n    actions: [read]\n")
        }
        #expect(throws: InvalidInput.self) {
            try AccessPolicy.parse(
                "tokens:\n  - name: x\n    sha256: \(AccessPolicy.hash(of: "t"))\n    namespaces: [a]\n    actions: [deploy]\n"
            )
        }
    }

    @Test("namespace globs")
    func globs() {
        let scope = NameScope(["payments", "team-*", "*-prod"])
        #expect(scope.contains("payments") && scope.contains("team-a") && scope.contains("shop-prod"))
        #expect(!scope.contains("payments-x") && !scope.contains("team") && !scope.isEverything)
        #expect(NameScope(["*"]).contains("anything") && NameScope(["*"]).isEverything)
    }

    @Test("the access file is re-read on change; a broken one is refused and the previous stays in force")
    func reload() async throws {
        let server = try serverWithAccess()
        let path = try #require(server.arguments.accessFile)
        let access = try AccessControl(path: path, logger: Logger(label: "test"))
        #expect(access.policy.token(presented: Tokens.ops) != nil)
        let newToken = "brand-new-token"
        let updated = Tokens.file.replacingOccurrences(
            of: AccessPolicy.hash(of: Tokens.ops), with: AccessPolicy.hash(of: newToken))
        try updated.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(access.reload(force: true))
        #expect(access.policy.token(presented: newToken)?.name == "ops")
        #expect(access.policy.token(presented: Tokens.ops) == nil)
        try "tokens: [this is: not valid".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(!access.reload(force: true))
        #expect(access.policy.token(presented: newToken)?.name == "ops", "the previous policy stays in force")
    }

    @Test("the running service picks up a changed access file by itself")
    func liveReload() async throws {
        let server = try serverWithAccess()
        let path = try #require(server.arguments.accessFile)
        try await server.run(.live) { client in
            #expect(try await client.send(.get, "/v1/canaries", token: "late-token").status == .unauthorized)
            let late =
                "tokens:\n  - name: late\n    sha256: \(AccessPolicy.hash(of: "late-token"))\n    namespaces: [\"*\"]\n    actions: [read]\n"
            try Tokens.file.replacingOccurrences(of: "tokens:\n", with: late).write(
                toFile: path, atomically: true, encoding: .utf8)
            var status = HTTPResponse.Status.unauthorized
            for _ in 0..<40 where status != .ok {
                try await Task.sleep(for: .milliseconds(250))
                status = try await client.send(.get, "/v1/canaries", token: "late-token").status
            }
            #expect(status == .ok)
        }
    }

    @Test("a broken access file stops the start with a clear error")
    func brokenAtStart() async throws {
        let server = try serverWithAccess()
        try "tokens: 5".write(toFile: try #require(server.arguments.accessFile), atomically: true, encoding: .utf8)
        await #expect(throws: InvalidInput.self) {
            _ = try await buildApplication(server.arguments, logger: Logger(label: "test"))
        }
    }
}

@Suite("The loadtester's namespace regexp and Flagger's metadata secret", .timeLimit(.minutes(3)))
struct NamespaceAndSecretTests {
    static let outside: [(HTTPRequest.Method, String, String?)] = [
        (.post, "/v1/flagger/confirm-rollout", #"{"name": "app", "namespace": "other"}"#),
        (.post, "/v1/flagger/rollback", #"{"name": "app", "namespace": "other"}"#),
        (.post, "/v1/flagger/events", #"{"name": "app", "namespace": "other", "phase": "Succeeded"}"#),
        (.post, "/v1/flagger/post-rollout", #"{"name": "app", "namespace": "other", "phase": "Succeeded"}"#),
        (.post, "/gate/check", #"{"name": "app", "namespace": "other"}"#),
        (.post, "/gate/open", #"{"name": "app", "namespace": "other"}"#),
        (.post, "/gate/close", #"{"name": "app", "namespace": "other"}"#),
        (.post, "/rollback/check", #"{"name": "app", "namespace": "other"}"#),
        (.post, "/rollback/open", #"{"name": "app", "namespace": "other"}"#),
        (.post, "/rollback/close", #"{"name": "app", "namespace": "other"}"#),
        (.get, "/v1/canaries/other/app", nil),
        (.get, "/v1/canaries/other/app/events", nil),
        (.get, "/v1/events?namespace=other", nil),
        (.post, "/v1/canaries/other/app/gates/rollout/open", nil),
        (.post, "/v1/canaries/other/app/gates/rollout/close", nil),
        (.post, "/v1/canaries/other/app/rollback", #"{"force": true}"#),
        (.post, "/v1/freezes", #"{"namespace": "other", "reason": "r"}"#),
    ]

    @Test("--protect-metrics puts /metrics behind the access file's tokens")
    func protectedMetrics() async throws {
        try await serverWithAccess { $0.protectMetrics = true }.run { client in
            #expect(try await client.send(.get, "/metrics", token: nil).status == .unauthorized)
            #expect(try await client.send(.get, "/metrics", token: "not-a-token").status == .unauthorized)
            let scraped = try await client.send(.get, "/metrics", token: Tokens.reader)
            #expect(scraped.status == .ok && scraped.text.contains("gatehouse_storage_up"))
        }
        #expect(try await serverWithAccess().run { client in try await client.get("/metrics").status } == .ok)
        await #expect(throws: (any Error).self) {
            try await TestServer { $0.protectMetrics = true }.run { _ in }
        }
    }

    @Test("a freeze in a namespace a token may not see is 404 to it, as one that does not exist")
    func hiddenFreeze() async throws {
        try await serverWithAccess().run { client in
            let set = try await client.send(
                .post, "/v1/freezes", token: Tokens.ops, body: #"{"namespace": "shop", "reason": "audit"}"#)
            #expect(set.status == .created)
            let id = try #require(try set.json()["id"] as? Int)
            let hidden = try await client.send(.delete, "/v1/freezes/\(id)", token: Tokens.payments)
            #expect(hidden.status == .notFound)
            let missing = try await client.send(.delete, "/v1/freezes/999", token: Tokens.payments)
            #expect(missing.status == .notFound)
            #expect(missing.text.replacingOccurrences(of: "999", with: "\(id)") == hidden.text)
            #expect(try await client.send(.delete, "/v1/freezes/\(id)", token: nil).status == .unauthorized)
        }
    }

    @Test("every route refuses a canary outside --namespace-regexp with 403, Flagger's included")
    func namespaceRegexp() async throws {
        try await TestServer { $0.namespaceRegexp = "^(test|prod)$" }.run { client in
            for (method, path, body) in Self.outside {
                let reply = try await client.send(method, path, body: body)
                #expect(reply.status == .forbidden, "\(method) \(path): \(reply.status)")
                #expect(reply.text.contains("not served here"), "\(reply.text)")
                let inside = try await client.send(
                    method, path.replacingOccurrences(of: "other", with: "test"),
                    body: body?.replacingOccurrences(of: "other", with: "test"))
                #expect(!inside.text.contains("not served here"))
            }
            let listed = try await client.get("/v1/canaries").json()["canaries"] as? [[String: Any]]
            #expect(listed?.allSatisfy { $0["namespace"] as? String == "test" } == true)
            #expect(try await client.get("/v1/events?namespace=other").status == .forbidden)
        }
    }

    @Test("a freeze of a namespace no longer served cannot be lifted here, by any channel")
    func unfreezeOutside() async throws {
        // Set while the service served every namespace; then restarted serving test and prod only.
        let everywhere = try serverWithAccess { $0.slackSigningSecret = SlackSigner().secret }
        let id = try await everywhere.run { client in
            let set = try await client.send(
                .post, "/v1/freezes", token: Tokens.ops, body: #"{"namespace": "other", "reason": "incident"}"#)
            #expect(set.status == .created)
            return try #require(try set.json()["id"] as? Int)
        }
        let narrowed = try serverWithAccess {
            $0.databasePath = everywhere.arguments.databasePath
            $0.slackSigningSecret = SlackSigner().secret
            $0.namespaceRegexp = "^(test|prod)$"
        }
        try await narrowed.run { client in
            // The API does not show it at all; Slack, whose grants name every namespace, is refused.
            let lift = try await client.send(.delete, "/v1/freezes/\(id)", token: Tokens.ops)
            #expect(lift.status == .notFound, "\(lift.status) \(lift.text)")
            let slack = try await client.slack("unfreeze \(id)")
            #expect(slack.text.contains("namespace other") && !slack.text.contains("lifted"), "\(slack.text)")
        }
        try await everywhere.run { client in
            let listed = try await client.send(.get, "/v1/freezes", token: Tokens.ops).json()
            let freezes = listed["freezes"] as? [[String: Any]]
            #expect(freezes?.count == 1 && freezes?.first?["liftedAt"] == nil, "still in force: \(listed)")
        }
    }

    @Test("with --flagger-token, Flagger's routes need it in metadata.token")
    func metadataSecret() async throws {
        try await TestServer { $0.flaggerToken = "s3cret" }.run { client in
            _ = try await client.post("/v1/canaries/test/podinfo/gates/promotion/open", #"{"sticky": true}"#)
            for path in ["/v1/flagger/confirm-promotion", "/gate/check", "/rollback/check", "/v1/flagger/events"] {
                let missing = try await client.post(path, #"{"name": "podinfo", "namespace": "test"}"#)
                #expect(missing.status == .forbidden && missing.text.contains("metadata.token"), "\(path)")
                let wrong = try await client.post(
                    path, #"{"name": "podinfo", "namespace": "test", "metadata": {"token": "guess"}}"#)
                #expect(wrong.status == .forbidden && wrong.text.contains("metadata.token"), "\(path)")
                let right = try await client.post(
                    path, #"{"name": "podinfo", "namespace": "test", "metadata": {"token": "s3cret"}}"#)
                #expect(!right.text.contains("metadata.token"), "\(path): \(right.text)")
            }
            let approved = try await client.post(
                "/v1/flagger/confirm-promotion",
                #"{"name": "podinfo", "namespace": "test", "metadata": {"token": "s3cret"}}"#)
            #expect(approved.status == .ok)
        }
    }
}
