import Crypto
import Foundation
import GatehouseCore
import GatehouseStore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The Slack slash command (`/gatehouse …`), verified with the Slack app's signing secret.
struct SlackController {
    /// How far a request's timestamp may be from now, and how long signatures are remembered.
    static let window: TimeInterval = 300

    let store: GateStore
    let operations: GateOperations
    let access: AccessControl?
    let accessGuard: AccessGuard
    let signingSecret: String?
    /// Checks the approval links that messages' buttons carry; nil when links are off.
    var links: LinkSigner?

    var endpoints: RouteCollection<GatehouseRequestContext> {
        let routes = RouteCollection(context: GatehouseRequestContext.self)
        routes.post("command") { request, context -> Response in
            let form = try await verifiedForm(request, context: context)
            let reply = await run(SlackCommand(form: form), context: context)
            return try reply.response(from: request, context: context)
        }
        routes.rejectOtherMethods(than: [.post], at: "command")
        // Buttons of Gatehouse's messages (Slack's interactivity request URL): signed as commands are.
        routes.post("interactions") { request, context -> Response in
            guard let text = try await verifiedForm(request, context: context)["payload"],
                let interaction = try? JSONDecoder().decode(SlackInteraction.self, from: Data(text.utf8))
            else {
                throw GatehouseError.badRequest("the interaction has no payload Slack's block actions send")
            }
            await press(interaction)
            // Slack wants an empty 200 at once; the message is updated through its response_url.
            return Response(status: .ok)
        }
        routes.rejectOtherMethods(than: [.post], at: "interactions")
        return routes
    }

    /// A button of a waiting message, pressed: the Slack user (as the person the access file says
    /// they are, with their grants) does what its signed link says; the message is then replaced
    /// by what was done, or the refusal is shown to them alone.
    func press(_ interaction: SlackInteraction) async {
        guard let action = interaction.actions.first, let user = interaction.user?.id else { return }
        let command = SlackCommand(
            user: user, channel: interaction.channel?.id ?? "", verb: "", arguments: [])
        var reply: [String: Any]
        switch links?.verify(action.value) {
        case .success(let link)?:
            do {
                let canary = try await operations.act(on: link, by: caller(of: command))
                let what =
                    link.action == .rollback
                    ? "asked Flagger to roll back \(link.namespace)/\(link.name)"
                    : (operations.approvalsStillNeeded(link.gate, of: canary).map {
                        "approved the \(link.gate.rawValue) gate of \(link.namespace)/\(link.name), which a rule holds for more approvals (\($0))"
                    } ?? "approved the \(link.gate.rawValue) gate of \(link.namespace)/\(link.name)")
                reply = ["replace_original": true, "text": "<@\(user)> \(what) (rollout \(link.checksum))"]
            } catch StoreError.gone {
                reply = [
                    "replace_original": false, "response_type": "ephemeral",
                    "text": "This button was already used; nothing was done.",
                ]
            } catch {
                reply = [
                    "replace_original": false, "response_type": "ephemeral",
                    "text": GatehouseError.from(error, request: nil).message,
                ]
            }
        case .failure(.expired)?:
            reply = [
                "replace_original": false, "response_type": "ephemeral",
                "text": "This button has expired; nothing was done.",
            ]
        case .failure(.invalid)?, nil:
            reply = [
                "replace_original": false, "response_type": "ephemeral",
                "text": "This button is not Gatehouse's; nothing was done.",
            ]
        }
        guard let url = interaction.responseURL.flatMap(URL.init(string:)),
            url.scheme == "https" || url.scheme == "http",
            let body = try? JSONSerialization.data(withJSONObject: reply)
        else { return }
        var request = URLRequest(url: url, timeoutInterval: 5)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = body
        _ = try? await URLSession.shared.data(for: request)
    }

    /// The fields of a form Slack signed: an unsigned request is refused as such before anything
    /// else is said; a signed one only once Slack is enabled and its signature, time and
    /// uniqueness hold.
    func verifiedForm(_ request: Request, context: GatehouseRequestContext) async throws -> [String: String] {
        guard request.headers[Self.signatureHeader] != nil, request.headers[Self.timestampHeader] != nil else {
            throw GatehouseError.unauthorized("the request is not signed by Slack")
        }
        guard let signingSecret else {
            throw GatehouseError.notFound("Slack commands are not enabled: set GATEHOUSE_SLACK_SIGNING_SECRET")
        }
        let body = try await request.body.collect(upTo: context.maxUploadSize)
        try await verify(request, body: body, secret: signingSecret)
        return Self.form(String(buffer: body))
    }

    static let signatureHeader = HTTPField.Name("X-Slack-Signature")!
    /// How many canaries `status` lists at most.
    static let statusLimit = 30
    static let timestampHeader = HTTPField.Name("X-Slack-Request-Timestamp")!

    /// Checks Slack's `v0` signature of the raw body and refuses stale or replayed requests; the
    /// signatures seen are stored, so a replay is refused after a restart too.
    func verify(_ request: Request, body: ByteBuffer, secret: String, now: Date = Date()) async throws {
        guard let timestampText = request.headers[Self.timestampHeader],
            let timestamp = TimeInterval(timestampText),
            let signature = request.headers[Self.signatureHeader]
        else {
            throw GatehouseError.unauthorized("the request is not signed by Slack")
        }
        guard abs(now.timeIntervalSince1970 - timestamp) <= Self.window else {
            throw GatehouseError.unauthorized(
                "the request's timestamp is more than 5 minutes away; refused as a replay")
        }
        var signed = Data("v0:\(timestampText):".utf8)
        signed.append(contentsOf: body.readableBytesView)
        let expected =
            "v0="
            + HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Data(secret.utf8))).hexString
        guard constantTimeEqual(Array(signature.utf8), Array(expected.utf8)) else {
            throw GatehouseError.unauthorized("the Slack signature does not match")
        }
        let expires = Date(timeIntervalSince1970: timestamp + Self.window)
        guard try await store.useOnce("slack:\(signature)", expiresAt: expires, at: now) else {
            throw GatehouseError.unauthorized("this Slack request was already received; refused as a replay")
        }
    }

    /// Carries out one command and words the reply; never throws, since Slack shows any non-200 as a failure.
    func run(_ command: SlackCommand, context: GatehouseRequestContext) async -> SlackReply {
        let caller = caller(of: command)
        do {
            switch command.verb {
            case "open", "close":
                guard command.arguments.count >= 2 else {
                    return .usage("`\(command.verb) GATE NAMESPACE/NAME [reason…]`")
                }
                let gate = try GateKind(userInput: command.arguments[0])
                let canary = try Self.canary(command.arguments[1])
                let steps = try Self.steps(command, gate: gate)
                let reason = try Reason.validate(command.rest(from: steps == nil ? 2 : 3))
                if command.verb == "open" {
                    if gate == .rollback {
                        return try await rollback(
                            canary, reason: reason, force: false, command: command, caller: caller)
                    }
                    var request = OpenRequest(reason: reason)
                    if let steps { request.cover(steps) }
                    let opened = try await operations.open(gate, of: canary, request, by: caller)
                    // An approval a rule still holds for more is not reported as the gate being open.
                    let done =
                        operations.approvalsStillNeeded(gate, of: opened).map {
                            "approved the \(gate.rawValue) gate of \(canary), which a rule holds for more approvals (\($0))"
                        } ?? "opened the \(gate.rawValue) gate of \(canary)"
                    return .inChannel(
                        "<@\(command.user)> \(done)\(Self.because(reason)): \(request.coverage(of: gate, in: opened))"
                            + Self.warning(await operations.neverCalled(canary)))
                }
                _ = try await operations.close(gate, of: canary, reason: reason, by: caller)
                return .inChannel(
                    "<@\(command.user)> closed the \(gate.rawValue) gate of \(canary)\(Self.because(reason))"
                        + Self.warning(await operations.neverCalled(canary)))
            case "rollback":
                guard let target = command.arguments.first else {
                    return .usage("`rollback NAMESPACE/NAME [--force] [reason…]`")
                }
                let canary = try Self.canary(target)
                // --force, as the CLI has it: a request outside a rollout Gatehouse knows of.
                let force = command.arguments.count > 1 && command.arguments[1] == "--force"
                return try await rollback(
                    canary, reason: try Reason.validate(command.rest(from: force ? 2 : 1)), force: force,
                    command: command, caller: caller)
            case "status":
                if let target = command.arguments.first {
                    let canary = try Self.canary(target)
                    try authorize(command, .read, canary.area)
                    guard let state = try await store.canary(canary) else {
                        return .ephemeral("\(canary) is not known to Gatehouse.")
                    }
                    return .ephemeral(Self.describe(state, surroundings: try await store.surroundings()))
                }
                // What is waiting or rolling out, not every canary: that is what a person asks after.
                let (visible, more) = try await store.canaries(
                    after: nil, among: .active, limit: Self.statusLimit
                ) { allows(command, .read, $0.id.area) }
                guard !visible.isEmpty else { return .ephemeral("No canary you may see is waiting or rolling out.") }
                let surroundings = try await store.surroundings()
                let rest = more ? "\n… and more: ask `status NAMESPACE/NAME` of one, or see the dashboard." : ""
                return .ephemeral(
                    visible.map { Self.describe($0, surroundings: surroundings) }.joined(separator: "\n") + rest)
            case "freeze":
                guard command.arguments.count >= 2 else {
                    return .usage("`freeze [CLUSTER/]NAMESPACE|[CLUSTER/]all reason…`")
                }
                let area = try Self.area(command.arguments[0])
                let reason = try Reason.validate(command.rest(from: 1), required: true) ?? ""
                let freeze = try await operations.freeze(area, reason: reason, endsAt: nil, by: caller)
                return .inChannel(
                    "<@\(command.user)> froze \(area): \(reason) (freeze \(freeze.id); lift it with `/gatehouse unfreeze \(freeze.id)`)"
                )
            case "unfreeze":
                guard let text = command.arguments.first, let id = Int64(text) else { return .usage("`unfreeze ID`") }
                _ = try await operations.unfreeze(id: id, by: caller)
                return .inChannel("<@\(command.user)> lifted freeze \(id)")
            case "help", "":
                return .ephemeral(SlackCommand.help)
            default:
                return .usage("unknown command `\(command.verb.prefix(32))`")
            }
        } catch {
            return .ephemeral(GatehouseError.from(error, request: nil).message)
        }
    }

    /// `steps=N` or `steps=rest` after the canary, for the traffic gate.
    private static func steps(_ command: SlackCommand, gate: GateKind) throws -> TrafficSteps? {
        guard command.verb == "open", command.arguments.count > 2, command.arguments[2].hasPrefix("steps=") else {
            return nil
        }
        guard gate == .traffic else { throw InvalidInput("steps applies only to the traffic gate") }
        guard let steps = TrafficSteps(String(command.arguments[2].dropFirst("steps=".count))) else {
            throw InvalidInput("steps= takes a whole number from 1 to 10000, or rest for the rest of this rollout")
        }
        return steps
    }

    private func rollback(_ canary: CanaryID, reason: String?, force: Bool, command: SlackCommand, caller: Caller)
        async throws -> SlackReply
    {
        _ = try await operations.open(
            .rollback, of: canary, OpenRequest(reason: reason), rollback: .request(force: force, revision: nil),
            by: caller)
        return .inChannel("<@\(command.user)> asked Flagger to roll back \(canary)\(Self.because(reason))")
    }

    /// Who writes: the person the access file says the Slack user is (else `slack:USER_ID`), with
    /// the user's grant and the channel's (anyone writing in it has it); unrestricted without an access file.
    private func caller(of command: SlackCommand) -> Caller {
        let policy = access?.policy
        return Caller(
            Principal(.person, policy?.slackPeople[command.user] ?? "slack:\(command.user)"),
            grants: policy.map { $0.slackGrants(user: command.user, channel: command.channel) })
    }

    /// Whether the Slack user (or the channel) may act in all of the area: its grants, and the
    /// namespace filter (a namespace not served here is not shown either).
    private func allows(_ command: SlackCommand, _ action: AccessAction, _ area: Area) -> Bool {
        (try? accessGuard.authorize(action, in: area, caller: caller(of: command))) != nil
    }

    private func authorize(_ command: SlackCommand, _ action: AccessAction, _ area: Area) throws {
        guard allows(command, action, area) else {
            throw GatehouseError.forbidden("you may not \(action.rawValue) in \(area) from here")
        }
    }

    /// A change's warning on a line of its own, or nothing.
    private static func warning(_ notice: String?) -> String {
        notice.map { "\n:warning: \($0)" } ?? ""
    }

    private static func because(_ reason: String?) -> String {
        reason.map { ": \($0)" } ?? ""
    }

    static func canary(_ text: String) throws -> CanaryID {
        try CanaryID(parsing: text)
    }

    /// What `freeze` names: `all`, `NAMESPACE`, `CLUSTER/all` or `CLUSTER/NAMESPACE`.
    static func area(_ text: String) throws(InvalidInput) -> Area {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2 else {
            throw InvalidInput("freeze all, NAMESPACE, CLUSTER/all or CLUSTER/NAMESPACE; '\(text.prefix(70))' is none")
        }
        return try Area(
            validatingCluster: parts.count == 2 ? parts[0] : nil, namespace: parts.last == "all" ? nil : parts.last)
    }

    /// One line of `status`: the phase, what the canary waits on and why, and its open gates.
    static func describe(_ canary: Canary, surroundings: Surroundings, at now: Date = Date()) -> String {
        let open = GateKind.allCases.filter { canary.gate($0).isEffectivelyOpen(at: now) }.map(\.rawValue)
        let waiting =
            canary.waiting(in: surroundings, at: now).map {
                ", waiting on the \($0.gate.rawValue) gate (\($0.message))"
            }
            ?? ""
        return
            "*\(canary.id)*: \(canary.lastPhase?.rawValue ?? "no phase yet")\(waiting); open: \(open.isEmpty ? "none" : open.joined(separator: ", "))"
    }

    /// Decodes `application/x-www-form-urlencoded` as Slack sends it.
    static func form(_ body: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text)
            }
            fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }
}

/// What Slack sends when a button of a message is pressed (a `block_actions` payload), as far as
/// Gatehouse reads it.
struct SlackInteraction: Decodable {
    struct Named: Decodable {
        var id: String
    }

    struct Action: Decodable {
        var actionID: String?
        var value: String

        enum CodingKeys: String, CodingKey {
            case actionID = "action_id"
            case value
        }
    }

    var type: String
    var user: Named?
    var channel: Named?
    var actions: [Action]
    var responseURL: String?

    enum CodingKeys: String, CodingKey {
        case type, user, channel, actions
        case responseURL = "response_url"
    }
}

/// One slash command: who, where, and the words after `/gatehouse`.
struct SlackCommand {
    static let help = """
        *Gatehouse* — manual gates for Flagger canaries
        `/gatehouse open GATE NAMESPACE/NAME [reason…]` — GATE is rollout, traffic, promotion or rollback
        `/gatehouse open traffic NAMESPACE/NAME steps=N|rest [reason…]` — the next N traffic checks, or the rest of this rollout
        `/gatehouse close GATE NAMESPACE/NAME [reason…]`
        `/gatehouse rollback NAMESPACE/NAME [--force] [reason…]` — --force outside a rollout Gatehouse knows of
        `/gatehouse status [NAMESPACE/NAME]` — one canary, or those waiting or rolling out
        `/gatehouse freeze NAMESPACE|all reason…` — `CLUSTER/NAMESPACE` or `CLUSTER/all` for one cluster
        `/gatehouse unfreeze ID`
        With several clusters, name a canary as CLUSTER/NAMESPACE/NAME.
        """

    var user: String
    var channel: String
    var verb: String
    var arguments: [String]

    init(user: String, channel: String, verb: String, arguments: [String]) {
        self.user = user
        self.channel = channel
        self.verb = verb
        self.arguments = arguments
    }

    init(form: [String: String]) {
        user = form["user_id"] ?? ""
        channel = form["channel_id"] ?? ""
        let words = (form["text"] ?? "").split(whereSeparator: \.isWhitespace).map(String.init)
        verb = words.first?.lowercased() ?? ""
        arguments = Array(words.dropFirst())
    }

    /// The words from `index` on, joined: the free-text reason.
    func rest(from index: Int) -> String? {
        arguments.count > index ? arguments[index...].joined(separator: " ") : nil
    }
}

/// A reply in Slack's format: `in_channel` for changes, so the channel sees who did what; `ephemeral` otherwise.
struct SlackReply: ResponseGenerator, Encodable {
    var responseType: String
    var text: String

    static func inChannel(_ text: String) -> SlackReply { SlackReply(responseType: "in_channel", text: text) }
    static func ephemeral(_ text: String) -> SlackReply { SlackReply(responseType: "ephemeral", text: text) }
    static func usage(_ problem: String) -> SlackReply { .ephemeral("Usage: \(problem)\n\n\(SlackCommand.help)") }

    enum CodingKeys: String, CodingKey {
        case responseType = "response_type"
        case text
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: try AnswerJSON.bytes(of: self)))
    }
}
