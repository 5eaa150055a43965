import Foundation
import GatehouseCore
import GatehouseStore
import Testing

@testable import GatehouseServer

/// Each kind of fact through each channel: a message offers only actions that can work for its
/// reader there — Approve only while approving can let the canary through, Roll back only once a
/// rollout can be rolled back, the bearer token in the curl line when access control is on, and in
/// Slack, with its signing secret set, buttons that act in Slack instead of links.
@Suite("What each message offers")
struct MessageActionsTests {
    static let settings: NotificationSettings = {
        let text = """
            cluster: prod
            linkBaseURL: https://gatehouse.example.com
            targets:
              - {name: hook, kind: webhook, url: "https://receiver.example/hook"}
              - {name: slack, kind: slack, url: "https://receiver.example/slack"}
              - {name: teams, kind: teams, url: "https://receiver.example/teams"}
              - {name: chat, kind: googlechat, url: "https://receiver.example/chat"}
            """
        return try! NotificationSettings.parse(text)
    }()

    /// The buttons each channel's message carries, by their words, and whether Slack's act in Slack.
    static func offered(_ message: OutboxMessage) throws -> (buttons: [String], inSlack: Bool, curl: String?) {
        let object = try #require(try JSONSerialization.jsonObject(with: message.body) as? [String: Any])
        switch message.target {
        case "hook":
            let links = object["links"] as? [String: String?] ?? [:]
            let names = [("approve", "Approve"), ("approveStep", "Approve 1 step"), ("rollback", "Roll back")]
            let curl = (object["commands"] as? [String: String])?["curl"]
            return (names.filter { links[$0.0] != nil && links[$0.0]! != nil }.map(\.1), false, curl)
        case "slack":
            let blocks = object["blocks"] as? [[String: Any]] ?? []
            let elements = blocks.first { $0["type"] as? String == "actions" }?["elements"] as? [[String: Any]] ?? []
            return (
                elements.compactMap { ($0["text"] as? [String: Any])?["text"] as? String },
                !elements.isEmpty && elements.allSatisfy { $0["action_id"] != nil && $0["url"] == nil }, nil
            )
        case "teams":
            let card = ((object["attachments"] as? [[String: Any]])?.first?["content"] as? [String: Any]) ?? [:]
            return ((card["actions"] as? [[String: Any]] ?? []).compactMap { $0["title"] as? String }, false, nil)
        default:
            let card = ((object["cardsV2"] as? [[String: Any]])?.first?["card"] as? [String: Any]) ?? [:]
            let widgets = (card["sections"] as? [[String: Any]])?.first?["widgets"] as? [[String: Any]] ?? []
            let buttons = widgets.compactMap { ($0["buttonList"] as? [String: Any])?["buttons"] as? [[String: Any]] }
            return ((buttons.first ?? []).compactMap { $0["text"] as? String }, false, nil)
        }
    }

    /// A canary of `test/podinfo` with a rollout at `stage`.
    static func canary(inRollout: Bool) -> Canary {
        var canary = Canary(id: try! CanaryID(namespace: "test", name: "podinfo"))
        if inRollout {
            _ = canary.deciding(
                Check(canary: canary.id, gate: .rollout, checksum: Revision("r1"), phase: .progressing),
                in: Surroundings(), at: Date())
        }
        return canary
    }

    @Test(
        "every kind of fact, through every channel, offers what can work",
        arguments: Notable.Kind.allCases)
    func walk(_ kind: Notable.Kind) throws {
        let renderer = NotificationRenderer(
            settings: Self.settings, signer: LinkSigner(secret: "s"), needsToken: true, slackInteractive: true)
        let freeze = Freeze(id: 1, namespace: "test", reason: "audit", actor: "alice", createdAt: Date())
        let isFreeze = kind == .freezeSet || kind == .freezeLifted
        for (cause, gate) in [(Decision.Cause.closed, GateKind.promotion), (.freeze, .promotion), (.closed, .rollout)] {
            let notable = Notable(
                kind: kind, canary: isFreeze ? nil : Self.canary(inRollout: gate != .rollout),
                gate: isFreeze ? nil : gate,
                fact: GateFact(action: .refused, actor: "flagger", checksum: Revision("r1"), cause: cause),
                freeze: isFreeze ? freeze : nil, at: Date())
            let messages = renderer.messages(for: notable)
            #expect(messages.count == 4, "one message for each channel")
            for message in messages {
                let (buttons, inSlack, curl) = try Self.offered(message)
                let waiting = kind == .waiting || kind == .reminder
                var expected: [String] = []
                if waiting && cause != .freeze { expected.append("Approve") }
                if waiting && gate != .rollout { expected.append("Roll back") }
                #expect(
                    buttons == expected, "\(kind.rawValue) (\(cause.rawValue), \(gate.rawValue)) to \(message.target)")
                if message.target == "slack", !buttons.isEmpty {
                    #expect(inSlack, "Slack's buttons act in Slack when its signing secret is set")
                }
                if let curl { #expect(curl.contains(#"-H "Authorization: Bearer $GATEHOUSE_TOKEN""#)) }
            }
        }
    }
}
