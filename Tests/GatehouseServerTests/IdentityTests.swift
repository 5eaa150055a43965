import Foundation
import GatehouseCore
import HTTPTypes
import Testing

@testable import GatehouseServer

/// Who is calling, verified: CI jobs by their OpenID Connect ID tokens, people by single sign-on
/// or a personal token, shared tokens as what they are; rules that count people count only people.
/// Against a real OpenID provider on 127.0.0.1 (Fixtures/oidc-provider.py, built with Authlib).
@Suite("Identity", .timeLimit(.minutes(3)))
struct IdentityTests {
    static let alice = "alice-personal-token"
    static let bob = "bob-personal-token"
    static let team = "payments-team-token"

    /// Tokens of each kind, a CI workload of the provider, and people and groups for single sign-on.
    static func accessFile(issuer: String) -> String {
        """
        tokens:
          - name: alice
            kind: person
            sha256: \(AccessPolicy.hash(of: alice))
            namespaces: [payments]
            actions: [read, open, close]
          - name: bob
            kind: person
            sha256: \(AccessPolicy.hash(of: bob))
            namespaces: [payments]
            actions: [read, open, close]
          - name: payments-team
            sha256: \(AccessPolicy.hash(of: team))
            namespaces: [payments]
            actions: [read, open, close]
        workloads:
          - name: shop-deploy
            issuer: \(issuer)
            audience: gatehouse
            claims:
              repository: acme/shop
              ref: refs/heads/main
            namespaces: [payments]
            actions: [read, open]
        people:
          users:
            - name: carol@example.com
              namespaces: [payments]
              actions: [read]
          groups:
            - name: release-managers
              namespaces: [payments]
              actions: [read, open, close, rollback]
        """
    }

    static let twoPeople = """
        rules:
          - name: two-people
            canaries: {namespaces: [payments], names: [ledger]}
            gates: [promotion]
            approvals: {count: 2}
          - name: leads
            canaries: {namespaces: [payments], names: [gateway]}
            gates: [promotion]
            approvals: {count: 1, from: [group:release-managers]}
        """

    private func server(_ provider: IdentityProvider, policy: String? = nil) throws -> TestServer {
        try serverWithAccess(file: Self.accessFile(issuer: provider.issuer)) { arguments in
            arguments.oidcIssuer = provider.issuer
            arguments.oidcClientID = IdentityProvider.clientID
            arguments.oidcClientSecret = IdentityProvider.clientSecret
            if let policy {
                let path = arguments.databasePath.replacingOccurrences(of: "gatehouse.sqlite", with: "policy.yaml")
                try? policy.write(toFile: path, atomically: true, encoding: .utf8)
                arguments.policyFile = path
            }
        }
    }

    private func githubToken(
        _ provider: IdentityProvider, repository: String = "acme/shop", ref: String = "refs/heads/main",
        audience: String = "gatehouse", expiresIn: Int = 300, unpublishedKey: Bool = false
    ) async throws -> String {
        try await provider.mint(
            [
                "sub": "repo:\(repository):ref:\(ref)", "aud": audience, "repository": repository, "ref": ref,
                "run_id": 4242,
            ], expiresIn: expiresIn, unpublishedKey: unpublishedKey)
    }

    @Test(
        "A CI job approves with its ID token, no stored secret: matched by its claims, refused with a sentence otherwise"
    )
    func workloadIdentity() async throws {
        let provider = try await IdentityProvider.started()
        try await server(provider).run { client in
            let open = "/v1/canaries/payments/ledger/gates/rollout/open"
            let token = try await githubToken(provider)
            let opened = try await client.send(.post, open, token: token, body: #"{"reason":"CI"}"#)
            #expect(opened.status == .ok, "\(opened.text)")
            let events = try await client.send(
                .get, "/v1/events?namespace=payments&actor=workload:shop-deploy", token: Self.alice)
            #expect(events.text.contains("\"actor\":\"workload:shop-deploy\""), "\(events.text)")

            let who = try await client.send(.get, "/v1/whoami", token: token).json()
            #expect(who["kind"] as? String == "workload" && who["actor"] as? String == "workload:shop-deploy")
            #expect(who["countsAsPerson"] as? Bool == false)
            let shared = try await client.send(.get, "/v1/whoami", token: Self.team).json()
            #expect(shared["kind"] as? String == "shared token" && shared["actor"] as? String == "token:payments-team")

            let otherRepository = try await githubToken(provider, repository: "acme/other")
            let refused = try await client.send(.post, open, token: otherRepository, body: "{}")
            #expect(refused.status == .forbidden)
            #expect(
                refused.text.contains("repo:acme/other:ref:refs/heads/main")
                    && refused.text.contains("matches no workload"))
            let branch = try await githubToken(provider, ref: "refs/heads/feature")
            #expect(try await client.send(.post, open, token: branch, body: "{}").status == .forbidden)
            // Outside its grant: another namespace, an action it lacks.
            #expect(
                try await client.send(.post, "/v1/canaries/test/podinfo/gates/rollout/open", token: token, body: "{}")
                    .status == .forbidden)
            #expect(
                try await client.send(
                    .post, "/v1/canaries/payments/ledger/gates/rollout/close", token: token, body: "{}"
                )
                .status == .forbidden)

            let expired = try await githubToken(provider, expiresIn: -600)
            let late = try await client.send(.post, open, token: expired, body: "{}")
            #expect(late.status == .unauthorized && late.text.contains("expired"), "\(late.text)")
            let elsewhere = try await githubToken(provider, audience: "someone-else")
            let wrongAudience = try await client.send(.post, open, token: elsewhere, body: "{}")
            #expect(wrongAudience.status == .unauthorized, "\(wrongAudience.text)")
            let forged = try await githubToken(provider, unpublishedKey: true)
            let badSignature = try await client.send(.post, open, token: forged, body: "{}")
            #expect(
                badSignature.status == .unauthorized && badSignature.text.contains("signature"), "\(badSignature.text)")
            // A token from an issuer no workload names is never looked up.
            let stranger = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2V2aWwuZXhhbXBsZSJ9.c2ln"
            let unknown = try await client.send(.post, open, token: stranger, body: "{}")
            #expect(unknown.status == .unauthorized && unknown.text.contains("no workload trusts its issuer"))
            // Nothing a refused token asked for happened.
            let trail = try await client.send(.get, "/v1/events?namespace=payments&action=opened", token: Self.alice)
            #expect(trail.text.components(separatedBy: "\"action\":\"opened\"").count == 2, "\(trail.text)")
        }
    }

    @Test("A rotated signing key is fetched when a token names it; made-up key ids cost at most one fetch")
    func keyRotation() async throws {
        let provider = try await IdentityProvider.started()
        try await server(provider).run { client in
            let open = "/v1/canaries/payments/ledger/gates/rollout/open"
            #expect(
                try await client.send(.post, open, token: try await githubToken(provider), body: "{}").status == .ok)
            let fetched = try await provider.keySetFetches()
            try await provider.rotateKey()
            let rotated = try await githubToken(provider)
            #expect(try await client.send(.post, open, token: rotated, body: "{}").status == .ok)
            #expect(try await provider.keySetFetches() == fetched + 1)
            try await provider.rotateKey()
            // Within the minute, a key not seen is refused rather than fetched again.
            let again = try await githubToken(provider)
            let refused = try await client.send(.post, open, token: again, body: "{}")
            #expect(refused.status == .unauthorized && refused.text.contains("does not publish"), "\(refused.text)")
            #expect(try await provider.keySetFetches() == fetched + 1)
        }
    }

    @Test("Rules count people: a shared token and a CI job are refused as approvers, personal tokens count")
    func onlyPeopleApprove() async throws {
        let provider = try await IdentityProvider.started()
        try await server(provider, policy: Self.twoPeople).run { client in
            #expect(
                try await client.hook("confirm-promotion", checksum: "r1", name: "ledger", namespace: "payments").status
                    == .forbidden)
            let open = "/v1/canaries/payments/ledger/gates/promotion/open"
            let team = try await client.send(.post, open, token: Self.team, body: "{}")
            #expect(team.status == .forbidden)
            #expect(team.text.contains("token:payments-team is not a person"), "\(team.text)")
            let job = try await client.send(.post, open, token: try await githubToken(provider), body: "{}")
            #expect(job.status == .forbidden, "\(job.text)")
            let first = try await client.send(.post, open, token: Self.alice, body: "{}")
            #expect(first.status == .ok && first.text.contains("\"approvalsCounted\":1"), "\(first.text)")
            #expect(
                try await client.hook("confirm-promotion", checksum: "r1", name: "ledger", namespace: "payments").status
                    == .forbidden)
            #expect(try await client.send(.post, open, token: Self.bob, body: "{}").status == .ok)
            #expect(
                try await client.hook("confirm-promotion", checksum: "r1", name: "ledger", namespace: "payments").status
                    == .ok)
        }
    }

    @Test("Single sign-on: code flow with PKCE, state and nonce; the person and their groups act on the dashboard")
    func singleSignOn() async throws {
        let provider = try await IdentityProvider.started()
        try await server(provider, policy: Self.twoPeople).run { client in
            #expect(
                try await client.hook("confirm-promotion", checksum: "r1", name: "gateway", namespace: "payments")
                    .status == .forbidden)
            try await provider.signInAs("alice@example.com", groups: ["release-managers", "staff"])
            let visitor = Visitor(client)
            let page = try await visitor.get("/sign-in?next=/canaries/payments/gateway")
            #expect(page.text.contains("Sign in with single sign-on"))
            let signedIn = try await signIn(visitor, provider, next: "/canaries/payments/gateway")
            #expect(signedIn.location == "/canaries/payments/gateway")
            let canary = try await visitor.get("/canaries/payments/gateway")
            #expect(canary.status == .ok && canary.text.contains("alice@example.com"), "\(canary.text)")
            #expect(canary.text.contains("signed in through single sign-on"))
            // Her group lets her open, and counts her under a rule naming the group.
            let done = try await visitor.submit(
                "/canaries/payments/gateway/open", [("gate", "promotion"), ("scope", "rollout"), ("reason", "ok")])
            #expect(done.status == .seeOther, "\(done.text)")
            #expect(
                try await client.hook("confirm-promotion", checksum: "r1", name: "gateway", namespace: "payments")
                    .status == .ok)
            let trail = try await client.send(
                .get, "/v1/events?namespace=payments&actor=alice@example.com&action=opened", token: Self.alice)
            #expect(trail.text.contains("\"reason\":\"ok\""), "\(trail.text)")

            // Signing out holds: the cookie she had no longer signs her in.
            let cookies = visitor.cookies
            _ = try await visitor.get("/")
            #expect(try await visitor.submit("/sign-out", []).status == .seeOther)
            let replayed = try await client.send(
                .get, "/canaries/payments/gateway",
                headers: [.cookie: cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")])
            #expect(replayed.status == .seeOther && replayed.location?.hasPrefix("/sign-in") == true)
        }
    }

    @Test("Single sign-on refuses a forged state, a missing attempt, and a person outside the rule's group")
    func singleSignOnRefusals() async throws {
        let provider = try await IdentityProvider.started()
        try await server(provider, policy: Self.twoPeople).run { client in
            #expect(
                try await client.hook("confirm-promotion", checksum: "r1", name: "gateway", namespace: "payments")
                    .status == .forbidden)
            let visitor = Visitor(client)
            let leave = try await visitor.get("/sign-in/sso?next=/")
            let authorize = try #require(leave.location)
            #expect(authorize.contains("code_challenge_method=S256") && authorize.contains("nonce="))
            let back = try await provider.visit(authorize)
            let callback = try #require(back.location.flatMap(URLComponents.init(string:)))
            var forged = callback
            forged.queryItems = callback.queryItems?.map {
                $0.name == "state" ? URLQueryItem(name: "state", value: "x") : $0
            }
            let refused = try await visitor.get(try #require(forged.string.map(Self.path)))
            #expect(refused.status == .unauthorized && refused.text.contains("state does not match"), "\(refused.text)")
            // The attempt ended with the refusal: the genuine answer no longer signs in either.
            let late = try await visitor.get(Self.path(try #require(callback.string)))
            #expect(late.status == .unauthorized && late.text.contains("not started here"), "\(late.text)")
            #expect(visitor.cookies["gatehouse_session"].map { _ in true } == true)
            #expect(try await visitor.get("/canaries/payments/gateway").status == .seeOther)

            // Carol signs in (read only), is not in the group, and cannot approve.
            try await provider.signInAs("carol@example.com", groups: ["staff"])
            let carol = Visitor(client)
            _ = try await signIn(carol, provider, next: "/canaries/payments/gateway")
            #expect(try await carol.get("/canaries/payments/gateway").status == .ok)
            let denied = try await carol.submit(
                "/canaries/payments/gateway/open", [("gate", "promotion"), ("scope", "rollout"), ("reason", "me")])
            #expect(denied.status == .forbidden, "\(denied.text)")
        }
    }

    @Test("An approval link sends the reader to sign in where a rule counts people, and acts elsewhere")
    func linksAskToSignIn() async throws {
        let server = try TestServer { arguments in
            arguments.linkSecret = "link-secret"
            let path = arguments.databasePath.replacingOccurrences(of: "gatehouse.sqlite", with: "policy.yaml")
            try? Self.twoPeople.write(toFile: path, atomically: true, encoding: .utf8)
            arguments.policyFile = path
        }
        try await server.run { client in
            let signer = LinkSigner(secret: "link-secret")
            func link(_ name: String, _ gate: GateKind) -> String {
                "/v1/links/"
                    + signer.token(
                        for: ApprovalLink(
                            namespace: "payments", name: name, gate: gate, checksum: "r1", action: .approve,
                            expires: Int64(Date().timeIntervalSince1970) + 600, nonce: "\(name)-\(gate)"))
            }
            _ = try await client.hook("confirm-promotion", checksum: "r1", name: "ledger", namespace: "payments")
            let page = try await client.get(link("ledger", .promotion))
            #expect(page.status == .ok && page.text.contains("Sign in to approve"), "\(page.text)")
            #expect(page.text.contains("Rule two-people counts approvals") && !page.text.contains("<form"))
            #expect(page.text.contains(#"href="/sign-in?next="#))
            let pressed = try await client.post(link("ledger", .promotion))
            #expect(pressed.status == .forbidden && pressed.text.contains("nothing was done"))
            #expect(
                try await client.hook("confirm-promotion", checksum: "r1", name: "ledger", namespace: "payments").status
                    == .forbidden)
            // A gate no rule counts is approved by the link, as before.
            _ = try await client.hook("confirm-rollout", checksum: "r1", name: "ledger", namespace: "payments")
            #expect(try await client.post(link("ledger", .rollout)).status == .ok)
            #expect(
                try await client.hook("confirm-rollout", checksum: "r1", name: "ledger", namespace: "payments").status
                    == .ok)
        }
    }

    /// Signs `visitor` in through the provider as a browser would: to the provider, and back.
    private func signIn(_ visitor: Visitor, _ provider: IdentityProvider, next: String) async throws -> Client.Reply {
        let leave = try await visitor.get("/sign-in/sso?next=" + next)
        #expect(leave.status == .seeOther, "\(leave.text)")
        let back = try await provider.visit(try #require(leave.location))
        #expect(back.status == 302)
        let reply = try await visitor.get(Self.path(try #require(back.location)))
        #expect(reply.status == .seeOther, "\(reply.text)")
        return reply
    }

    /// The path and query of an address of this service, as the browser would request it.
    private static func path(_ address: String) -> String {
        guard let url = URLComponents(string: address) else { return address }
        return url.percentEncodedPath + (url.percentEncodedQuery.map { "?" + $0 } ?? "")
    }
}

@Suite("Access file")
struct AccessFileTests {
    @Test("examples/access.yaml is an access file the service reads, with each kind of principal")
    func example() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("examples/access.yaml"), encoding: .utf8)
        let policy = try AccessPolicy.parse(text)
        #expect(policy.tokens.contains { $0.kind == .person } && policy.tokens.contains { $0.kind == .sharedToken })
        #expect(policy.workloads.first?.claims["repository"] == "acme/payments")
        #expect(policy.slackPeople["U012AB3CD"] == "alice@example.com")
        #expect(policy.groups["release-managers"] != nil)
    }

    @Test(
        "A broken identity entry is refused with a sentence naming it",
        arguments: [
            (
                "tokens: [{name: a, kind: robot, sha256: \(String(repeating: "a", count: 64)), namespaces: [x], actions: [read]}]",
                "kind must be person"
            ),
            (
                "workloads: [{name: w, issuer: https://issuer.example, audience: gatehouse, namespaces: [x], actions: [open]}]",
                "claims must say which tokens"
            ),
            (
                "workloads: [{name: w, issuer: not-a-url, audience: g, claims: {a: b}, namespaces: [x], actions: [open]}]",
                "issuer must be the https address"
            ),
            ("people: {users: []}\nproxy: {users: []}", "keep one"),
            (
                "slack: {users: [{id: U1, person: 'token:x', namespaces: [x], actions: [read]}]}",
                "person must be a person's name"
            ),
        ])
    func refused(file: String, sentence: String) throws {
        do {
            _ = try AccessPolicy.parse(file)
            Issue.record("accepted: \(file)")
        } catch {
            #expect(error.message.contains(sentence), "\(error.message)")
        }
    }
}
