import Foundation
import GatehouseCore
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing

@testable import GatehouseServer

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A real HTTP receiver on 127.0.0.1 that records what it is sent and answers as scripted.
final class Receiver: Sendable {
    struct Delivery: Sendable {
        var path: String
        var body: Data
        var at: Date
        var contentType: String?

        func json() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        }
    }

    private let received = Mutex<[Delivery]>([])
    private let script = Mutex<[(HTTPResponse.Status, HTTPFields)]>([])

    /// The next answers, in order; after them, 200.
    func answer(_ answers: [(HTTPResponse.Status, HTTPFields)]) {
        script.withLock { $0 = answers }
    }

    var deliveries: [Delivery] { received.withLock { $0 } }

    /// Waits until `count` deliveries arrived (or the deadline passed).
    func wait(for count: Int, seconds: Double = 10) async throws -> [Delivery] {
        let deadline = Date().addingTimeInterval(seconds)
        while deliveries.count < count && Date() < deadline { try await Task.sleep(for: .milliseconds(25)) }
        return deliveries
    }

    /// Waits (at most 10 seconds) until the service has nothing left to deliver: every message was
    /// delivered or given up. What the receiver holds then is everything it will get.
    func settled(_ client: Client) async throws -> [Delivery] {
        for _ in 0..<400 {
            let metrics = try PrometheusText(try await client.get("/metrics").text)
            if metrics.value("gatehouse_notifications_pending", [:]) == 0 { return deliveries }
            try await Task.sleep(for: .milliseconds(25))
        }
        Issue.record("the outbox did not empty within 10 seconds")
        return deliveries
    }

    /// Runs the receiver on `port` (0 for any) for the duration of `body`.
    func run<Value: Sendable>(port: Int = 0, _ body: @Sendable (URL) async throws -> Value) async throws -> Value {
        let router = Router()
        router.post("{target}") { request, _ -> Response in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            self.received.withLock {
                $0.append(
                    Delivery(
                        path: request.uri.path, body: Data(buffer.readableBytesView), at: Date(),
                        contentType: request.headers[.contentType]))
            }
            let (status, headers) = self.script.withLock { $0.isEmpty ? (.ok, [:]) : $0.removeFirst() }
            return Response(status: status, headers: headers)
        }
        var logger = Logger(label: "receiver")
        logger.logLevel = .warning
        if port == 0 {
            let app = Application(router: router, logger: logger)
            return try await app.test(.live) { client in
                try await body(URL(string: "http://127.0.0.1:\(try #require(client.port))")!)
            }
        }
        // The test framework always picks its own port; a receiver that must come back on a known
        // port runs as a service of its own.
        let (started, ready) = AsyncStream.makeStream(of: Void.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { _ in ready.yield() }, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            let services = ServiceGroup(configuration: .init(services: [app], logger: logger))
            group.addTask { try await services.run() }
            for await _ in started { break }
            defer { Task { await services.triggerGracefulShutdown() } }
            let value = try await body(URL(string: "http://127.0.0.1:\(port)")!)
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
            return value
        }
    }
}

/// A Gatehouse server that notifies a receiver.
func notifyingServer(
    receiver: URL, extra: String = "", giveUpAfter: String = "1h", policy: String? = nil, moreTargets: String = "",
    accessFile: String? = nil, slackSigningSecret: String? = nil
) throws
    -> TestServer
{
    try TestServer { arguments in
        if let accessFile {
            let path = arguments.databasePath.replacingOccurrences(of: "gatehouse.sqlite", with: "access.yaml")
            try? accessFile.write(toFile: path, atomically: true, encoding: .utf8)
            arguments.accessFile = path
        }
        arguments.slackSigningSecret = slackSigningSecret
        if let policy {
            let path = arguments.databasePath.replacingOccurrences(of: "gatehouse.sqlite", with: "policy.yaml")
            try? policy.write(toFile: path, atomically: true, encoding: .utf8)
            arguments.policyFile = path
        }
        let file = arguments.databasePath.replacingOccurrences(of: "gatehouse.sqlite", with: "notifications.yaml")
        arguments.notificationsFile = file
        arguments.linkSecret = "link-secret-for-tests"
        arguments.notificationInterval = 0.05
        arguments.notificationRetryBase = 0.1
        let text = """
            cluster: prod-eu-1
            linkBaseURL: http://gatehouse.example.com
            giveUpAfter: \(giveUpAfter)
            \(extra)
            targets:
              - name: hook
                kind: webhook
                url: \(receiver.absoluteString)/hook
              - name: slack
                kind: slack
                url: \(receiver.absoluteString)/slack
                namespaces: [test]
                kinds: [waiting, rollback-requested]
            \(moreTargets)
            """
        try? text.write(toFile: file, atomically: true, encoding: .utf8)
    }
}

@Suite("Notifications and approval links", .serialized, .timeLimit(.minutes(3)))
struct NotificationTests {
    @Test("a canary held by a policy rule is announced with the rule and what would unblock it")
    func heldByRule() async throws {
        let receiver = Receiver()
        let policy = """
            rules:
              - name: two-approvers
                gates: [promotion]
                approvals: {count: 2, from: [alice, bob]}
            """
        try await receiver.run { url in
            try await notifyingServer(receiver: url, policy: policy).run(.live) { client in
                _ = try await client.send(
                    .post, "/v1/canaries/test/podinfo/gates/promotion/open", headers: [ActorHeader.header: "alice"])
                _ = try await client.hook("confirm-promotion", checksum: "c1")
                let deliveries = try await receiver.settled(client)
                let waiting = try deliveries.filter { $0.path == "/hook" }.map { try $0.json() }
                let hook = try #require(waiting.first { $0["kind"] as? String == "waiting" })
                let text = try #require(hook["text"] as? String)
                #expect(text.hasPrefix("test/podinfo is waiting for the promotion gate (rollout c1): "), "\(text)")
                #expect(
                    text.contains("(rule two-approvers): 1 of 2 approvals: alice; waiting for one of: bob"), "\(text)")
            }
        }
    }

    @Test("a frozen canary's waiting message offers no Approve that could not let it through, only Roll back")
    func frozenOffersNoApprove() async throws {
        let receiver = Receiver()
        try await receiver.run { url in
            try await notifyingServer(receiver: url).run(.live) { client in
                _ = try await client.post("/v1/freezes", #"{"namespace": "test", "reason": "release train"}"#)
                _ = try await client.hook("confirm-promotion", checksum: "c1")
                let deliveries = try await receiver.settled(client)
                let hook = try #require(
                    try deliveries.filter { $0.path == "/hook" }.map { try $0.json() }
                        .first { $0["kind"] as? String == "waiting" })
                let links = try #require(hook["links"] as? [String: String])
                #expect(links["approve"] == nil && links["rollback"] != nil, "\(links)")
                let slack = try #require(
                    try deliveries.filter { $0.path == "/slack" }.map { try $0.json() }
                        .first { ($0["text"] as? String)?.contains("waiting") == true })
                let blocks = try #require(slack["blocks"] as? [[String: Any]])
                let buttons = blocks.first { $0["type"] as? String == "actions" }?["elements"] as? [[String: Any]]
                #expect(buttons?.compactMap { ($0["text"] as? [String: Any])?["text"] as? String } == ["Roll back"])
            }
        }
    }

    @Test("Microsoft Teams and Google Chat get the same facts and buttons, as an Adaptive Card and a Chat card")
    func teamsAndGoogleChat() async throws {
        let receiver = Receiver()
        try await receiver.run { url in
            let more = """
                  - name: teams
                    kind: teams
                    url: \(url.absoluteString)/teams
                    kinds: [waiting]
                  - name: chat
                    kind: googlechat
                    url: \(url.absoluteString)/chat
                    kinds: [waiting]
                """
            try await notifyingServer(receiver: url, moreTargets: more).run(.live) { client in
                _ = try await client.post(
                    "/v1/flagger/events",
                    #"{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "c1", "metadata": {"eventMessage": "Halt <b>advancement</b>", "eventType": "Warning"}}"#
                )
                _ = try await client.hook("confirm-promotion", checksum: "c1")
                let deliveries = try await receiver.settled(client)
                let teams = try #require(deliveries.first { $0.path == "/teams" }).json()
                #expect(teams["type"] as? String == "message")
                let attachment = try #require((teams["attachments"] as? [[String: Any]])?.first)
                #expect(attachment["contentType"] as? String == "application/vnd.microsoft.card.adaptive")
                let card = try #require(attachment["content"] as? [String: Any])
                #expect(card["type"] as? String == "AdaptiveCard")
                let body = try #require(card["body"] as? [[String: Any]])
                #expect(body.first?["text"] as? String == "test/podinfo is waiting for the promotion gate (rollout c1)")
                let facts = try #require(
                    body.first { $0["type"] as? String == "FactSet" }?["facts"] as? [[String: String]])
                #expect(facts.contains { $0["title"] == "Canary" && $0["value"] == "test/podinfo" })
                let actions = try #require(card["actions"] as? [[String: Any]])
                #expect(actions.compactMap { $0["title"] as? String } == ["Approve", "Roll back"])
                #expect((actions.first?["url"] as? String)?.hasPrefix("http://gatehouse.example.com/v1/links/") == true)

                let chat = try #require(deliveries.first { $0.path == "/chat" }).json()
                #expect(chat["text"] as? String == "test/podinfo is waiting for the promotion gate (rollout c1)")
                let widgets = try #require(
                    ((((chat["cardsV2"] as? [[String: Any]])?.first?["card"] as? [String: Any])?["sections"]
                        as? [[String: Any]])?.first?["widgets"] as? [[String: Any]]))
                let lists = widgets.compactMap { ($0["buttonList"] as? [String: Any])?["buttons"] as? [[String: Any]] }
                let buttons = try #require(lists.first)
                #expect(buttons.compactMap { $0["text"] as? String } == ["Approve", "Roll back"])
                // Chat reads a little HTML in its texts: Flagger's words are shown, not interpreted.
                let paragraphs = widgets.compactMap { ($0["textParagraph"] as? [String: Any])?["text"] as? String }
                #expect(paragraphs.contains("Flagger: Halt &lt;b&gt;advancement&lt;/b&gt;"), "\(paragraphs)")
            }
        }
    }

    @Test("Slack buttons act as the Slack user who presses them, once, and the message says who did it")
    func slackButtons() async throws {
        let receiver = Receiver()
        try await receiver.run { url in
            let server = try notifyingServer(
                receiver: url, accessFile: Tokens.file, slackSigningSecret: SlackSigner().secret)
            try await server.run(.live) { client in
                _ = try await client.hook("confirm-promotion", checksum: "c1")
                let slack = try #require(try await receiver.settled(client).first { $0.path == "/slack" }).json()
                let blocks = try #require(slack["blocks"] as? [[String: Any]])
                let buttons = try #require(
                    blocks.first { $0["type"] as? String == "actions" }?["elements"] as? [[String: Any]])
                #expect(buttons.allSatisfy { $0["url"] == nil && $0["action_id"] != nil }, "\(buttons)")
                let approve = try #require(buttons.first?["value"] as? String)
                let rollback = try #require(buttons.last?["value"] as? String)

                func press(_ value: String, user: String) async throws -> HTTPResponse.Status {
                    // Each press is its own request, as Slack's are (a trigger id of its own), so that two
                    // presses within one second are not taken for a replay of one.
                    let payload: [String: Any] = [
                        "type": "block_actions", "user": ["id": user], "channel": ["id": "CGENERAL"],
                        "trigger_id": UUID().uuidString,
                        "actions": [["action_id": "gatehouse-0", "value": value]],
                        "response_url": "\(url.absoluteString)/respond",
                    ]
                    let json = String(decoding: try JSONSerialization.data(withJSONObject: payload), as: UTF8.self)
                    let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
                    let body = "payload=" + json.addingPercentEncoding(withAllowedCharacters: allowed)!
                    return try await client.send(
                        .post, "/v1/slack/interactions", body: body, headers: SlackSigner().headers(for: body)
                    ).status
                }
                // Bob may only read: his press of Roll back is refused, to him alone.
                #expect(try await press(rollback, user: "UBOB") == .ok)
                #expect(try await press(approve, user: "UALICE") == .ok)
                #expect(try await client.hook("confirm-promotion", checksum: "c1").status == .ok)
                let events = try await client.send(.get, "/v1/events?action=opened", token: Tokens.ops).text
                #expect(events.contains(#""actor":"slack:UALICE""#), "\(events)")
                // Pressed again: used once only.
                #expect(try await press(approve, user: "UALICE") == .ok)
                let answers = try receiver.deliveries.filter { $0.path == "/respond" }.map { try $0.json() }
                #expect(answers.count == 3, "\(answers)")
                #expect(
                    answers.contains {
                        $0["replace_original"] as? Bool == true
                            && ($0["text"] as? String)?.contains(
                                "<@UALICE> approved the promotion gate of test/podinfo") == true
                    }, "\(answers)")
                #expect(
                    answers.contains { ($0["text"] as? String)?.contains("may not rollback") == true }, "\(answers)")
                #expect(answers.contains { ($0["text"] as? String)?.contains("already used") == true }, "\(answers)")
                // An unsigned press does nothing.
                let unsigned = try await client.send(.post, "/v1/slack/interactions", body: "payload=%7B%7D")
                #expect(unsigned.status == .unauthorized)
            }
        }
    }

    @Test("examples/notifications.yaml is a notifications file the service reads, with every kind of target")
    func exampleFile() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(
            contentsOf: root.appendingPathComponent("examples/notifications.yaml"), encoding: .utf8)
        let settings = try NotificationSettings.parse(text)
        #expect(Set(settings.targets.map(\.kind)) == [.slack, .teams, .googleChat, .webhook])
    }

    @Test("with access control on, a message's curl line sends the bearer token")
    func curlCarriesToken() async throws {
        let receiver = Receiver()
        try await receiver.run { url in
            try await notifyingServer(receiver: url, accessFile: Tokens.file).run(.live) { client in
                _ = try await client.hook("confirm-promotion", checksum: "c1")
                let hook = try #require(try await receiver.settled(client).first { $0.path == "/hook" }).json()
                let commands = try #require(hook["commands"] as? [String: String])
                #expect(
                    commands["curl"]
                        == #"curl -X POST -H "Authorization: Bearer $GATEHOUSE_TOKEN" $GATEHOUSE_URL/v1/canaries/test/podinfo/gates/promotion/open"#,
                    "\(commands)")
            }
        }
    }

    @Test("a waiting canary sends one message per rollout, with its facts, commands and links")
    func waiting() async throws {
        let receiver = Receiver()
        try await receiver.run { url in
            try await notifyingServer(receiver: url).run(.live) { client in
                _ = try await client.post(
                    "/v1/flagger/events",
                    #"{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "c1", "metadata": {"eventMessage": "Halt podinfo.test advancement waiting for promotion approval", "eventType": "Warning"}}"#
                )
                for _ in 0..<10 { _ = try await client.hook("confirm-promotion", checksum: "c1") }
                let deliveries = try await receiver.settled(client)
                #expect(deliveries.count == 2, "one message per target, not one per check")
                let hook = try #require(deliveries.first { $0.path == "/hook" }).json()
                #expect(hook["kind"] as? String == "waiting")
                #expect(hook["cluster"] as? String == "prod-eu-1")
                #expect(hook["namespace"] as? String == "test" && hook["name"] as? String == "podinfo")
                #expect(hook["gate"] as? String == "promotion" && hook["checksum"] as? String == "c1")
                #expect(hook["message"] as? String == "Halt podinfo.test advancement waiting for promotion approval")
                #expect(hook["text"] as? String == "test/podinfo is waiting for the promotion gate (rollout c1)")
                let commands = try #require(hook["commands"] as? [String: String])
                #expect(commands["cli"] == "gatehouse open promotion podinfo -n test")
                let links = try #require(hook["links"] as? [String: String])
                #expect(links["approve"]?.hasPrefix("http://gatehouse.example.com/v1/links/") == true)
                #expect(links["rollback"] != nil)
                let slack = try #require(deliveries.first { $0.path == "/slack" }).json()
                let blocks = try #require(slack["blocks"] as? [[String: Any]])
                let buttons = try #require(
                    blocks.first { $0["type"] as? String == "actions" }?["elements"] as? [[String: Any]])
                #expect(
                    buttons.compactMap { ($0["text"] as? [String: Any])?["text"] as? String } == [
                        "Approve", "Roll back",
                    ])
                #expect(slack["text"] as? String == hook["text"] as? String)

                // The next rollout waiting is a new fact.
                _ = try await client.hook("confirm-promotion", checksum: "c2")
                #expect(try await receiver.wait(for: 4).count == 4)
            }
        }
    }

    @Test("changes notify: opened, closed, rollback requested and fired, freezes, Flagger's outcome")
    func changes() async throws {
        let receiver = Receiver()
        try await receiver.run { url in
            try await notifyingServer(receiver: url).run(.live) { client in
                _ = try await client.post("/v1/canaries/test/podinfo/gates/promotion/open", #"{"reason": "ok"}"#)
                _ = try await client.post("/v1/canaries/test/podinfo/gates/promotion/close")
                _ = try await client.hook("rollback", checksum: "c1")
                _ = try await client.post("/v1/canaries/test/podinfo/rollback")
                _ = try await client.hook("rollback", checksum: "c1")
                _ = try await client.post("/v1/freezes", #"{"namespace": "test", "reason": "r"}"#)
                _ = try await client.send(.delete, "/v1/freezes/1")
                _ = try await client.hook("post-rollout", checksum: "c1", phase: "Failed")
                _ = try await client.post(
                    "/v1/flagger/events",
                    #"{"name": "podinfo", "namespace": "test", "phase": "Failed", "checksum": "c1"}"#)
                let expected = [
                    "opened", "closed", "rollback-requested", "rollback-fired", "freeze-set", "freeze-lifted", "failed",
                ]
                let hooks = try await receiver.settled(client).filter { $0.path == "/hook" }
                let kinds = try hooks.map {
                    try $0.json()["kind"] as? String
                }
                #expect(kinds == expected, "each fact once, in order; the Failed event repeats the outcome")
                #expect(try hooks.first?.json()["actor"] as? String == "api")
            }
        }
    }

    @Test("a 500 is retried until delivered; 429 waits for Retry-After")
    func retries() async throws {
        let receiver = Receiver()
        receiver.answer([(.internalServerError, [:]), (.tooManyRequests, [.retryAfter: "1"])])
        try await receiver.run { url in
            try await notifyingServer(receiver: url, extra: "").run(.live) { client in
                _ = try await client.post("/v1/freezes", #"{"namespace": "other", "reason": "r"}"#)
                let deliveries = try await receiver.settled(client)
                #expect(deliveries.count == 3, "retried twice, delivered once, then nothing more")
                let metrics = try PrometheusText(try await client.get("/metrics").text)
                #expect(metrics.value("gatehouse_notifications_total", ["target": "hook", "outcome": "retried"]) == 2)
                #expect(
                    metrics.value("gatehouse_notifications_total", ["target": "hook", "outcome": "delivered"]) == 1)
            }
        }
    }

    @Test("a 429 waits as long as its Retry-After says (seconds or a date); a 5xx backs off; a 4xx fails")
    func retryDecision() throws {
        func response(_ status: Int, _ headers: [String: String] = [:]) -> HTTPURLResponse? {
            HTTPURLResponse(url: URL(string: "http://x")!, statusCode: status, httpVersion: nil, headerFields: headers)
        }
        guard
            case .retry(let after, _) = OutboxDelivery.Outcome(
                response(429, ["Retry-After": "7"]), attempts: 0, base: 1)
        else { return #expect(Bool(false), "a 429 is retried") }
        #expect(after == 7)
        let date = Date().addingTimeInterval(120)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard
            case .retry(let untilDate, _) = OutboxDelivery.Outcome(
                response(429, ["Retry-After": formatter.string(from: date)]), attempts: 0, base: 1)
        else { return #expect(Bool(false), "a 429 is retried") }
        #expect((100...121).contains(untilDate))
        guard case .retry(let backoff, _) = OutboxDelivery.Outcome(response(503), attempts: 3, base: 1) else {
            return #expect(Bool(false), "a 503 is retried")
        }
        #expect(backoff == 8)
        guard case .fail = OutboxDelivery.Outcome(response(404), attempts: 0, base: 1) else {
            return #expect(Bool(false), "a 404 is not retried")
        }
        guard case .delivered = OutboxDelivery.Outcome(response(204), attempts: 0, base: 1) else {
            return #expect(Bool(false), "a 204 is a delivery")
        }
    }

    @Test("delivery gives up at its deadline and says so in the audit trail")
    func givesUp() async throws {
        let receiver = Receiver()
        receiver.answer(Array(repeating: (.serviceUnavailable, [:]), count: 100))
        try await receiver.run { url in
            try await notifyingServer(receiver: url, giveUpAfter: "1s").run(.live) { client in
                _ = try await client.post("/v1/freezes", #"{"namespace": "other", "reason": "r"}"#)
                var actions: [String] = []
                for _ in 0..<60 where !actions.contains("notification-failed") {
                    try await Task.sleep(for: .milliseconds(100))
                    let events = try await client.get("/v1/events").json()["events"] as? [[String: Any]] ?? []
                    actions = events.compactMap { $0["action"] as? String }
                }
                #expect(actions.contains("notification-failed"))
                let metrics = try PrometheusText(try await client.get("/metrics").text)
                #expect(metrics.value("gatehouse_notifications_total", ["target": "hook", "outcome": "failed"]) == 1)
            }
        }
    }

    @Test("a revision held for skipping the rollout gate is approved through the rollout gate, from its link")
    func heldRevisionLink() async throws {
        let receiver = Receiver()
        try await receiver.run { url in
            try await notifyingServer(receiver: url).run(.live) { client in
                _ = try await client.post("/v1/canaries/test/podinfo/gates/rollout/open")
                _ = try await client.post("/v1/canaries/test/podinfo/gates/traffic/open", #"{"sticky": true}"#)
                #expect(try await client.hook("confirm-rollout", checksum: "rev1", phase: "Succeeded").status == .ok)
                #expect(try await client.hook("confirm-traffic-increase", checksum: "rev2").status == .ok)
                // rev3 was applied during the analysis: held at traffic.
                #expect(try await client.hook("confirm-traffic-increase", checksum: "rev3").status == .forbidden)
                // Two opened gates and the waiting canary, each to both targets.
                let deliveries = try await receiver.wait(for: 6)
                let hook = try #require(
                    try deliveries.filter { $0.path == "/hook" }.map { try $0.json() }.first {
                        $0["kind"] as? String == "waiting"
                    })
                #expect(hook["gate"] as? String == "traffic" && hook["checksum"] as? String == "rev3")
                let commands = try #require(hook["commands"] as? [String: String])
                #expect(commands["cli"] == "gatehouse open rollout podinfo -n test")
                let links = try #require(hook["links"] as? [String: String])
                let approve = try #require(links["approve"]).replacingOccurrences(
                    of: "http://gatehouse.example.com", with: "")
                let page = try await client.get(approve)
                #expect(page.text.contains("rollout gate"), "\(page.text)")
                #expect(try await client.post(approve).status == .ok)
                #expect(try await client.hook("confirm-traffic-increase", checksum: "rev3").status == .ok)
            }
        }
    }

    @Test("a restart resumes pending deliveries")
    func restart() async throws {
        let port = try freePort()
        let url = URL(string: "http://127.0.0.1:\(port)")!
        let server = try notifyingServer(receiver: url)
        try await server.run(.live) { client in
            // Nobody listens yet: the message stays in the outbox, its first attempt failed.
            _ = try await client.post("/v1/freezes", #"{"namespace": "other", "reason": "r"}"#)
            var retried: Double?
            for _ in 0..<400 where (retried ?? 0) < 1 {
                try await Task.sleep(for: .milliseconds(25))
                retried = try PrometheusText(try await client.get("/metrics").text).value(
                    "gatehouse_notifications_total", ["target": "hook", "outcome": "retried"])
            }
            #expect(retried == 1)
        }
        let receiver = Receiver()
        try await receiver.run(port: port) { _ in
            try await server.run(.live) { _ in
                let deliveries = try await receiver.wait(for: 1)
                #expect(try deliveries.first?.json()["kind"] as? String == "freeze-set")
            }
        }
    }

    @Test("a canary waiting too long gets one reminder, also after a restart")
    func reminder() async throws {
        let receiver = Receiver()
        try await receiver.run { url in
            let server = try notifyingServer(receiver: url, extra: "reminderAfter: 500ms")
            try await server.run(.live) { client in
                _ = try await client.hook("confirm-rollout", checksum: "c1", name: "slow")
                _ = try await receiver.wait(for: 3, seconds: 5)
                _ = try await receiver.settled(client)  // every delivery recorded as such
            }
            // A restarted service keeps nothing in memory about the reminder sent: only the outbox
            // can keep it to one. The freeze's message is delivered in a round that first looked
            // for canaries to remind, so once the outbox is empty that round has run.
            try await server.run(.live) { client in
                #expect(
                    try await client.post("/v1/freezes", #"{"namespace": "other", "reason": "r"}"#).status == .created)
                let hook = try await receiver.settled(client).filter { $0.path == "/hook" }
                #expect(try hook.map { try $0.json()["kind"] as? String } == ["waiting", "reminder", "freeze-set"])
                let reminder = try hook[1].json()
                #expect((reminder["waitingSeconds"] as? Int ?? 0) >= 0)
                #expect(reminder["links"] != nil)
            }
        }
    }

    @Test("links: GET shows and changes nothing; POST acts once; tampered and expired links do nothing")
    func links() async throws {
        let receiver = Receiver()
        try await receiver.run { url in
            try await notifyingServer(receiver: url).run(.live) { client in
                _ = try await client.hook("confirm-promotion", checksum: "c7")
                let waiting = try #require(try await receiver.wait(for: 1).first { $0.path == "/hook" }).json()
                let links = try #require(waiting["links"] as? [String: String])
                let approve = try #require(links["approve"]).replacingOccurrences(
                    of: "http://gatehouse.example.com", with: "")

                let page = try await client.get(approve)
                #expect(page.status == .ok && page.headers[.contentType]?.hasPrefix("text/html") == true)
                #expect(
                    page.text.contains(
                        "This opens the promotion gate of test/podinfo for rollout c7 on cluster prod-eu-1"))
                #expect(page.text.contains(#"<form method="post">"#))
                _ = try await client.get(approve)
                #expect(
                    try await client.hook("confirm-promotion", checksum: "c7").status == .forbidden,
                    "GET changed nothing")

                let tampered = approve.dropLast(3) + (approve.hasSuffix("AAA") ? "BBB" : "AAA")
                let refused = try await client.post(String(tampered))
                #expect(refused.status == .forbidden && refused.text.contains("not valid"))

                let done = try await client.post(approve)
                #expect(done.status == .ok && done.text.contains("Done"))
                #expect(try await client.hook("confirm-promotion", checksum: "c7").status == .ok)
                #expect(
                    try await client.hook("confirm-promotion", checksum: "c8").status == .forbidden,
                    "for that rollout only")
                let again = try await client.post(approve)
                #expect(again.status == .gone && again.text.contains("already used"))
                let events =
                    try await client.get("/v1/canaries/test/podinfo/events").json()["events"] as? [[String: Any]]
                #expect(
                    events?.contains { $0["action"] as? String == "opened" && $0["actor"] as? String == "link" } == true
                )

                let signer = LinkSigner(secret: "link-secret-for-tests")
                let expired = signer.token(
                    for: ApprovalLink(
                        namespace: "test", name: "podinfo", gate: .promotion, checksum: "c9", action: .approve,
                        expires: Int64(Date().timeIntervalSince1970) - 1, nonce: "n1"))
                let late = try await client.post("/v1/links/\(expired)")
                #expect(late.status == .gone && late.text.contains("expired"))
                let forged = LinkSigner(secret: "another-secret").token(
                    for: ApprovalLink(
                        namespace: "test", name: "podinfo", gate: .promotion, checksum: "c9", action: .approve,
                        expires: Int64(Date().timeIntervalSince1970) + 600, nonce: "n2"))
                #expect(try await client.post("/v1/links/\(forged)").status == .forbidden)
            }
        }
    }
}

/// A port nothing listens on right now.
func freePort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
        }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
