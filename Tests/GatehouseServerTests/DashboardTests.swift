import Foundation
import GatehouseCore
import HTTPTypes
import Hummingbird
import Synchronization
import Testing

@testable import GatehouseServer

/// The dashboard's access file: an operator, a read-only viewer, and people an authenticating proxy names.
enum DashboardAccess {
    static let ops = "dashboard-ops-token"
    static let reader = "dashboard-reader-token"

    static let file = """
        tokens:
          - name: ops
            sha256: \(AccessPolicy.hash(of: ops))
            namespaces: ["*"]
            actions: [read, open, close, rollback, freeze]
          - name: reader
            sha256: \(AccessPolicy.hash(of: reader))
            namespaces: [test]
            actions: [read]
        proxy:
          users:
            - name: carol@example.com
              namespaces: [test]
              actions: [read]
          groups:
            - name: release-managers
              namespaces: [test]
              actions: [read, open, close, rollback]
        """
}

/// A browser without JavaScript: keeps the cookies it is given and sends forms with the CSRF
/// token of the last page it saw, as the dashboard's forms do.
final class Visitor: Sendable {
    let client: Client
    private let state = Mutex<(cookies: [String: String], page: String)>(([:], ""))

    init(_ client: Client) { self.client = client }

    /// The last page's CSRF token.
    var csrf: String {
        let page = state.withLock { $0.page }
        guard let range = page.range(of: #"name="csrf" value=""#) else { return "" }
        return String(page[range.upperBound...].prefix { $0 != "\"" })
    }

    var cookies: [String: String] { state.withLock { $0.cookies } }

    func get(_ path: String, headers: HTTPFields = [:]) async throws -> Client.Reply {
        try await send(.get, path, headers: headers)
    }

    /// Posts a form; its CSRF token is the last page's unless `csrf` says otherwise.
    func submit(_ path: String, _ fields: [(String, String)], csrf: String? = nil, headers: HTTPFields = [:])
        async throws -> Client.Reply
    {
        let all = fields + [("csrf", csrf ?? self.csrf)]
        let body = all.map { "\($0.0)=\(Self.formEscape($0.1))" }.joined(separator: "&")
        var headers = headers
        headers[.contentType] = "application/x-www-form-urlencoded"
        return try await send(.post, path, body: body, headers: headers)
    }

    private func send(_ method: HTTPRequest.Method, _ path: String, body: String? = nil, headers: HTTPFields)
        async throws -> Client.Reply
    {
        var headers = headers
        let cookies = self.cookies
        if !cookies.isEmpty { headers[.cookie] = cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") }
        let reply = try await client.send(method, path, body: body, headers: headers)
        state.withLock { state in
            for line in reply.headers[values: .setCookie] {
                let pair = line.split(separator: ";")[0].split(separator: "=", maxSplits: 1).map(String.init)
                if line.contains("Max-Age=0") || pair.count < 2 || pair[1].isEmpty {
                    state.cookies[pair[0]] = nil
                } else {
                    state.cookies[pair[0]] = pair[1]
                }
            }
            if reply.text.contains(#"name="csrf""#) { state.page = reply.text }
        }
        return reply
    }

    static func formEscape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
    }

    /// Signs in with `token` from the sign-in page.
    func signIn(_ token: String) async throws -> Client.Reply {
        _ = try await get("/sign-in")
        return try await submit("/sign-in", [("token", token), ("next", "/")])
    }
}

extension Client.Reply {
    var location: String? { headers[.location] }
}

@Suite("Dashboard", .timeLimit(.minutes(3)))
struct DashboardTests {
    private func dashboardServer(_ adjust: @escaping (inout ServerArguments) -> Void = { _ in }) throws -> TestServer {
        try serverWithAccess(file: DashboardAccess.file, adjust)
    }

    @Test("Without an access file the dashboard is open, says so, and every page carries its protections")
    func openDashboard() async throws {
        try await TestServer().run { client in
            let visitor = Visitor(client)
            let page = try await visitor.get("/")
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            #expect(page.text.contains("No access control is configured"))
            let cookie = try #require(page.headers[values: .setCookie].first { $0.hasPrefix("gatehouse_session=") })
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"))
            let policy = try #require(page.headers[HTTPField.Name("Content-Security-Policy")!])
            #expect(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"))
            #expect(page.headers[.cacheControl] == "no-store")
            // Its assets come from the binary, not from elsewhere.
            #expect(!page.text.contains("http://") && !page.text.contains("https://"))
            #expect(try await visitor.get("/assets/dashboard.css").status == .ok)
            #expect(try await visitor.get("/assets/dashboard.js").text.contains("data-live"))
            #expect(try await visitor.get("/assets/nothing.js").status == .notFound)
            for path in ["/freezes", "/audit", "/freezes?all=true", "/audit?actor=flagger&action=refused"] {
                #expect(try await visitor.get(path).status == .ok, "\(path)")
            }
        }
    }

    @Test("Behind TLS (X-Forwarded-Proto: https) the session cookie is Secure")
    func secureCookie() async throws {
        try await TestServer().run { client in
            let page = try await client.send(.get, "/", headers: [HTTPField.Name("X-Forwarded-Proto")!: "https"])
            let cookie = try #require(page.headers[values: .setCookie].first { $0.hasPrefix("gatehouse_session=") })
            #expect(cookie.contains("Secure"))
        }
    }

    @Test("With an access file, pages ask to sign in; a token signs in and out")
    func signInAndOut() async throws {
        try await dashboardServer().run { client in
            let visitor = Visitor(client)
            let first = try await visitor.get("/canaries/test/podinfo")
            #expect(first.status == .seeOther)
            #expect(first.location == "/sign-in?next=%2Fcanaries%2Ftest%2Fpodinfo")
            let form = try await visitor.get("/sign-in")
            #expect(form.status == .ok && form.text.contains(#"type="password""#))
            #expect(!form.text.contains("No access control"))
            // A sign-in form without the page's CSRF token is refused.
            let forged = try await visitor.submit("/sign-in", [("token", DashboardAccess.ops)], csrf: "")
            #expect(forged.status == .forbidden)
            let wrong = try await visitor.submit("/sign-in", [("token", "not-a-token")])
            #expect(wrong.status == .unauthorized && wrong.text.contains("not in the access file"))
            let before = visitor.cookies["gatehouse_session"]
            let signedIn = try await visitor.submit("/sign-in", [("token", DashboardAccess.ops), ("next", "/audit")])
            #expect(signedIn.status == .seeOther && signedIn.location == "/audit")
            #expect(visitor.cookies["gatehouse_session"] != before, "a new session at sign-in")
            let overview = try await visitor.get("/")
            #expect(overview.status == .ok && overview.text.contains("signed in with the shared access token ops"))
            let signedOut = try await visitor.submit("/sign-out", [])
            #expect(signedOut.status == .seeOther && signedOut.location == "/sign-in")
            #expect(try await visitor.get("/").status == .seeOther)
            // The signed-out session is over even for someone who kept its cookie.
            let replay = Visitor(client)
            _ = try await replay.get("/sign-in")
            _ = try await replay.submit("/sign-in", [("token", DashboardAccess.ops)])
            let kept = try #require(replay.cookies["gatehouse_session"])
            #expect(try await replay.get("/").status == .ok)
            #expect(try await replay.submit("/sign-out", []).status == .seeOther)
            let reused = try await client.send(.get, "/", headers: [.cookie: "gatehouse_session=\(kept)"])
            #expect(reused.status == .seeOther)
            // Sign-in never sends the viewer to another site, however the address is disguised
            // (browsers drop tabs and line breaks in a URL and read a backslash as a slash).
            for away in [
                "//evil.example", "/\t/evil.example/", "/\\evil.example", "\\\\evil.example", "/\n/evil.example",
                "/\r/evil.example", "https://evil.example/", "javascript:alert(1)", " /evil", "/\u{0B}/evil.example",
                "/\u{FF0F}evil.example", "",
            ] {
                _ = try await visitor.get("/sign-in")
                let signedIn = try await visitor.submit("/sign-in", [("token", DashboardAccess.ops), ("next", away)])
                #expect(signedIn.status == .seeOther && signedIn.location == "/", "\(away.debugDescription)")
            }
            // A path of this site, query and encoded characters included, is where it returns.
            _ = try await visitor.get("/sign-in")
            let back = try await visitor.submit(
                "/sign-in", [("token", DashboardAccess.ops), ("next", "/audit?actor=a%2Fb&since=1h")])
            #expect(back.location == "/audit?actor=a%2Fb&since=1h")
            let page = try await client.send(.get, "/sign-in?next=%2F%09%2Fevil.example%2F")
            #expect(page.status == .ok && !page.text.contains("evil.example"))
        }
    }

    @Test("A sign-out holds after a restart (same session secret); a session not signed out goes on")
    func signOutOutlivesRestart() async throws {
        let server = try dashboardServer { $0.sessionSecret = "one secret for every replica" }
        let (kept, signedOut) = try await server.run { client in
            let staying = Visitor(client)
            _ = try await staying.signIn(DashboardAccess.ops)
            let leaving = Visitor(client)
            _ = try await leaving.signIn(DashboardAccess.ops)
            let leavingCookie = try #require(leaving.cookies["gatehouse_session"])
            #expect(try await leaving.get("/").status == .ok)
            let out = try await leaving.submit("/sign-out", [])
            #expect(out.status == .seeOther, "\(out.status) \(out.text)")
            return (try #require(staying.cookies["gatehouse_session"]), leavingCookie)
        }
        try await server.run { client in
            let stillIn = try await client.send(.get, "/", headers: [.cookie: "gatehouse_session=\(kept)"])
            #expect(stillIn.status == .ok, "the restart itself signs nobody out")
            let replayed = try await client.send(.get, "/", headers: [.cookie: "gatehouse_session=\(signedOut)"])
            #expect(replayed.status == .seeOther && replayed.location?.hasPrefix("/sign-in") == true)
        }
    }

    @Test("Two replicas with one session secret share sign-in; a replica with another key asks again")
    func replicasShareSignIn() async throws {
        let secret = "one secret for every replica"
        let first = try dashboardServer { $0.sessionSecret = secret }
        let cookie = try await first.run { client in
            let visitor = Visitor(client)
            _ = try await visitor.signIn(DashboardAccess.ops)
            return try #require(visitor.cookies["gatehouse_session"])
        }
        let second = try dashboardServer { $0.sessionSecret = secret }
        try await second.run { client in
            let page = try await client.send(.get, "/", headers: [.cookie: "gatehouse_session=\(cookie)"])
            #expect(page.status == .ok && page.text.contains("signed in with the shared access token ops"))
        }
        let other = try dashboardServer { $0.sessionSecret = "another key" }
        try await other.run { client in
            let page = try await client.send(.get, "/", headers: [.cookie: "gatehouse_session=\(cookie)"])
            #expect(page.status == .seeOther && page.location?.hasPrefix("/sign-in") == true)
        }
    }

    @Test("An operator approves the promotion from the canary page and Flagger's next check passes")
    func approveFromThePage() async throws {
        try await dashboardServer().run { client in
            #expect(try await client.hook("confirm-promotion", checksum: "rev-1").status == .forbidden)
            let visitor = Visitor(client)
            _ = try await visitor.signIn(DashboardAccess.ops)
            let overview = try await visitor.get("/")
            #expect(overview.text.contains("Waiting") && overview.text.contains("promotion gate: gate closed"))
            let page = try await visitor.get("/canaries/test/podinfo")
            #expect(page.status == .ok && page.text.contains("Approvals given here are for rollout rev-1 only."))
            let done = try await visitor.submit(
                "/canaries/test/podinfo/open",
                [("gate", "promotion"), ("scope", "rollout"), ("checksum", "rev-1"), ("reason", "looks good")])
            #expect(done.status == .seeOther && done.location == "/canaries/test/podinfo")
            let after = try await visitor.get("/canaries/test/podinfo")
            #expect(after.text.contains("Done: promotion gate open"))
            #expect(try await client.hook("confirm-promotion", checksum: "rev-1").status == .ok)
            // The audit trail names the person, as for the API.
            let events = try await client.send(
                .get, "/v1/events?actor=token:ops&action=opened",
                headers: [.authorization: "Bearer \(DashboardAccess.ops)"])
            #expect(events.text.contains("looks good"))
            // The notice is shown once.
            #expect(!(try await visitor.get("/canaries/test/podinfo")).text.contains("Done: promotion gate open"))
            // A canary that never called is changed all the same, with a note of the one likely meant.
            let typo = try await visitor.submit(
                "/canaries/test/podinfp/close", [("gate", "promotion"), ("reason", "wrong one")])
            #expect(typo.status == .seeOther)
            let noted = try await visitor.get(typo.location ?? "/")
            #expect(
                noted.text.contains("Note: no canary test/podinfp has called Gatehouse; did you mean test/podinfo?"),
                "\(noted.text)")
        }
    }

    @Test("Approving traffic steps, the rest of the rollout, closing, and bad form values")
    func trafficAndClose() async throws {
        try await dashboardServer().run { client in
            #expect(try await client.hook("confirm-traffic-increase", checksum: "rev-1").status == .forbidden)
            let visitor = Visitor(client)
            _ = try await visitor.signIn(DashboardAccess.ops)
            _ = try await visitor.get("/canaries/test/podinfo")
            let path = "/canaries/test/podinfo/open"
            let bad = try await visitor.submit(path, [("gate", "traffic"), ("scope", "steps"), ("steps", "0")])
            #expect(bad.status == .badRequest && bad.text.contains("steps must be a whole number"))
            let steps = try await visitor.submit(path, [("gate", "traffic"), ("scope", "steps"), ("steps", "2")])
            #expect(steps.status == .seeOther)
            #expect(try await visitor.get("/canaries/test/podinfo").text.contains("approved the next 2 traffic checks"))
            let rest = try await visitor.submit(path, [("gate", "traffic"), ("scope", "rest"), ("checksum", "rev-1")])
            #expect(rest.status == .seeOther)
            for _ in 0..<3 {
                #expect(try await client.hook("confirm-traffic-increase", checksum: "rev-1").status == .ok)
            }
            let close = try await visitor.submit(
                "/canaries/test/podinfo/close", [("gate", "traffic"), ("reason", "metrics look odd")])
            #expect(close.status == .seeOther)
            #expect(try await client.hook("confirm-traffic-increase", checksum: "rev-1").status == .forbidden)
            let unknownGate = try await visitor.submit(path, [("gate", "sideways")])
            #expect(unknownGate.status == .badRequest)
        }
    }

    @Test("A rollback asks for confirmation, says what Flagger will do, and Flagger's rollback check passes")
    func rollback() async throws {
        try await dashboardServer().run { client in
            #expect(try await client.hook("confirm-traffic-increase", checksum: "rev-1").status == .forbidden)
            let visitor = Visitor(client)
            _ = try await visitor.signIn(DashboardAccess.ops)
            let confirm = try await visitor.get("/canaries/test/podinfo/rollback")
            #expect(confirm.status == .ok)
            #expect(confirm.text.contains("routes all traffic back to the primary"))
            #expect(try await client.hook("rollback", checksum: "rev-1").status == .forbidden)
            let noReason = try await visitor.submit("/canaries/test/podinfo/rollback", [("checksum", "rev-1")])
            #expect(noReason.status == .badRequest)
            let done = try await visitor.submit(
                "/canaries/test/podinfo/rollback", [("checksum", "rev-1"), ("reason", "errors up")])
            #expect(done.status == .seeOther)
            #expect(try await client.hook("rollback", checksum: "rev-1").status == .ok)
            // A rollback of a rollout that is no longer in progress is refused, not left for the next one.
            _ = try await visitor.get("/canaries/test/podinfo")
            let stale = try await visitor.submit(
                "/canaries/test/podinfo/rollback", [("checksum", "rev-0"), ("reason", "old page")])
            #expect(stale.status == .conflict)
        }
    }

    @Test("A read-only viewer sees no forms, and a forged form is refused and changes nothing")
    func readOnly() async throws {
        try await dashboardServer().run { client in
            _ = try await client.hook("confirm-promotion", checksum: "rev-1")
            let visitor = Visitor(client)
            _ = try await visitor.signIn(DashboardAccess.reader)
            let page = try await visitor.get("/canaries/test/podinfo")
            #expect(page.status == .ok)
            #expect(!page.text.contains("<form method=\"post\" action=\"/canaries"))
            #expect(page.text.contains("may see this canary but not act on it"))
            let forged = try await visitor.submit(
                "/canaries/test/podinfo/open", [("gate", "promotion"), ("scope", "rollout")])
            #expect(forged.status == .forbidden && forged.text.contains("reader may not open"))
            #expect(try await visitor.get("/freezes").text.contains("Set a freeze") == false)
            let freeze = try await visitor.submit("/freezes", [("reason", "no")])
            #expect(freeze.status == .forbidden)
            #expect(try await client.hook("confirm-promotion", checksum: "rev-1").status == .forbidden)
            // Other namespaces are not shown to them at all.
            _ = try await client.hook("confirm-promotion", checksum: "rev-1", name: "other")
            #expect(try await visitor.get("/canaries/payments/api").status == .forbidden)
        }
    }

    @Test("Forms without the page's CSRF token, or from another site, are refused and change nothing")
    func csrf() async throws {
        try await dashboardServer().run { client in
            _ = try await client.hook("confirm-promotion", checksum: "rev-1")
            let visitor = Visitor(client)
            _ = try await visitor.signIn(DashboardAccess.ops)
            _ = try await visitor.get("/canaries/test/podinfo")
            let fields = [("gate", "promotion"), ("scope", "rollout")]
            let missing = try await visitor.submit("/canaries/test/podinfo/open", fields, csrf: "")
            #expect(missing.status == .forbidden && missing.text.contains("CSRF token"))
            let wrong = try await visitor.submit("/canaries/test/podinfo/open", fields, csrf: "forged")
            #expect(wrong.status == .forbidden)
            let elsewhere = try await visitor.submit(
                "/canaries/test/podinfo/open", fields, headers: [.origin: "https://evil.example"])
            #expect(elsewhere.status == .forbidden && elsewhere.text.contains("another site"))
            #expect(try await client.hook("confirm-promotion", checksum: "rev-1").status == .forbidden)
            // Someone else's page's token does not work with this session either.
            let other = Visitor(client)
            _ = try await other.get("/sign-in")
            let borrowed = try await visitor.submit("/canaries/test/podinfo/open", fields, csrf: other.csrf)
            #expect(borrowed.status == .forbidden)
        }
    }

    @Test("Behind a trusted proxy its user header names the viewer, with the grants of their groups")
    func trustedProxy() async throws {
        try await dashboardServer { $0.trustedProxies = ["127.0.0.1", "::1"] }.run { client in
            _ = try await client.hook("confirm-promotion", checksum: "rev-1")
            let carol: HTTPFields = [HTTPField.Name("X-Forwarded-User")!: "carol@example.com"]
            let visitor = Visitor(client)
            let page = try await visitor.get("/canaries/test/podinfo", headers: carol)
            #expect(page.status == .ok && page.text.contains("carol@example.com"))
            #expect(!page.text.contains("action=\"/canaries/test/podinfo/open"))
            var manager = carol
            manager[HTTPField.Name("X-Forwarded-Groups")!] = "staff, release-managers"
            let managed = try await visitor.get("/canaries/test/podinfo", headers: manager)
            #expect(managed.text.contains("action=\"/canaries/test/podinfo/open"))
            let done = try await visitor.submit(
                "/canaries/test/podinfo/open", [("gate", "promotion"), ("scope", "rollout"), ("reason", "ok")],
                headers: manager)
            #expect(done.status == .seeOther)
            #expect(try await client.hook("confirm-promotion", checksum: "rev-1").status == .ok)
            let events = try await client.send(
                .get, "/v1/events?action=opened", headers: [.authorization: "Bearer \(DashboardAccess.ops)"])
            #expect(events.text.contains("carol@example.com"))
        }
    }

    @Test("A user header from an address that is not a trusted proxy is ignored")
    func untrustedProxy() async throws {
        try await dashboardServer { $0.trustedProxies = ["10.0.0.0/8"] }.run { client in
            let reply = try await client.send(
                .get, "/", headers: [HTTPField.Name("X-Forwarded-User")!: "carol@example.com"])
            #expect(reply.status == .seeOther && reply.location?.hasPrefix("/sign-in") == true)
        }
    }

    @Test("Flagger's messages and people's reasons are shown as text, never as markup")
    func escaping() async throws {
        try await TestServer().run { client in
            let attack = #"<script>alert("x")</script><img src=x onerror=alert(1)>"#
            let payload = try JSONSerialization.data(withJSONObject: [
                "name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "rev-1",
                "metadata": ["eventMessage": attack, "eventType": "Warning", "timestamp": "1700000000000"],
            ])
            let event = try await client.post("/v1/flagger/events", String(decoding: payload, as: UTF8.self))
            #expect(event.status == .accepted, "\(event.text)")
            let visitor = Visitor(client)
            _ = try await visitor.get("/canaries/test/podinfo")
            _ = try await visitor.submit(
                "/canaries/test/podinfo/open", [("gate", "promotion"), ("scope", "rollout"), ("reason", attack)])
            for path in ["/", "/canaries/test/podinfo", "/audit"] {
                let page = try await visitor.get(path)
                #expect(!page.text.contains("<script>alert"), "\(path)")
                #expect(!page.text.contains("<img src=x"), "\(path)")
            }
            #expect(try await visitor.get("/canaries/test/podinfo").text.contains("&lt;script&gt;alert"))
        }
    }

    @Test("Freezes are set and lifted from the freezes page, and hold Flagger meanwhile")
    func freezes() async throws {
        try await dashboardServer().run { client in
            let visitor = Visitor(client)
            _ = try await visitor.signIn(DashboardAccess.ops)
            #expect(try await visitor.get("/freezes").text.contains("Nothing is frozen."))
            let badDuration = try await visitor.submit("/freezes", [("reason", "x"), ("for", "soon")])
            #expect(badDuration.status == .badRequest)
            let set = try await visitor.submit(
                "/freezes", [("namespace", "test"), ("reason", "release train"), ("for", "2h")])
            #expect(set.status == .seeOther && set.location == "/freezes")
            let page = try await visitor.get("/freezes")
            #expect(page.text.contains("Done: test is frozen.") || page.text.contains("is frozen"))
            #expect(page.text.contains("release train"))
            let freezeID = try #require(
                page.text.range(of: #"data-freeze=""#).map { page.text[$0.upperBound...].prefix { $0 != "\"" } })
            _ = try await client.post("/v1/canaries/test/podinfo/gates/promotion/open")
            #expect(try await client.hook("confirm-promotion", checksum: "rev-1").status == .forbidden)
            let lift = try await visitor.submit("/freezes/\(freezeID)/lift", [])
            #expect(lift.status == .seeOther)
            #expect(try await visitor.get("/freezes").text.contains("Nothing is frozen."))
            #expect(try await visitor.submit("/freezes/999/lift", []).status == .notFound)
        }
    }

    @Test("The overview filters by namespace and state, and answers its live part alone")
    func overviewFiltersAndLive() async throws {
        try await TestServer().run { client in
            _ = try await client.hook("confirm-promotion", checksum: "rev-1")
            _ = try await client.post(
                "/v1/flagger/confirm-rollout",
                #"{"name": "api", "namespace": "payments", "phase": "Succeeded", "checksum": "p-1"}"#)
            let visitor = Visitor(client)
            let all = try await visitor.get("/")
            #expect(all.text.contains("test/podinfo") && all.text.contains("payments/api"))
            let test = try await visitor.get("/?namespace=test")
            #expect(test.text.contains("test/podinfo") && !test.text.contains("payments/api"))
            let idle = try await visitor.get("/?state=idle")
            #expect(!idle.text.contains("test/podinfo"))
            #expect(try await visitor.get("/?state=sleeping").status == .badRequest)
            let live = try await visitor.get("/", headers: [HTTPField.Name("X-Gatehouse-Live")!: "1"])
            #expect(live.status == .ok && live.text.contains("test/podinfo") && !live.text.contains("<html"))
            #expect(try await visitor.get("/canaries/test/nothing").status == .notFound)
            #expect(try await visitor.get("/canaries/test/podinfo?cluster=Bad_Name").status == .badRequest)
            #expect(try await visitor.get("/audit?action=sideways").status == .badRequest)
            #expect(try await visitor.get("/audit?since=yesterday").status == .badRequest)
        }
    }

    @Test("The overview shows what waits on top and pages the idle canaries 50 at a time, each once, in order")
    func overviewPagesIdleCanaries() async throws {
        try await TestServer().run { client in
            _ = try await client.hook("confirm-promotion", checksum: "rev-1")
            for index in 0..<120 {
                let name = "app-" + String(1000 + index).dropFirst()
                _ = try await client.post(
                    "/v1/flagger/events",
                    #"{"name": "\#(name)", "namespace": "fleet", "phase": "Succeeded", "checksum": "r1", "metadata": {"eventMessage": "Promotion completed! Scaling down \#(name).fleet", "eventType": "Normal"}}"#
                )
            }
            let visitor = Visitor(client)
            var page = try await visitor.get("/")
            #expect(page.text.contains("test/podinfo"), "the waiting canary is on the first page")
            #expect(page.text.contains(#"Idle <span class="count">120</span>"#))
            var seen: [String] = []
            for _ in 0..<5 {
                let rows = page.text.matches(of: /data-canary="(fleet\/app-\d+)"/).map { String($0.output.1) }
                #expect(rows.count <= DashboardController.pageSize)
                seen += rows
                guard let next = page.text.firstMatch(of: /href="([^"]+)" rel="next"/) else { break }
                page = try await visitor.get(String(next.output.1).replacingOccurrences(of: "&amp;", with: "&"))
                #expect(
                    page.status == .ok && page.text.contains("test/podinfo"), "what waits stays on top of every page")
            }
            #expect(seen == (0..<120).map { "fleet/app-" + String(1000 + $0).dropFirst() })
            #expect(try await visitor.get("/?after=nothing").status == .badRequest)
        }
    }

    @Test("The audit page searches by canary, actor, action and time")
    func auditSearch() async throws {
        try await TestServer().run { client in
            _ = try await client.hook("confirm-promotion", checksum: "rev-1")
            _ = try await client.send(
                .post, "/v1/canaries/test/podinfo/gates/promotion/open", body: #"{"reason": "by alice"}"#,
                headers: [HTTPField.Name("X-Gatehouse-Actor")!: "alice"])
            let visitor = Visitor(client)
            let byAlice = try await visitor.get("/audit?actor=alice")
            #expect(byAlice.text.contains("by alice") && !byAlice.text.contains("refused the promotion gate"))
            let refused = try await visitor.get("/audit?action=refused&canary=test/podinfo")
            #expect(refused.text.contains("refused") && !refused.text.contains("by alice"))
            let future = try await visitor.get("/audit?since=2999-01-01T00:00:00Z")
            #expect(future.text.contains("No entries match."))
            let api = try await client.get("/v1/events?actor=alice&until=2999-01-01T00:00:00Z")
            #expect(api.status == .ok && api.text.contains("by alice") && !api.text.contains("flagger"))
        }
    }

    @Test(
        "Each page's answer to someone not signed in, to a reader of test, and to an operator",
        arguments: [
            ("/", HTTPResponse.Status.ok, HTTPResponse.Status.ok),
            ("/canaries/test/podinfo", .ok, .ok),
            ("/canaries/payments/api", .forbidden, .ok),
            ("/canaries/test/podinfo/rollback", .forbidden, .ok),
            ("/freezes", .ok, .ok),
            ("/audit", .ok, .ok),
            ("/audit?namespace=payments", .forbidden, .ok),
            ("/audit?canary=test/podinfo", .ok, .ok),
        ])
    func pageAuthorization(path: String, reader: HTTPResponse.Status, operator: HTTPResponse.Status) async throws {
        try await dashboardServer().run { client in
            _ = try await client.hook("confirm-traffic-increase", checksum: "rev-1")
            _ = try await client.post(
                "/v1/flagger/confirm-traffic-increase",
                #"{"name": "api", "namespace": "payments", "phase": "Progressing", "checksum": "p-1"}"#)
            let anonymous = try await Visitor(client).get(path)
            #expect(anonymous.status == .seeOther && anonymous.location?.hasPrefix("/sign-in?next=") == true)
            let readerVisit = Visitor(client)
            _ = try await readerVisit.signIn(DashboardAccess.reader)
            #expect(try await readerVisit.get(path).status == reader)
            let opsVisit = Visitor(client)
            _ = try await opsVisit.signIn(DashboardAccess.ops)
            #expect(try await opsVisit.get(path).status == `operator`)
            // Every form needs a signed-in viewer first.
            let stranger = Visitor(client)
            _ = try await stranger.get("/sign-in")
            let post = try await stranger.submit("/canaries/test/podinfo/close", [("gate", "traffic")])
            #expect(post.status == .seeOther && post.location?.hasPrefix("/sign-in") == true)
        }
    }

    @Test("A freeze can end at a time, and a time in the past is refused")
    func freezeUntil() async throws {
        try await TestServer().run { client in
            let visitor = Visitor(client)
            _ = try await visitor.get("/freezes")
            let past = try await visitor.submit("/freezes", [("reason", "x"), ("until", "2001-01-01T00:00:00Z")])
            #expect(past.status == .badRequest && past.text.contains("in the past"))
            _ = try await visitor.get("/freezes")
            let set = try await visitor.submit("/freezes", [("reason", "holidays"), ("until", "2999-01-01T00:00:00Z")])
            #expect(set.status == .seeOther)
            let page = try await visitor.get("/freezes").text
            // Readable, with the exact moment on hover (the page's script shows it in the viewer's zone).
            #expect(page.contains(#"ends <time datetime="2999-01-01T00:00:00Z" title="2999-01-01T00:00:00Z">in "#))
            #expect(page.contains(#"since <time datetime=""#) && page.contains(">just now</time>"), "\(page)")
        }
    }

    @Test("The overview offers each waiting canary's next step where it is, to those who may take it")
    func nextStepOnTheOverview() async throws {
        try await dashboardServer().run { client in
            #expect(try await client.hook("confirm-rollout", checksum: "r1").status == .forbidden)
            let visitor = Visitor(client)
            _ = try await visitor.signIn(DashboardAccess.ops)
            let overview = try await visitor.get("/")
            #expect(overview.text.contains(#"<form method="post" action="/canaries/test/podinfo/open" class="next">"#))
            #expect(overview.text.contains(">Start the rollout</button>"), "\(overview.text)")
            let done = try await visitor.submit(
                "/canaries/test/podinfo/open",
                [("gate", "rollout"), ("checksum", ""), ("back", "/"), ("scope", "rollout"), ("reason", "go")])
            #expect(done.status == .seeOther && done.location == "/", "back to the overview")
            #expect(try await client.hook("confirm-rollout", checksum: "r1").status == .ok)
            // A rollout under way, waiting on traffic: the next step or the rest, and Roll back (confirmed on its page).
            #expect(try await client.hook("confirm-traffic-increase", checksum: "r1").status == .forbidden)
            let traffic = try await visitor.get("/")
            #expect(traffic.text.contains(#"name="scope" value="steps">Approve the next step</button>"#))
            #expect(traffic.text.contains(#"name="scope" value="rest">Approve the rest</button>"#))
            #expect(
                traffic.text.contains(
                    #"<a class="button danger" href="/canaries/test/podinfo/rollback">Roll back…</a>"#))
            _ = try await visitor.submit(
                "/canaries/test/podinfo/open",
                [("gate", "traffic"), ("checksum", "r1"), ("back", "/"), ("scope", "steps"), ("steps", "1")])
            #expect(try await client.hook("confirm-traffic-increase", checksum: "r1").status == .ok)
            // A read-only viewer sees what waits, and no step to take.
            #expect(try await client.hook("confirm-promotion", checksum: "r1").status == .forbidden)
            let reader = Visitor(client)
            _ = try await reader.signIn(DashboardAccess.reader)
            let seen = try await reader.get("/")
            #expect(seen.text.contains("promotion gate") && !seen.text.contains(#"class="next""#))
        }
    }

    @Test("A canary page offers only the approvals that apply now, and files an approval under its rollout")
    func onlyWhatAppliesNow() async throws {
        try await dashboardServer().run { client in
            let visitor = Visitor(client)
            _ = try await visitor.signIn(DashboardAccess.ops)
            // A new release waiting to start (Flagger asks confirm-rollout with the previous release's
            // checksum): the last phase is the previous rollout's, and only the rollout gate applies.
            func event(_ message: String, phase: String) async throws {
                _ = try await client.post(
                    "/v1/flagger/events",
                    #"{"name": "podinfo", "namespace": "test", "phase": "\#(phase)", "checksum": "rev-0", "metadata": {"eventMessage": "\#(message)", "eventType": "Normal"}}"#
                )
            }
            try await event("Promotion completed! Scaling down podinfo.test", phase: "Succeeded")
            _ = try await client.hook("confirm-rollout", checksum: "rev-0", phase: "Succeeded")
            let waiting = try await visitor.get("/canaries/test/podinfo")
            #expect(waiting.text.contains("Succeeded (previous rollout)"), "\(waiting.text)")
            #expect(waiting.text.contains("Approve this rollout") && !waiting.text.contains("Approve promotion"))
            #expect(waiting.text.contains("Next rollout (waiting to start)"), "\(waiting.text)")
            _ = try await visitor.submit(
                "/canaries/test/podinfo/open", [("gate", "rollout"), ("scope", "rollout"), ("reason", "start")])
            #expect(try await client.hook("confirm-rollout", checksum: "rev-0", phase: "Succeeded").status == .ok)
            // Flagger's events of the tick that lets the rollout in still carry the previous checksum
            // (scheduler.go:908-925): they belong to the new release all the same.
            try await event("Confirm-rollout check gatehouse-rollout passed", phase: "Waiting")
            try await event("New revision detected! Scaling up podinfo.test", phase: "Progressing")
            #expect(try await client.hook("confirm-promotion", checksum: "rev-1").status == .forbidden)
            // Under way: traffic and promotion, not the rollout gate.
            let progressing = try await visitor.get("/canaries/test/podinfo")
            #expect(
                progressing.text.contains("Approve promotion") && !progressing.text.contains("Approve this rollout"))
            _ = try await visitor.submit(
                "/canaries/test/podinfo/open",
                [("gate", "promotion"), ("scope", "rollout"), ("checksum", "rev-1"), ("reason", "ship it")])
            let page = try await visitor.get("/canaries/test/podinfo").text
            let timeline = String(page[try #require(page.range(of: "<h2>Timeline</h2>")).upperBound...])
            let rollout = try #require(timeline.range(of: "Rollout rev-1"))
            let approval = try #require(timeline.range(of: "ship it"))
            let without = timeline.range(of: "Without a rollout")
            #expect(rollout.lowerBound < approval.lowerBound, "the approval is filed under rollout rev-1")
            #expect(without.map { approval.upperBound < $0.lowerBound } ?? true, "not under 'Without a rollout'")
            // One release, one rollout: its start (the rollout gate and Flagger's events, with rev-0) is
            // under rev-1 too; the rollout before ends with its "Promotion completed!".
            let previous = try #require(timeline.range(of: "Rollout rev-0"))
            let start = try #require(timeline.range(of: "<q>start</q>"))
            let scaling = try #require(timeline.range(of: "New revision detected! Scaling up"))
            let completed = try #require(timeline.range(of: "Promotion completed!"))
            #expect(rollout.lowerBound < start.lowerBound && start.upperBound < previous.lowerBound, "\(timeline)")
            #expect(rollout.lowerBound < scaling.lowerBound && scaling.upperBound < previous.lowerBound)
            #expect(previous.upperBound < completed.lowerBound, "\(timeline)")
        }
    }

    @Test("Idle canaries on a page with a next page carry no form: a row without a next step is not given its group's")
    func idleRowsOfAPagedGroup() async throws {
        try await dashboardServer().run { client in
            for index in 0...DashboardController.pageSize {
                let opened = try await client.send(
                    .post, "/v1/canaries/idle/app-\(index)/gates/shared/open", body: #"{"reason": "setup"}"#,
                    headers: [.authorization: "Bearer \(DashboardAccess.ops)"])
                #expect(opened.status == .ok)
            }
            let visitor = Visitor(client)
            _ = try await visitor.signIn(DashboardAccess.ops)
            let page = try await visitor.get("/").text
            #expect(page.contains(#"rel="next">Next page</a>"#), "\(page)")
            #expect(!page.contains(#"class="next""#), "no next-step form on an idle row")
        }
    }

    @Test("Where a rule would not count the viewer's approval, the overview says why instead of offering it")
    func nextStepSaysWhoCounts() async throws {
        let server = try dashboardServer { arguments in
            let path = arguments.databasePath.replacingOccurrences(of: "gatehouse.sqlite", with: "policy.yaml")
            try? """
            rules:
              - name: two-people
                gates: [promotion]
                approvals: {count: 2, from: [alice, bob]}
            """.write(toFile: path, atomically: true, encoding: .utf8)
            arguments.policyFile = path
        }
        try await server.run { client in
            _ = try await client.hook("confirm-promotion", checksum: "r1")
            let visitor = Visitor(client)
            _ = try await visitor.signIn(DashboardAccess.ops)
            let overview = try await visitor.get("/")
            #expect(
                overview.text.contains("0 of 2 approvals") || overview.text.contains("no approvals yet"),
                "\(overview.text)")
            #expect(
                overview.text.contains("Your approval would not count: token:ops is not a person"), "\(overview.text)")
            #expect(!overview.text.contains(">Promote</button>"))
        }
    }

    @Test("Each rollout shows its traffic over time from Flagger's events: weight, steps, failed checks, a chart")
    func rolloutProgress() async throws {
        try await dashboardServer().run { client in
            func event(_ message: String, type: String = "Normal") async throws {
                _ = try await client.post(
                    "/v1/flagger/events",
                    #"{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "rev-1", "metadata": {"eventMessage": "\#(message)", "eventType": "\#(type)"}}"#
                )
            }
            _ = try await client.hook("confirm-rollout", checksum: "rev-1")
            try await event("Starting canary analysis for podinfo.test")
            try await event("Advance podinfo.test canary weight 10")
            try await event("Halt podinfo.test advancement success rate 91.20% < 99%", type: "Warning")
            try await event("Halt podinfo.test advancement waiting for traffic increase approval gatehouse-traffic")
            try await event("Advance podinfo.test canary weight 20")
            let visitor = Visitor(client)
            _ = try await visitor.signIn(DashboardAccess.ops)
            let page = try await visitor.get("/canaries/test/podinfo").text
            #expect(page.contains(#"<figure class="progress">"#), "\(page)")
            #expect(
                page.contains("Canary weight 20% (highest 20%) after 2 steps in ")
                    && page.contains("; 1 failed check."),
                "\(page)")
            #expect(page.contains(#"<span class="step">10% for "#) && page.contains(#"<span class="step">20% for "#))
            #expect(page.contains(#"aria-label="Canary weight over "#) && page.contains(": 10%, 20%"))
            // The chart: from 0 up to 10 and 20, held until the end: six points.
            let points = try #require(page.range(of: #"<polyline class="weight" points=""#))
            let list = page[points.upperBound...].prefix { $0 != "\"" }
            #expect(list.split(separator: " ").count == 6, "\(list)")
            #expect(!page.contains("step left"), "without the analysis in the metadata, no steps left are claimed")

            // The traffic webhook's metadata repeats the analysis: the maximum and the steps left show.
            _ = try await client.post(
                "/v1/flagger/confirm-traffic-increase",
                #"{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "rev-1", "metadata": {"maxWeight": "50", "stepWeight": "10"}}"#
            )
            let planned = try await visitor.get("/canaries/test/podinfo").text
            #expect(planned.contains("Canary weight 20% of 50% (highest 20%) after 2 steps in "), "\(planned)")
            #expect(planned.contains("; 3 steps left; 1 failed check."), "\(planned)")
            #expect(planned.contains(#">50%</text>"#), "the chart's scale reaches the maximum")
        }
    }

    @Test(
        "The weight a traffic step reaches is Flagger's: steps of stepWeight past maxWeight, or the next of stepWeights"
    )
    func trafficPlanFollowsFlagger() throws {
        // stepWeight 20 with maxWeight 50: Flagger goes 0, 20, 40, 60 (runCanary adds a whole step below the maximum).
        let linear = try #require(TrafficPlan(stepWeight: 20, stepWeights: nil, maxWeight: 50))
        #expect([0, 20, 40, 60].map(linear.weight(after:)) == [20, 40, 60, 60])
        #expect(linear.stepsLeft(from: 0) == 3 && linear.stepsLeft(from: 60) == 0)
        // stepWeights: the next listed weight; the last is the maximum.
        let listed = try #require(TrafficPlan(stepWeight: nil, stepWeights: [1, 5, 25, 50], maxWeight: 80))
        #expect(listed.maximum == 50)
        #expect([0, 1, 5, 25, 50].map(listed.weight(after:)) == [1, 5, 25, 50, 50])
        #expect(listed.stepsLeft(from: 5) == 2)
        // Without maxWeight Flagger's maximum is 100; without a step nothing is known.
        #expect(TrafficPlan(stepWeight: 10, stepWeights: nil, maxWeight: nil)?.maximum == 100)
        #expect(TrafficPlan(stepWeight: nil, stepWeights: nil, maxWeight: 50) == nil)
        // Metadata that is not a weight is ignored; a later call's keys replace earlier ones.
        let labels = CanaryLabels().updated(from: ["maxWeight": "50", "stepWeight": "ten", "stepWeights": "5,1"])
        #expect(labels.maxWeight == 50 && labels.stepWeight == nil && labels.stepWeights == nil)
        #expect(labels.updated(from: ["stepWeights": "5, 10,30"]).trafficPlan?.maximum == 30)
    }

    @Test(
        "Flagger's wording is read as Flagger v1.44 writes it: every advance's weight, and which halts are failed checks"
    )
    func flaggerMessages() throws {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/flagger-sequences", withExtension: "json"))
        let text = try String(contentsOf: url, encoding: .utf8)
        let messages = Set(
            text.matches(of: /"eventMessage": "([^"]*)"/).map { String($0.output.1) })
        #expect(messages.count > 10)
        for message in messages {
            let weight = FlaggerMessage.advancedWeight(message)
            if message.hasPrefix("Advance ") {
                #expect(weight.map { message.hasSuffix(" \($0)") } == true, "\(message)")
            } else {
                #expect(weight == nil, "\(message)")
            }
            let failed = message.contains("success rate") || message.contains("request duration")
            #expect(FlaggerMessage.isFailedCheck(message) == failed, "\(message)")
        }
    }

    @Test("Times read as people say them: just now, seconds, minutes, hours and days, ago or to come")
    func readableTimes() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let cases: [(TimeInterval, String)] = [
            (-2, "just now"), (-40, "40 s ago"), (-240, "4 min ago"), (-(3 * 3600 + 300), "3 h 5 min ago"),
            (-7200, "2 h ago"), (-(2 * 86400 + 3600), "2 d 1 h ago"), (90, "in 1 min"), (86400 * 3, "in 3 d"),
        ]
        for (offset, words) in cases {
            #expect(Moment.relative(now.addingTimeInterval(offset), now: now) == words)
        }
    }

    @Test("--dashboard false serves no dashboard")
    func turnedOff() async throws {
        try await TestServer { $0.dashboard = false }.run { client throws in
            #expect(try await client.get("/").status == .notFound)
            #expect(try await client.get("/assets/dashboard.css").status == .notFound)
        }
    }

    @Test(
        "A session ends at its time, holds only with this service's key, and ends when its token leaves the access file"
    )
    func sessionLifetime() async throws {
        let sessions = DashboardSessions(secret: "shared secret", lifetime: 60)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let session = sessions.start(at: now)
        let cookie = sessions.cookie(for: session, secure: false, at: now).value
        #expect(sessions.session(from: cookie, at: now.addingTimeInterval(59)) == session)
        #expect(sessions.session(from: cookie, at: now.addingTimeInterval(61)) == nil)
        #expect(DashboardSessions(secret: "shared secret", lifetime: 60).session(from: cookie, at: now) == session)
        #expect(DashboardSessions(secret: "another", lifetime: 60).session(from: cookie, at: now) == nil)
        #expect(sessions.session(from: cookie.replacingOccurrences(of: ".", with: "x."), at: now) == nil)

        let server = try dashboardServer()
        try await server.run { client in
            let visitor = Visitor(client)
            _ = try await visitor.signIn(DashboardAccess.ops)
            #expect(try await visitor.get("/").status == .ok)
            let withoutOps = DashboardAccess.file.replacingOccurrences(
                of: AccessPolicy.hash(of: DashboardAccess.ops), with: AccessPolicy.hash(of: "a new ops token"))
            try withoutOps.write(toFile: try #require(server.arguments.accessFile), atomically: true, encoding: .utf8)
            // The access file is re-read within a few seconds; the session ends with it.
            var status = HTTPResponse.Status.ok
            for _ in 0..<300 where status == .ok {
                try await Task.sleep(for: .milliseconds(100))
                status = try await visitor.get("/").status
            }
            #expect(status == .seeOther)
        }
    }
}
