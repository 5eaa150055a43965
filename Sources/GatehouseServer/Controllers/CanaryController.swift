import Foundation
import GatehouseCore
import GatehouseStore
import HTTPTypes
import Hummingbird
import Logging

/// The operator API over canaries: their state, opening and closing gates, rollbacks, audit trail.
struct CanaryController {
    let store: GateStore
    let operations: GateOperations
    let access: AccessGuard

    var endpoints: RouteCollection<GatehouseRequestContext> {
        let routes = RouteCollection(context: GatehouseRequestContext.self)
        routes.get(use: list)
        routes.rejectOtherMethods(than: [.get], at: "")
        routes.get(":namespace/:name", use: show)
        routes.rejectOtherMethods(than: [.get], at: ":namespace/:name")
        routes.post(":namespace/:name/gates/:gate/open", use: open)
        routes.rejectOtherMethods(than: [.post], at: ":namespace/:name/gates/:gate/open")
        routes.post(":namespace/:name/gates/:gate/close", use: close)
        routes.rejectOtherMethods(than: [.post], at: ":namespace/:name/gates/:gate/close")
        routes.post(":namespace/:name/rollback", use: rollback)
        routes.rejectOtherMethods(than: [.post], at: ":namespace/:name/rollback")
        routes.post(":namespace/:name/request", use: requestApproval)
        routes.rejectOtherMethods(than: [.post], at: ":namespace/:name/request")
        routes.post(":namespace/:name/overrides", use: override)
        routes.rejectOtherMethods(than: [.post], at: ":namespace/:name/overrides")
        routes.get(":namespace/:name/events", use: events)
        routes.rejectOtherMethods(than: [.get], at: ":namespace/:name/events")
        return routes
    }

    @Sendable func list(_ request: Request, context: GatehouseRequestContext) async throws -> CanaryList {
        let query = try CanaryQuery(request)
        if query.area != .everywhere {
            _ = try access.authorize(.read, in: query.area, context: context)
        } else {
            try access.requireCaller(context)
        }
        let now = Date()
        let surroundings = try await store.surroundings(at: now)
        // In order of cluster, namespace and name, so that `after` pages through them in a stable
        // order; a page costs its own length whatever the number of canaries.
        let selection: GateStore.Selection =
            switch query.state {
            case nil: .all
            case .idle: .idle
            case .waiting, .rolling: .active
            }
        let (canaries, more) = try await store.canaries(
            after: query.after, in: query.area, among: selection, limit: query.limit
        ) { canary in
            access.canRead(canary.id.area, context: context)
                && query.state.map { CanaryView.State(of: canary) == $0 } ?? true
        }
        let page = canaries.map { (id: $0.id, view: CanaryView($0, surroundings: surroundings, at: now)) }
        let next = more ? page.last?.id.description : nil
        return CanaryList(canaries: page.map(\.view), next: next)
    }

    @Sendable func show(_ request: Request, context: GatehouseRequestContext) async throws -> CanaryView {
        let id = try CanaryID(of: request, context)
        _ = try access.authorize(.read, in: id.area, context: context)

        guard let canary = try await store.canary(id) else {
            throw GatehouseError.notFound(
                "canary \(id) is not known: Flagger has not called about it and no gate of it was opened")
        }
        return try await view(of: canary)
    }

    @Sendable func open(_ request: Request, context: GatehouseRequestContext) async throws -> CanaryView {
        let id = try CanaryID(of: request, context)
        let gate = try GateKind(userInput: try context.parameters.require("gate"))
        let caller = try access.requireCaller(context)
        let body =
            try await JSONBody.decodeIfPresent(OpenGateBody.self, from: request, context: context) ?? OpenGateBody()
        return try await open(gate, of: id, body, caller: caller, context: context)
    }

    @Sendable func close(_ request: Request, context: GatehouseRequestContext) async throws -> CanaryView {
        let id = try CanaryID(of: request, context)
        let gate = try GateKind(userInput: try context.parameters.require("gate"))
        let caller = try access.requireCaller(context)
        let body =
            try await JSONBody.decodeIfPresent(ReasonBody.self, from: request, context: context) ?? ReasonBody()
        let canary = try await operations.close(
            gate, of: id, reason: try Reason.validate(body.reason),
            by: caller)
        return try await view(of: canary, notice: await operations.neverCalled(id))
    }

    @Sendable func rollback(_ request: Request, context: GatehouseRequestContext) async throws -> CanaryView {
        let id = try CanaryID(of: request, context)
        let caller = try access.requireCaller(context)
        let body =
            try await JSONBody.decodeIfPresent(OpenGateBody.self, from: request, context: context) ?? OpenGateBody()
        return try await open(.rollback, of: id, body, caller: caller, context: context)
    }

    /// Asks for the release to be approved: the asker's own approval then does not count.
    @Sendable func requestApproval(_ request: Request, context: GatehouseRequestContext) async throws -> CanaryView {
        let id = try CanaryID(of: request, context)
        let caller = try access.requireCaller(context)
        let body =
            try await JSONBody.decodeIfPresent(ReasonBody.self, from: request, context: context) ?? ReasonBody()
        let canary = try await operations.requestApproval(
            of: id, reason: try Reason.validate(body.reason), by: caller)
        return try await view(
            of: canary,
            outcome:
                "approval requested by \(caller.actor): where a rule counts approvals, \(caller.actor)'s own does not count"
        )
    }

    /// Lifts one policy rule for this rollout (someone the rule names may), with a reason.
    @Sendable func override(_ request: Request, context: GatehouseRequestContext) async throws -> CanaryView {
        let id = try CanaryID(of: request, context)
        let caller = try access.requireCaller(context)
        let body = try await JSONBody.decode(OverrideBody.self, from: request, context: context)
        let now = Date()
        let reason = try Reason.validate(body.reason, required: true) ?? ""
        let expiresAt =
            try Expiry.date(ttl: body.ttl, expiresAt: body.expiresAt, now: now)
            ?? now.addingTimeInterval(OverrideBody.defaultLifetime)
        let canary = try await operations.override(
            rule: body.rule, of: id, reason: reason, expiresAt: expiresAt, by: caller, at: now)
        return try await view(
            of: canary, at: now,
            outcome:
                "rule \(body.rule) lifted for \(id) until \(Timestamp.string(from: expiresAt)) or the end of its rollout"
        )
    }

    @Sendable func events(_ request: Request, context: GatehouseRequestContext) async throws -> AuditPage {
        let id = try CanaryID(of: request, context)
        _ = try access.authorize(.read, in: id.area, context: context)
        let page = try PageQuery(request)
        let events = try await store.events(
            of: id, matching: try AuditFilter(request), limit: page.limit, before: page.before)
        return page.result(events)
    }

    /// Opens a gate; the rollback gate follows the rollback rules (default expiry, in-rollout check).
    private func open(
        _ gate: GateKind, of id: CanaryID, _ body: OpenGateBody, caller: Caller, context: GatehouseRequestContext
    ) async throws -> CanaryView {
        let now = Date()
        let request = try body.openRequest(for: gate, now: now)
        let canary = try await operations.open(
            gate, of: id, request, rollback: .request(force: body.force ?? false, revision: nil),
            by: caller, at: now)
        return try await view(
            of: canary, at: now, outcome: request.coverage(of: gate, in: canary),
            notice: await operations.neverCalled(id))
    }

    /// The view of one canary, with what holds it now (freezes, the policy, the other canaries).
    private func view(
        of canary: Canary, at now: Date = Date(), outcome: String? = nil, notice: String? = nil
    ) async throws -> CanaryView {
        CanaryView(
            canary, surroundings: try await store.surroundings(at: now), at: now, outcome: outcome, notice: notice)
    }

}

extension CanaryID {
    /// The canary a path names (`:namespace/:name`), in the cluster its `cluster` parameter names
    /// (none: the unnamed one); for the API and the dashboard alike.
    init(of request: Request, _ context: GatehouseRequestContext) throws {
        try self.init(
            cluster: try ClusterParameter.of(request) ?? "", namespace: try context.parameters.require("namespace"),
            name: try context.parameters.require("name"))
    }
}

/// The gate rules a deployment can tune.
public struct GateSettings: Sendable {
    /// How long a rollback request stays pending when no ttl is given.
    public var rollbackTTL: TimeInterval

    /// Creates settings.
    public init(rollbackTTL: TimeInterval = 3600) {
        self.rollbackTTL = rollbackTTL
    }
}

/// Who is acting, for the audit trail.
enum ActorHeader {
    static let header = HTTPField.Name("X-Gatehouse-Actor")!

    /// The self-declared actor header (the CLI sends the user's name), or `fallback`; used only
    /// when no access file is configured (a token's name is the actor otherwise).
    static func of(_ request: Request, fallback: String = "api") -> String {
        guard let value = request.headers[header]?.trimmingCharacters(in: .whitespaces), !value.isEmpty,
            value.count <= 64, value.allSatisfy({ $0.isASCII && !$0.isNewline && $0 != "\u{0}" })
        else { return fallback }
        return value
    }
}

/// A query with a page size.
protocol PagedQuery {}

extension PagedQuery {
    /// The `limit` parameter: a whole number from 1 to `maximum`, `default` when absent.
    static func limit(_ text: Substring?, default: Int, maximum: Int) throws -> Int {
        guard let text else { return `default` }
        guard let value = Int(String(text)), (1...maximum).contains(value) else {
            throw GatehouseError.badRequest("limit must be a whole number from 1 to \(maximum)")
        }
        return value
    }
}

/// The filters and cursor of `GET /v1/canaries`.
struct CanaryQuery: PagedQuery {
    static let defaultLimit = 500
    static let maximumLimit = 1000

    /// The `cluster` and `namespace` filters.
    var area: Area
    var state: CanaryView.State?
    var limit: Int
    /// The last canary of the previous page (`[cluster/]namespace/name`).
    var after: CanaryID?

    init(_ request: Request) throws {
        let query = request.uri.queryParameters
        area = try ClusterParameter.area(of: request)
        if let text = query["state"] {
            guard let state = CanaryView.State(rawValue: String(text)) else {
                throw GatehouseError.badRequest(
                    "state must be one of: \(CanaryView.State.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self.state = state
        }
        limit = try Self.limit(query["limit"], default: Self.defaultLimit, maximum: Self.maximumLimit)
        if let text = query["after"] {
            do {
                after = try CanaryID(parsing: String(text))
            } catch {
                throw GatehouseError.badRequest(
                    "after must be the next value of the previous page ([CLUSTER/]NAMESPACE/NAME): \(error.message)")
            }
        }
    }
}

/// The `cluster` and `namespace` query parameters, which narrow a request to an area.
enum ClusterParameter {
    /// The cluster named, validated (an empty one too); nil when none is.
    static func of(_ request: Request) throws -> String? {
        try Area(validatingCluster: request.uri.queryParameters["cluster"].map(String.init), namespace: nil).cluster
    }

    /// The area the `cluster` and `namespace` parameters name; every cluster or namespace when absent.
    static func area(of request: Request) throws -> Area {
        let query = request.uri.queryParameters
        return try Area(
            validatingCluster: query["cluster"].map(String.init), namespace: query["namespace"].map(String.init))
    }
}

extension AuditFilter {
    /// The `actor`, `action`, `since` and `until` query parameters of a search of the audit trail.
    init(_ request: Request) throws {
        let query = request.uri.queryParameters
        try self.init { query[Substring($0)].map(String.init) }
    }

    /// The filter that `parameter` gives each query parameter's value (nil: absent).
    init(parameter value: (String) -> String?) throws {
        if value("actor")?.isEmpty == true { throw GatehouseError.badRequest("actor must not be empty") }
        self.init(actor: value("actor"))
        if let text = value("action") {
            guard let action = AuditAction(rawValue: text) else {
                throw GatehouseError.badRequest(
                    "action must be one of: \(AuditAction.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self.action = action
        }
        since = try value("since").map { text throws(InvalidInput) in try Timestamp.date(from: text, field: "since") }
        until = try value("until").map { text throws(InvalidInput) in try Timestamp.date(from: text, field: "until") }
    }
}

/// `limit` and `before` of a paged audit request.
struct PageQuery: PagedQuery {
    static let defaultLimit = 50
    static let maximumLimit = 500

    var limit: Int
    var before: Int64?

    init(_ request: Request) throws {
        let query = request.uri.queryParameters
        limit = try Self.limit(query["limit"], default: Self.defaultLimit, maximum: Self.maximumLimit)
        if let text = query["before"] {
            guard let value = Int64(String(text)), value > 0 else {
                throw GatehouseError.badRequest("before must be a positive event id")
            }
            before = value
        }
    }

    /// The page, with a cursor when it is full and more may follow.
    func result(_ events: [AuditEntry]) -> AuditPage {
        AuditPage(events: events, next: events.count == limit ? events.last?.id : nil)
    }
}
