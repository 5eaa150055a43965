import Foundation
import GatehouseCore
import GatehouseStore

/// Turns facts into messages for each target: a Slack Block Kit message or Gatehouse's JSON payload,
/// with signed approval links for a waiting canary.
public struct NotificationRenderer: NotificationPolicy {
    let settings: NotificationSettings
    let signer: LinkSigner?
    /// Whether the API needs a bearer token: the curl line of a message then sends one.
    let needsToken: Bool
    /// Whether Slack's button presses come back to Gatehouse (a signing secret is set): Slack
    /// messages then carry buttons that act as the Slack user who presses them, not links.
    let slackInteractive: Bool

    /// Creates the renderer; without a signer (or a link base URL) messages carry no links.
    public init(
        settings: NotificationSettings, signer: LinkSigner?, needsToken: Bool = false, slackInteractive: Bool = false
    ) {
        self.settings = settings
        self.signer = signer
        self.needsToken = needsToken
        self.slackInteractive = slackInteractive
    }

    public var giveUpAfter: TimeInterval { settings.giveUpAfter }

    public func messages(for notable: Notable) -> [OutboxMessage] {
        let area = notable.canary?.id.area ?? notable.freeze?.area
        let payload = Payload(
            notable, cluster: settings.cluster, links: links(for: notable), needsToken: needsToken)
        return settings.targets.compactMap { target in
            if let area, !target.scope.touches(area) { return nil }
            if let kinds = target.kinds, !kinds.contains(notable.kind) { return nil }
            let body: Data?
            switch target.kind {
            case .webhook: body = try? JSONEncoder.gatehouse.encode(payload)
            case .slack:
                body = try? JSONSerialization.data(
                    withJSONObject: payload.slackMessage(interactive: slackInteractive), options: [.sortedKeys])
            case .teams:
                body = try? JSONSerialization.data(withJSONObject: payload.teamsMessage, options: [.sortedKeys])
            case .googleChat:
                body = try? JSONSerialization.data(withJSONObject: payload.googleChatMessage, options: [.sortedKeys])
            }
            return body.map { OutboxMessage(target: target.name, url: target.url, body: $0) }
        }
    }

    /// Approve (and, during a rollout, roll back) links for a waiting canary.
    func links(for notable: Notable) -> Payload.Links? {
        guard [.waiting, .reminder].contains(notable.kind), let signer, let base = settings.linkBaseURL,
            let canary = notable.canary, let gate = notable.gate
        else { return nil }
        let checksum = notable.fact.checksum?.text ?? ""
        let expires = Int64(notable.at.addingTimeInterval(settings.linkTTL).timeIntervalSince1970)
        func link(_ action: ApprovalLink.Action, _ gate: GateKind, steps: Int? = nil) -> String {
            let link = ApprovalLink(
                cluster: canary.id.cluster, namespace: canary.id.namespace, name: canary.id.name, gate: gate,
                checksum: checksum, action: action,
                expires: expires, nonce: UUID().uuidString, steps: steps)
            return "\(base)/v1/links/\(signer.token(for: link))"
        }
        // A canary held at confirm-rollout has no rollout to roll back yet.
        let rollback = gate == .rollout ? nil : link(.rollback, .rollback)
        // Approving cannot let it through while something else holds it (a freeze, a deploy window,
        // a dependency, the rollout queue): no Approve link then, only the rollback.
        if let cause = notable.fact.cause, [.freeze, .window, .dependency, .queued].contains(cause) {
            return rollback.map { Payload.Links(approve: nil, approveStep: nil, rollback: $0) }
        }
        // A revision held because it skipped the rollout gate is approved through that gate.
        let toOpen = canary.gateToOpen(waitingAt: gate, checksum: notable.fact.checksum)
        if toOpen != gate {
            return Payload.Links(approve: link(.approve, toOpen), approveStep: nil, rollback: rollback)
        }
        // Traffic: the rest of the rollout, or one more check (Flagger asks once more at maximum weight).
        let oneStep = gate == .traffic ? link(.approve, .traffic, steps: 1) : nil
        return Payload.Links(approve: link(.approve, gate), approveStep: oneStep, rollback: rollback)
    }
}

/// The JSON payload of generic webhooks (documented in the README), also the source of the Slack message.
struct Payload: Encodable {
    struct Links: Encodable {
        /// Opens the gate for the rollout waiting (for traffic: the rest of it); none while
        /// something approving cannot lift holds the canary.
        var approve: String?
        /// For traffic: one more check.
        var approveStep: String?
        var rollback: String?
    }

    struct Commands: Encodable {
        var cli: String
        var curl: String
    }

    var kind: String
    var text: String
    var cluster: String
    var namespace: String?
    var name: String?
    var gate: GateKind?
    var checksum: String?
    var phase: CanaryPhase?
    var message: String?
    var actor: String
    var reason: String?
    var waitingSince: Date?
    var waitingSeconds: Int?
    var freezeID: Int64?
    var at: Date
    var links: Links?
    var commands: Commands?

    /// `cluster` names the unnamed cluster of a single-cluster setup (the notifications file's `cluster`).
    init(_ notable: Notable, cluster: String, links: Links?, needsToken: Bool = false) {
        kind = notable.kind.rawValue
        let named = notable.canary?.id.cluster ?? notable.freeze?.cluster
        self.cluster = named.flatMap { $0.isEmpty ? nil : $0 } ?? cluster
        namespace = notable.canary?.id.namespace ?? notable.freeze?.namespace
        name = notable.canary?.id.name
        gate = notable.gate
        checksum = notable.fact.checksum?.text
        phase = notable.canary?.lastPhase
        message = notable.canary?.lastMessage
        actor = notable.fact.actor
        reason = notable.fact.reason
        freezeID = notable.freeze?.id
        at = notable.at
        self.links = links
        if let waiting = notable.canary?.waitingOn, [.waiting, .reminder].contains(notable.kind) {
            waitingSince = waiting.since
            waitingSeconds = Int(notable.at.timeIntervalSince(waiting.since))
        }
        if let canary = notable.canary, let waitingAt = notable.gate, [.waiting, .reminder].contains(notable.kind) {
            let gate = canary.gateToOpen(waitingAt: waitingAt, checksum: notable.fact.checksum)
            commands = Commands(
                cli: "gatehouse open \(gate.rawValue) \(canary.id.commandLine)",
                curl:
                    "curl -X POST "
                    + (needsToken ? "-H \"Authorization: Bearer $GATEHOUSE_TOKEN\" " : "")
                    + "$GATEHOUSE_URL/v1/canaries/\(canary.id.namespace)/\(canary.id.name)/gates/\(gate.rawValue)/open"
                    + (canary.id.cluster.isEmpty ? "" : "?cluster=\(canary.id.cluster)")
            )
        }
        text = Self.summary(notable, checksum: checksum)
    }

    static func summary(_ notable: Notable, checksum: String?) -> String {
        let canary = notable.canary.map { "\($0.id)" } ?? ""
        let gate = notable.gate?.rawValue ?? ""
        let rollout = checksum.map { " (rollout \($0))" } ?? ""
        let because = notable.fact.reason.map { ": \($0)" } ?? ""
        switch notable.kind {
        case .waiting:
            // A closed gate needs no explaining; a freeze, a held revision or a policy rule does.
            let held = [.closed, .expired, nil].contains(notable.fact.cause) ? "" : because
            return "\(canary) is waiting for the \(gate) gate\(rollout)\(held)"
        case .reminder:
            let waited =
                notable.canary?.waitingOn.map { DurationText.format(notable.at.timeIntervalSince($0.since)) } ?? ""
            return "\(canary) has been waiting \(waited) for the \(gate) gate\(rollout)"
        case .opened: return "\(notable.fact.actor) opened the \(gate) gate of \(canary)\(because)"
        case .closed: return "\(notable.fact.actor) closed the \(gate) gate of \(canary)\(because)"
        case .expired: return "the \(gate) gate of \(canary) expired"
        case .rollbackRequested: return "\(notable.fact.actor) asked Flagger to roll back \(canary)\(because)"
        case .rollbackFired: return "Flagger is rolling back \(canary)\(rollout)"
        case .freezeSet: return notable.freeze.map { "freeze \($0.id) set: \($0.refusal)" } ?? "a freeze was set"
        case .freezeLifted: return "\(notable.fact.actor) lifted freeze \(notable.freeze?.id ?? 0)"
        case .succeeded: return "\(canary) rollout\(rollout) succeeded"
        case .failed: return "\(canary) rollout\(rollout) failed\(notable.canary?.lastMessage.map { ": \($0)" } ?? "")"
        }
    }

    /// The facts every chat message lists, by name: one list for Slack, Teams and Google Chat.
    var facts: [(name: String, value: String)] {
        var facts = [("Cluster", cluster)]
        if let namespace, let name { facts.append(("Canary", "\(namespace)/\(name)")) }
        if let gate { facts.append(("Gate", gate.rawValue)) }
        if let checksum { facts.append(("Rollout", checksum)) }
        if let waitingSeconds { facts.append(("Waiting", DurationText.format(Double(max(waitingSeconds, 1))))) }
        return facts
    }

    /// The links as buttons, in order: what each says, where it goes, and whether it is the main or
    /// the dangerous one.
    var buttons: [(title: String, url: String, style: String?)] {
        guard let links else { return [] }
        var buttons: [(String, String, String?)] = []
        if let approve = links.approve {
            buttons.append((links.approveStep == nil ? "Approve" : "Approve the rest", approve, "primary"))
        }
        if let step = links.approveStep { buttons.append(("Approve 1 step", step, nil)) }
        if let rollback = links.rollback { buttons.append(("Roll back", rollback, "danger")) }
        return buttons
    }

    /// The same facts as a Slack Block Kit message. `interactive`: its buttons come back to
    /// Gatehouse (`/v1/slack/interactions`) carrying their signed link, rather than open it.
    func slackMessage(interactive: Bool = false) -> [String: Any] {
        var blocks: [[String: Any]] = [
            ["type": "section", "text": ["type": "mrkdwn", "text": "*\(text)*"]],
            [
                "type": "section",
                "fields": facts.map {
                    [
                        "type": "mrkdwn",
                        "text": $0.name == "Rollout" ? "*\($0.name)*\n`\($0.value)`" : "*\($0.name)*\n\($0.value)",
                    ]
                },
            ],
        ]
        if let message {
            blocks.append(["type": "context", "elements": [["type": "mrkdwn", "text": "Flagger: \(message)"]]])
        }
        if !buttons.isEmpty {
            blocks.append([
                "type": "actions",
                "elements": buttons.enumerated().map { index, button -> [String: Any] in
                    var element: [String: Any] = [
                        "type": "button", "text": ["type": "plain_text", "text": button.title],
                    ]
                    if interactive, let token = button.url.split(separator: "/").last {
                        element["action_id"] = "gatehouse-\(index)"
                        element["value"] = String(token)
                    } else {
                        element["url"] = button.url
                    }
                    if let style = button.style { element["style"] = style }
                    return element
                },
            ])
        }
        if let commands {
            blocks.append([
                "type": "context",
                "elements": [["type": "mrkdwn", "text": "`\(commands.cli)`\n`\(commands.curl)`"]],
            ])
        }
        return ["text": text, "blocks": blocks]
    }

    /// The same facts as a Microsoft Teams message: an Adaptive Card, as a Workflows webhook takes it.
    var teamsMessage: [String: Any] {
        var body: [[String: Any]] = [
            ["type": "TextBlock", "text": text, "weight": "Bolder", "size": "Medium", "wrap": true],
            ["type": "FactSet", "facts": facts.map { ["title": $0.name, "value": $0.value] }],
        ]
        if let message {
            body.append(["type": "TextBlock", "text": "Flagger: \(message)", "isSubtle": true, "wrap": true])
        }
        if let commands {
            body.append([
                "type": "TextBlock", "text": "\(commands.cli)\n\n\(commands.curl)", "fontType": "Monospace",
                "wrap": true,
                "isSubtle": true,
            ])
        }
        var card: [String: Any] = [
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4",
            "body": body,
        ]
        if !buttons.isEmpty {
            card["actions"] = buttons.map { button -> [String: Any] in
                var action: [String: Any] = ["type": "Action.OpenUrl", "title": button.title, "url": button.url]
                if let style = button.style { action["style"] = style == "primary" ? "positive" : "destructive" }
                return action
            }
        }
        return [
            "type": "message",
            "attachments": [["contentType": "application/vnd.microsoft.card.adaptive", "content": card]],
        ]
    }

    /// The same facts as a Google Chat message: text, and a card (cardsV2) with the buttons.
    var googleChatMessage: [String: Any] {
        // Chat reads a little HTML in these texts: what comes from elsewhere is escaped.
        func escaped(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;")
        }
        var widgets: [[String: Any]] = facts.map {
            ["decoratedText": ["topLabel": $0.name, "text": escaped($0.value)]]
        }
        if let message { widgets.append(["textParagraph": ["text": "Flagger: \(escaped(message))"]]) }
        if let commands {
            widgets.append(["textParagraph": ["text": "\(escaped(commands.cli))<br>\(escaped(commands.curl))"]])
        }
        if !buttons.isEmpty {
            widgets.append([
                "buttonList": [
                    "buttons": buttons.map { ["text": $0.title, "onClick": ["openLink": ["url": $0.url]]] }
                ]
            ])
        }
        return [
            "text": text,
            "cardsV2": [
                [
                    "cardId": "gatehouse-\(kind)",
                    "card": [
                        "header": ["title": text, "subtitle": "Gatehouse · \(cluster)"],
                        "sections": [["widgets": widgets]],
                    ],
                ]
            ],
        ]
    }
}
