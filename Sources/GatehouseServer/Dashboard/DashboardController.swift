import Foundation
import GatehouseCore
import GatehouseStore
import HTTPTypes
import Hummingbird
import NIOCore

/// The web dashboard: server-rendered pages of canaries, freezes and the audit trail, and forms
/// that act through the same operations, authorization and audit as the API. Every page works
/// without JavaScript; a small script refreshes the parts marked live.
struct DashboardController {
    let store: GateStore
    let operations: GateOperations
    let access: AccessGuard
    let accessControl: AccessControl?
    let sessions: DashboardSessions
    let pages: DashboardPages
    /// Single sign-on, when configured.
    var singleSignOn: SingleSignOn?

    /// The header the page's script sends to get only the live part of a page.
    static let liveHeader = HTTPField.Name("X-Gatehouse-Live")!
    /// How many canaries each group of the overview shows at once.
    static let pageSize = 50
    /// A one-line notice shown by the next page (what a form just did).
    static let noticeCookie = "gatehouse_notice"

    /// The pages and forms; they go behind `DashboardSignIn`.
    var pageEndpoints: RouteCollection<GatehouseRequestContext> {
        let routes = RouteCollection(context: GatehouseRequestContext.self)
        routes.get("/", use: overview)
        routes.get("canaries/:namespace/:name", use: canary)
        routes.post("canaries/:namespace/:name/open", use: open)
        routes.post("canaries/:namespace/:name/close", use: close)
        routes.get("canaries/:namespace/:name/rollback", use: confirmRollback)
        routes.post("canaries/:namespace/:name/rollback", use: rollback)
        routes.get("freezes", use: freezes)
        routes.post("freezes", use: freeze)
        routes.post("freezes/:id/lift", use: lift)
        routes.get("audit", use: audit)
        routes.get("sign-in", use: signInPage)
        routes.post("sign-in", use: signIn)
        routes.get("sign-in/sso", use: startSingleSignOn)
        routes.get("sign-in/sso/callback", use: finishSingleSignOn)
        routes.post("sign-out", use: signOut)
        return routes
    }

    /// The style sheet and script: no session, cacheable.
    var assetEndpoints: RouteCollection<GatehouseRequestContext> {
        let routes = RouteCollection(context: GatehouseRequestContext.self)
        routes.get("assets/:file") { _, context -> Response in
            let file = try context.parameters.require("file")
            guard let body = pages.assets[file] else { throw GatehouseError.notFound("there is no asset \(file)") }
            let type = file.hasSuffix(".css") ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8"
            return Response(
                status: .ok,
                headers: [
                    .contentType: type, .cacheControl: "public, max-age=3600",
                    HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                ],
                body: .init(byteBuffer: body))
        }
        return routes
    }

    // MARK: Pages

    @Sendable func overview(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        try viewer(request, context)
        let query = request.uri.queryParameters
        let namespace = query["namespace"].map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
        let stateText = query["state"].map(String.init) ?? ""
        let state = CanaryView.State(rawValue: stateText)
        guard stateText.isEmpty || state != nil else {
            throw GatehouseError.badRequest(
                "state must be one of: \(CanaryView.State.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var after: CanaryID?
        if let text = query["after"].map(String.init), !text.isEmpty {
            do {
                after = try CanaryID(parsing: text)
            } catch {
                throw GatehouseError.badRequest("after must be the last canary of the previous page: \(error.message)")
            }
        }
        let now = Date()
        let surroundings = try await store.surroundings(at: now)
        func shown(_ canary: Canary) -> Bool {
            access.canRead(canary.id.area, context: context)
                && (namespace.isEmpty || NameScope([namespace]).contains(canary.id.namespace))
                && state.map { CanaryView.State(of: canary) == $0 } ?? true
        }
        // Every group shows at most a page, so the overview costs what it shows however many
        // canaries there are: with no state chosen, the longest-waiting and the first rolling out
        // (from the active few, kept apart) and a page of the idle many; with a state chosen, that
        // state's canaries page by page, by name.
        var groups: [CanaryView.State: (canaries: [Canary], count: Int?)] = [:]
        var more = false
        if let state {
            let page = try await store.canaries(
                after: after, among: state == .idle ? .idle : .active, limit: Self.pageSize, where: shown)
            groups[state] = (page.canaries, nil)
            more = page.more
        } else {
            let active = try await store.canaries(after: nil, among: .active, limit: .max, where: shown).canaries
            let waiting = active.filter { $0.waitingOn != nil }
                .sorted { ($0.waitingOn!.since, $0.id) < ($1.waitingOn!.since, $1.id) }
            let rolling = active.filter { $0.waitingOn == nil }
            groups[.waiting] = (Array(waiting.prefix(Self.pageSize)), waiting.count)
            groups[.rolling] = (Array(rolling.prefix(Self.pageSize)), rolling.count)
            let idle = try await store.canaries(after: after, among: .idle, limit: Self.pageSize, where: shown)
            groups[.idle] = (idle.canaries, nil)
            more = idle.more
        }
        let counts = try await store.canaryCounts()
        let filtered = !namespace.isEmpty || !access.canRead(.everywhere, context: context)
        var here = "/"
        let filters = [("namespace", namespace), ("state", stateText)].filter { !$0.1.isEmpty }
        if !filters.isEmpty {
            here += "?" + filters.map { "\($0.0)=\(CanaryModel.escape($0.1))" }.joined(separator: "&")
        }
        func page(after last: String) -> String {
            here + (filters.isEmpty ? "?" : "&") + "after=\(CanaryModel.escape(last))"
        }
        let titles: [(CanaryView.State, String, String)] = [
            (.waiting, "Waiting", "Waiting on"), (.rolling, "Rolling out", "Stage"), (.idle, "Idle", "Last rollout"),
        ]
        // The group that pages: the one chosen, or the idle one.
        let paged = state ?? .idle
        let live = OverviewLive(
            groups: titles.compactMap { state, title, column in
                guard let (canaries, count) = groups[state], !canaries.isEmpty || (state == paged && after != nil)
                else { return nil }
                let rows = canaries.map {
                    OverviewRow(
                        $0, view: CanaryView($0, surroundings: surroundings, at: now), now: now,
                        caller: context.caller, policy: surroundings.policy)
                }
                let total = count ?? (state == .idle && !filtered ? counts.all - counts.active : nil)
                return OverviewGroup(
                    title: title, column: column, count: total, showing: rows.count,
                    rows: rows, first: state == paged && after != nil ? here : nil,
                    next: state == paged && more ? rows.last.map { page(after: $0.id) } : nil,
                    all: state != paged && count.map { $0 > rows.count } ?? false ? "/?state=\(state.rawValue)" : nil)
            },
            emptyText: namespace.isEmpty && state == nil
                ? "No canaries yet: they appear when Flagger first calls a gate, or when a gate is opened."
                : "No canaries match these filters.",
            updated: Timestamp.string(from: now), csrf: context.visit?.csrfToken ?? "")
        if request.headers[Self.liveHeader] != nil { return try pages.render("overview-live", ["live": live]) }
        let model = OverviewPage(
            page: PageFrame(title: "Canaries", context: context, section: "Canaries", notice: notice(request)),
            live: live,
            filter: OverviewFilter(
                namespace: namespace, namespaces: try await store.namespaces(),
                states: [Choice(value: "", label: "any", selected: state == nil)]
                    + CanaryView.State.allCases.map {
                        Choice(value: $0.rawValue, label: $0.rawValue, selected: $0 == state)
                    }, here: after.map { page(after: $0.description) } ?? here))
        return try withNoticeCleared(request, pages.render("overview", model))
    }

    @Sendable func canary(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        let caller = try viewer(request, context)
        let id = try CanaryID(of: request, context)
        _ = try access.authorize(.read, in: id.area, context: context)
        let now = Date()
        guard let canary = try await store.canary(id) else {
            throw GatehouseError.notFound(
                "canary \(id) is not known: Flagger has not called about it and no gate of it was opened")
        }
        let view = CanaryView(canary, surroundings: try await store.surroundings(at: now), at: now)
        let events = try await store.events(of: id, limit: 200)
        let model = CanaryModel(canary, view: view, events: events, now: now)
        if request.headers[Self.liveHeader] != nil {
            let part = request.uri.queryParameters["part"] == "timeline" ? "canary-timeline" : "canary-status"
            return try pages.render(part, ["canary": model])
        }
        let actions = CanaryActions(canary, view: view, caller: caller, at: now)
        let page = CanaryPage(
            page: PageFrame(title: id.description, context: context, section: "Canaries", notice: notice(request)),
            canary: model, actions: actions,
            readOnlyNote:
                "\(caller.actor) may see this canary but not act on it: the access file grants no open, close or rollback here."
        )
        return try withNoticeCleared(request, pages.render("canary", page))
    }

    @Sendable func confirmRollback(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        try viewer(request, context)
        let id = try CanaryID(of: request, context)
        _ = try access.authorize(.rollback, in: id.area, context: context)
        guard let canary = try await store.canary(id) else {
            throw GatehouseError.notFound("canary \(id) is not known")
        }
        if case .failure(let refusal) = canary.rollbackBinding(force: false) {
            throw GatehouseError.conflict(refusal.message)
        }
        let revision = canary.rollout.currentChecksum?.text ?? ""
        let model = RollbackPage(
            page: PageFrame(title: "Roll back \(id)", context: context, section: "Canaries"),
            canary: CanaryModel(id), checksum: revision,
            consequence:
                "At its next rollback check (within one analysis interval) Flagger rolls back rollout \(revision.isEmpty ? "in progress" : revision): it routes all traffic back to the primary, scales the canary down, marks the canary Failed and calls its post-rollout hook. The request is for this rollout only and expires in \(DurationText.format(operations.settings.rollbackTTL)) if Flagger does not check."
        )
        return try pages.render("rollback", model)
    }

    @Sendable func freezes(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        let caller = try viewer(request, context)
        let all = request.uri.queryParameters["all"] == "true"
        let now = Date()
        let freezes = try await store.freezes(includingEnded: all, at: now).filter {
            access.canRead($0.area, context: context)
        }
        let model = FreezesPage(
            page: PageFrame(title: "Freezes", context: context, section: "Freezes", notice: notice(request)),
            freezes: freezes.map { FreezeRow($0, canLift: caller.allows(.freeze, in: $0.area), now: now) },
            emptyText: all ? "No freeze was ever set." : "Nothing is frozen.",
            toggleHref: all ? "/freezes" : "/freezes?all=true",
            toggleLabel: all ? "Show only freezes in force" : "Show ended freezes too",
            canFreeze: caller.reaches(.freeze, in: .everywhere))
        return try withNoticeCleared(request, pages.render("freezes", model))
    }

    @Sendable func audit(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        try viewer(request, context)
        let query = request.uri.queryParameters
        func text(_ name: String) -> String {
            query[Substring(name)].map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
        }
        // A search form sends every field; an empty one is no filter.
        let filter = try AuditFilter { text($0).isEmpty ? nil : text($0) }
        let page = try PageQuery(request)
        var canary: CanaryID?
        if !text("canary").isEmpty {
            do {
                canary = try CanaryID(parsing: text("canary"))
            } catch {
                throw GatehouseError.badRequest(
                    "canary must be NAMESPACE/NAME or CLUSTER/NAMESPACE/NAME: \(error.message)")
            }
        }
        let area = try Area(validatingCluster: nil, namespace: text("namespace").isEmpty ? nil : text("namespace"))
        if let canary {
            _ = try access.authorize(.read, in: canary.area, context: context)
        } else if area != .everywhere {
            _ = try access.authorize(.read, in: area, context: context)
        }
        let events = try await store.events(
            of: canary, in: area, matching: filter, limit: page.limit, before: page.before)
        // Entries about what the viewer may not see are left out.
        let visible = events.filter {
            access.canRead(Area(cluster: $0.cluster, namespace: $0.namespace), context: context)
        }
        var older: String?
        if let next = page.result(events).next {
            var items = URLComponents(string: request.uri.description)?.queryItems ?? []
            items.removeAll { $0.name == "before" }
            items.append(URLQueryItem(name: "before", value: String(next)))
            var components = URLComponents()
            components.path = "/audit"
            components.queryItems = items
            older = components.string
        }
        let model = AuditPageModel(
            page: PageFrame(title: "Audit trail", context: context, section: "Audit"),
            filter: AuditFilterModel(
                canary: text("canary"), namespace: text("namespace"), actor: text("actor"),
                actions: [Choice(value: "", label: "any", selected: filter.action == nil)]
                    + AuditAction.allCases.map {
                        Choice(value: $0.rawValue, label: $0.rawValue, selected: $0 == filter.action)
                    }, since: text("since"), until: text("until")),
            entries: visible.map { EntryRow($0, linkingCanary: true) }, olderHref: older)
        return try pages.render("audit", model)
    }

    @Sendable func signInPage(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        guard accessControl != nil else { return Self.redirect(to: "/") }
        let next = Self.safeReturn(request.uri.queryParameters["next"].map(String.init))
        return try pages.render("sign-in", signInModel(next: next, problem: nil, context: context))
    }

    private func signInModel(next: String, problem: String?, context: GatehouseRequestContext) -> SignInPage {
        SignInPage(
            page: PageFrame(title: "Sign in", context: context), next: next, problem: problem,
            singleSignOn: singleSignOn.map { _ in "/sign-in/sso?next=" + CanaryModel.escape(next) })
    }

    /// Leaves for the identity provider.
    @Sendable func startSingleSignOn(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        guard let singleSignOn, let visit = context.visit else {
            throw GatehouseError.notFound("single sign-on is not configured (--oidc-issuer)")
        }
        return try await singleSignOn.start(
            next: Self.safeReturn(request.uri.queryParameters["next"].map(String.init)), request: request,
            isSecure: visit.isSecure, at: Date())
    }

    /// Comes back from the identity provider: a new session naming the person it vouched for.
    @Sendable func finishSingleSignOn(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        guard let singleSignOn, let visit = context.visit else {
            throw GatehouseError.notFound("single sign-on is not configured (--oidc-issuer)")
        }
        let now = Date()
        var response: Response
        do {
            let (person, next) = try await singleSignOn.finish(request, at: now)
            let session = sessions.start(person: person.name, groups: person.groups, at: now)
            response = Self.redirect(to: Self.safeReturn(next))
            response.setCookie(sessions.cookie(for: session, secure: visit.isSecure, at: now))
        } catch let error as GatehouseError {
            response = try pages.render(
                "sign-in", signInModel(next: "/", problem: error.message + ".", context: context),
                status: error.status)
        }
        response.setCookie(singleSignOn.attemptEnded(isSecure: visit.isSecure))
        return response
    }

    // MARK: Forms

    @Sendable func signIn(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        let form = try await checkedForm(request, context)
        guard let accessControl, let visit = context.visit else { return Self.redirect(to: "/") }
        let next = Self.safeReturn(form.next)
        guard let token = accessControl.policy.token(presented: (form.token ?? "").trimmingCharacters(in: .whitespaces))
        else {
            return try pages.render(
                "sign-in",
                signInModel(
                    next: next, problem: "That token is not in the access file; nothing was signed in.",
                    context: context), status: .unauthorized)
        }
        // A new session at sign-in: an id seen before signing in is never the signed-in one.
        let now = Date()
        let session = sessions.start(with: token, at: now)
        var response = Self.redirect(to: next)
        response.setCookie(sessions.cookie(for: session, secure: visit.isSecure, at: now))
        return response
    }

    @Sendable func signOut(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        _ = try await checkedForm(request, context)
        guard let visit = context.visit else { return Self.redirect(to: "/") }
        let now = Date()
        try await sessions.end(visit.session, at: now, store: store)
        var response = Self.redirect(to: accessControl == nil ? "/" : "/sign-in")
        response.setCookie(sessions.cookie(for: sessions.start(at: now), secure: visit.isSecure, at: now))
        return response
    }

    @Sendable func open(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        let form = try await checkedForm(request, context)
        let id = try CanaryID(of: request, context)
        let gate = try GateKind(userInput: form.gate ?? "")
        guard gate != .rollback else {
            throw GatehouseError.badRequest(
                "a rollback is requested with its own form, which says what Flagger will do")
        }
        let caller = try access.requireCaller(context)
        var openRequest = OpenRequest(
            reason: try Reason.validate(form.reason), boundChecksum: Revision(form.checksum))
        switch (gate, form.scope ?? "rollout") {
        case (.traffic, "rest"):
            openRequest.cover(.rest)
        case (.traffic, "steps"):
            guard let steps = form.steps.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }),
                OpenGateBody.steps.contains(steps)
            else { throw GatehouseError.badRequest(OpenGateBody.stepsRule) }
            openRequest.cover(.count(steps))
        case (_, "rollout"):
            break
        case (_, let scope):
            throw GatehouseError.badRequest("scope \(scope.prefix(20)) is not one this form offers")
        }
        let opened = try await operations.open(
            gate, of: id, openRequest, rollback: .request(force: false, revision: nil), by: caller)
        return done(
            "Done: \(openRequest.coverage(of: gate, in: opened)).\(operations.approvalsStillNeeded(gate, of: opened).map { " Not open yet: a rule needs more approvals (\($0))." } ?? "")\(Self.warning(await operations.neverCalled(id)))",
            returnTo: form.back.map { Self.safeReturn($0) } ?? CanaryModel.href(of: id))
    }

    @Sendable func close(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        let form = try await checkedForm(request, context)
        let id = try CanaryID(of: request, context)
        let gate = try GateKind(userInput: form.gate ?? "")
        let caller = try access.requireCaller(context)
        _ = try await operations.close(gate, of: id, reason: try Reason.validate(form.reason), by: caller)
        return done(
            "Done: the \(gate.rawValue) gate of \(id) is closed.\(Self.warning(await operations.neverCalled(id)))",
            returnTo: CanaryModel.href(of: id))
    }

    @Sendable func rollback(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        let form = try await checkedForm(request, context)
        let id = try CanaryID(of: request, context)
        let caller = try access.requireCaller(context)
        let openRequest = OpenRequest(reason: try Reason.validate(form.reason, required: true))
        let opened = try await operations.open(
            .rollback, of: id, openRequest,
            rollback: .request(force: false, revision: Revision(form.checksum)),
            by: caller)
        return done("Done: \(openRequest.coverage(of: .rollback, in: opened)).", returnTo: CanaryModel.href(of: id))
    }

    @Sendable func freeze(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        let form = try await checkedForm(request, context)
        // A field left empty is every one.
        func value(_ text: String?) -> String? {
            text.map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        let area = try FreezeBody.area(cluster: value(form.cluster), namespace: value(form.namespace))
        let caller = try access.requireCaller(context)
        let now = Date()
        let freeze = try await operations.freeze(
            area, reason: try Reason.validate(form.reason, required: true) ?? "",
            endsAt: try Expiry.date(
                ttl: value(form.for), expiresAt: value(form.until), now: now, ttlField: "for", timeField: "until"),
            by: caller, at: now)
        return done("Done: \(freeze.area) is frozen.", returnTo: "/freezes")
    }

    @Sendable func lift(_ request: Request, context: GatehouseRequestContext) async throws -> Response {
        _ = try await checkedForm(request, context)
        guard let id = Int64(try context.parameters.require("id")), id > 0 else {
            throw GatehouseError.badRequest("a freeze id is a positive whole number")
        }
        guard let existing = try await store.freeze(id: id), access.canRead(existing.area, context: context) else {
            throw GatehouseError.notFound("there is no freeze \(id)")
        }
        let caller = try access.requireCaller(context)
        _ = try await operations.unfreeze(id: id, by: caller)
        return done("Done: the freeze of \(existing.area) is lifted.", returnTo: "/freezes")
    }

    // MARK: Helpers

    /// The viewer; one who must sign in first is sent to the sign-in page.
    @discardableResult
    private func viewer(_ request: Request, _ context: GatehouseRequestContext) throws -> Caller {
        guard let caller = context.caller else {
            throw SignInRequired(location: "/sign-in?next=" + CanaryModel.escape(request.uri.description))
        }
        return caller
    }

    /// A form's fields, once it is known to come from a page of this dashboard (its CSRF token,
    /// and its Origin when the browser names one) and its viewer is known.
    private func checkedForm(_ request: Request, _ context: GatehouseRequestContext) async throws -> DashboardForm {
        var request = request
        let body = try await request.collectBody(upTo: maximumRequestBodyBytes)
        let form: DashboardForm
        do {
            form = try URLEncodedFormDecoder().decode(DashboardForm.self, from: String(buffer: body))
        } catch {
            throw GatehouseError.badRequest("the form could not be read; send it from the dashboard's page")
        }
        if let origin = request.headers[.origin], let authority = request.head.authority,
            URL(string: origin)?.host.map({ host in
                authority == host || authority.hasPrefix(host + ":")
            }) != true
        {
            throw GatehouseError.forbidden(
                "this form was sent from another site (\(origin.prefix(80))); nothing was done")
        }
        guard let visit = context.visit, let sent = form.csrf,
            constantTimeEqual(Array(sent.utf8), Array(visit.csrfToken.utf8))
        else {
            throw GatehouseError.forbidden(
                "this form's CSRF token is missing or out of date (cookies off, or the session ended); reload the page and try again. Nothing was done"
            )
        }
        if request.uri.path != "/sign-in" { try viewer(request, context) }
        return form
    }

    /// After a form: back to the page it came from, with what it did.
    /// A change's warning after its sentence, or nothing.
    private static func warning(_ notice: String?) -> String {
        notice.map { " Note: \($0)." } ?? ""
    }

    private func done(_ notice: String, returnTo path: String) -> Response {
        var response = Self.redirect(to: path)
        response.setCookie(
            Cookie(
                name: Self.noticeCookie, value: Data(notice.utf8).base64URLString, maxAge: 60, path: "/",
                httpOnly: true, sameSite: .lax))
        return response
    }

    /// The notice a form left for this page.
    private func notice(_ request: Request) -> String? {
        request.cookies[Self.noticeCookie].flatMap { Data(base64URL: $0.value) }.map {
            String(decoding: $0.prefix(2048), as: UTF8.self)
        }
    }

    /// A page that showed the notice clears it.
    private func withNoticeCleared(_ request: Request, _ response: Response) -> Response {
        guard request.cookies[Self.noticeCookie] != nil else { return response }
        var response = response
        response.setCookie(
            Cookie(name: Self.noticeCookie, value: "", maxAge: 0, path: "/", httpOnly: true, sameSite: .lax))
        return response
    }

    private static func redirect(to location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location])
    }

    /// Where sign-in returns: a path of this site, never another site. Browsers drop tabs and line
    /// breaks anywhere in a URL and read a backslash as a slash, so `/<TAB>/evil.example` and
    /// `/\\evil.example` lead away: only a path written in URL characters (RFC 3986: letters,
    /// digits, `-._~!$&'()*+,;=:@/?#%[]`, no backslash, space or control) that starts with a single
    /// slash is followed; anything else returns to the overview.
    static func safeReturn(_ next: String?) -> String {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"),
            next.unicodeScalars.allSatisfy({ $0.isASCII && urlCharacters.contains(UInt8($0.value)) })
        else { return "/" }
        return next
    }

    private static let urlCharacters = Set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?#%[]".utf8)

}

/// Every field a dashboard form sends; each form uses some.
struct DashboardForm: Decodable {
    var csrf: String?
    var reason: String?
    var gate: String?
    var scope: String?
    var steps: String?
    var checksum: String?
    var token: String?
    var next: String?
    /// The page a form returns to, when not the canary's (the overview's quick actions).
    var back: String?
    var namespace: String?
    var cluster: String?
    var `for`: String?
    var until: String?
}
