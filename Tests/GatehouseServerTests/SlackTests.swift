import Crypto
import Foundation
import GatehouseServer
import HTTPTypes
import HummingbirdTesting
import Testing

/// Signs form bodies as Slack does.
struct SlackSigner {
    let secret = "8f742231b10e8888abcd99yyyzzz85a5"

    func headers(for body: String, at time: Date = Date(), secret: String? = nil) -> HTTPFields {
        let timestamp = String(Int(time.timeIntervalSince1970))
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data("v0:\(timestamp):\(body)".utf8), using: SymmetricKey(data: Data((secret ?? self.secret).utf8)))
        return [
            HTTPField.Name("X-Slack-Request-Timestamp")!: timestamp,
            HTTPField.Name("X-Slack-Signature")!: "v0=" + mac.map { String(format: "%02x", $0) }.joined(),
            .contentType: "application/x-www-form-urlencoded",
        ]
    }

    static func form(user: String, channel: String = "CGENERAL", text: String) -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let encoded = text.addingPercentEncoding(withAllowedCharacters: allowed)!.replacingOccurrences(
            of: "%20", with: "+")
        return
            "token=x&team_id=T1&channel_id=\(channel)&user_id=\(user)&user_name=someone&command=%2Fgatehouse&text=\(encoded)&response_url=https%3A%2F%2Fhooks.slack.com%2Fx&trigger_id=\(UUID().uuidString)"
    }
}

extension Client {
    func slack(
        _ text: String, user: String = "UALICE", channel: String = "CGENERAL", signer: SlackSigner = SlackSigner()
    )
        async throws -> (status: HTTPResponse.Status, type: String?, text: String)
    {
        let body = SlackSigner.form(user: user, channel: channel, text: text)
        let reply = try await send(.post, "/v1/slack/command", body: body, headers: signer.headers(for: body))
        let object = reply.status == .ok ? try reply.json() : [:]
        return (reply.status, object["response_type"] as? String, object["text"] as? String ?? reply.text)
    }
}

func slackServer() throws -> TestServer {
    try serverWithAccess { $0.slackSigningSecret = SlackSigner().secret }
}

@Suite("Slack slash commands", .timeLimit(.minutes(3)))
struct SlackTests {
    let signer = SlackSigner()

    @Test("a good signature is accepted; bad, stale and replayed ones get 401 and change nothing")
    func signatures() async throws {
        try await slackServer().run { client in
            let body = SlackSigner.form(user: "UALICE", text: "open promotion test/podinfo looks good")
            let headers = signer.headers(for: body)
            let good = try await client.send(.post, "/v1/slack/command", body: body, headers: headers)
            #expect(good.status == .ok)
            let replayed = try await client.send(.post, "/v1/slack/command", body: body, headers: headers)
            #expect(replayed.status == .unauthorized && replayed.text.contains("already received"))

            let other = SlackSigner.form(user: "UALICE", text: "close promotion test/podinfo")
            let bad = try await client.send(
                .post, "/v1/slack/command", body: other, headers: signer.headers(for: other, secret: "wrong"))
            #expect(bad.status == .unauthorized && bad.text.contains("signature does not match"))
            let stale = try await client.send(
                .post, "/v1/slack/command", body: other,
                headers: signer.headers(for: other, at: Date().addingTimeInterval(-301)))
            #expect(stale.status == .unauthorized && stale.text.contains("more than 5 minutes"))
            let tampered = try await client.send(
                .post, "/v1/slack/command", body: other + "x", headers: signer.headers(for: other))
            #expect(tampered.status == .unauthorized)
            let unsigned = try await client.send(.post, "/v1/slack/command", body: other)
            #expect(unsigned.status == .unauthorized)

            let state = try await client.send(.get, "/v1/canaries/test/podinfo", token: Tokens.ops).json()
            let promotion = (state["gates"] as? [String: [String: Any]])?["promotion"]
            #expect(promotion?["state"] as? String == "open", "only the good request acted")
            #expect(promotion?["actor"] as? String == "slack:UALICE")
        }
    }

    @Test("a request replayed after a restart is still refused")
    func replayAfterRestart() async throws {
        let server = try slackServer()
        let body = SlackSigner.form(user: "UALICE", text: "close promotion test/podinfo hold")
        let headers = signer.headers(for: body)
        try await server.run { client in
            let first = try await client.send(.post, "/v1/slack/command", body: body, headers: headers)
            #expect(first.status == .ok)
        }
        try await server.run { client in
            let replayed = try await client.send(.post, "/v1/slack/command", body: body, headers: headers)
            #expect(replayed.status == .unauthorized && replayed.text.contains("already received"))
        }
    }

    @Test("every command, with replies in channel for changes and ephemeral otherwise")
    func commands() async throws {
        try await slackServer().run { client in
            let open = try await client.slack("open promotion test/podinfo metrics look fine")
            #expect(
                open.type == "in_channel"
                    && open.text.contains("<@UALICE> opened the promotion gate of test/podinfo: metrics look fine"))
            let rest = try await client.slack("open traffic test/podinfo steps=rest load test passed")
            #expect(rest.type == "in_channel" && rest.text.contains("load test passed"), "\(rest.text)")
            #expect(rest.text.contains("rest of the traffic checks of the next rollout"), "\(rest.text)")
            let two = try await client.slack("open traffic test/podinfo steps=2")
            #expect(two.text.contains("the next 2 traffic checks"), "\(two.text)")
            let wrongSteps = try await client.slack("open traffic test/podinfo steps=lots")
            #expect(wrongSteps.type == "ephemeral" && wrongSteps.text.contains("steps= takes"), "\(wrongSteps.text)")
            let close = try await client.slack("close promotion test/podinfo wait")
            #expect(close.type == "in_channel" && close.text.contains("closed the promotion gate"))
            // Flagger has not called about test/podinfo yet: each change said so, and a typo says what was meant.
            #expect(close.text.contains("\n:warning: no canary test/podinfo has called Gatehouse"), "\(close.text)")
            _ = try await client.hook("confirm-rollout", checksum: "c1", name: "checkout")
            let typo = try await client.slack("open promotion test/chekout")
            #expect(typo.text.contains("no canary test/chekout has called Gatehouse; did you mean test/checkout?"))
            #expect(!(try await client.slack("close promotion test/checkout")).text.contains(":warning:"))
            let outside = try await client.slack("rollback test/podinfo errors")
            #expect(outside.type == "ephemeral" && outside.text.contains("not known to be in a rollout"))
            // The refusal's way out works from Slack too.
            #expect(outside.text.contains("--force"))
            let forced = try await client.slack("rollback test/checkout --force errors everywhere")
            #expect(
                forced.type == "in_channel"
                    && forced.text.contains("asked Flagger to roll back test/checkout: errors everywhere"),
                "\(forced.text)")
            _ = try await client.hook("rollback", checksum: "c2")
            let rollback = try await client.slack("rollback test/podinfo errors")
            #expect(
                rollback.type == "in_channel" && rollback.text.contains("asked Flagger to roll back test/podinfo"),
                "\(rollback.text)")
            #expect(try await client.hook("rollback", checksum: "c2").status == .ok)
            let status = try await client.slack("status test/podinfo")
            #expect(status.type == "ephemeral" && status.text.contains("*test/podinfo*: Progressing"))
            let all = try await client.slack("status")
            #expect(all.text.contains("test/podinfo"))
            let freeze = try await client.slack("freeze test change window")
            #expect(
                freeze.type == "in_channel" && freeze.text.contains("froze namespace test: change window (freeze 1"))
            #expect(try await client.hook("confirm-rollout", checksum: "c3").text.contains("change window"))
            let unfreeze = try await client.slack("unfreeze 1")
            #expect(unfreeze.type == "in_channel" && unfreeze.text.contains("lifted freeze 1"))
            let freezeAll = try await client.slack("freeze all incident")
            #expect(freezeAll.text.contains("froze every namespace"))
            let help = try await client.slack("help")
            #expect(help.type == "ephemeral" && help.text.contains("/gatehouse open GATE"))
            let unknown = try await client.slack("deploy everything")
            #expect(unknown.type == "ephemeral" && unknown.text.hasPrefix("Usage: unknown command `deploy`"))
            let badName = try await client.slack("open promotion podinfo")
            #expect(badName.type == "ephemeral" && badName.text.contains("NAMESPACE/NAME"))
            let events = try await client.send(.get, "/v1/canaries/test/podinfo/events", token: Tokens.ops).json()
            let actors = Set((events["events"] as? [[String: Any]])?.compactMap { $0["actor"] as? String } ?? [])
            #expect(actors.contains("slack:UALICE"))
        }
    }

    @Test("Slack users and channels act only within their grants")
    func authorization() async throws {
        try await slackServer().run { client in
            let bob = try await client.slack("open promotion test/podinfo", user: "UBOB")
            #expect(bob.type == "ephemeral" && bob.text.contains("may not open in namespace test"))
            #expect(try await client.slack("status test/podinfo", user: "UBOB").type == "ephemeral")
            let stranger = try await client.slack("open promotion payments/cart", user: "USTRANGER")
            #expect(stranger.text.contains("may not open"))
            let inChannel = try await client.slack(
                "open promotion payments/cart", user: "USTRANGER", channel: "CRELEASE")
            #expect(inChannel.type == "in_channel")
            let closeInChannel = try await client.slack(
                "close promotion payments/cart", user: "USTRANGER", channel: "CRELEASE")
            #expect(closeInChannel.text.contains("may not close"))
            let freeze = try await client.slack("freeze all nope", user: "UBOB")
            #expect(freeze.text.contains("may not freeze in every namespace"))
            let state = try await client.send(.get, "/v1/canaries/test/podinfo", token: Tokens.ops)
            #expect(state.status == .notFound, "refused commands created nothing")
        }
    }

    @Test("without a signing secret the endpoint is off")
    func disabled() async throws {
        try await TestServer().run { client in
            let reply = try await client.slack("help")
            #expect(reply.status == .notFound && reply.text.contains("not enabled"))
        }
    }
}
