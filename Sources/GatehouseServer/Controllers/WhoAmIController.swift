import Foundation
import GatehouseCore
import Hummingbird

/// `GET /v1/whoami`: who the service takes the caller for — the principal's kind, verified name,
/// the name the audit trail records, groups, and what the caller may do. How a CI job checks that
/// its identity token maps to the workload it expects, before it acts.
struct WhoAmIController {
    let access: AccessGuard

    var endpoints: RouteCollection<GatehouseRequestContext> {
        let routes = RouteCollection(context: GatehouseRequestContext.self)
        routes.get { _, context in
            WhoAmIView(try access.requireCaller(context))
        }
        routes.rejectOtherMethods(than: [.get], at: "")
        return routes
    }
}

/// The caller as `GET /v1/whoami` shows it.
struct WhoAmIView: ResponseEncodable {
    struct GrantView: Codable {
        var clusters: [String]
        var namespaces: [String]
        var actions: [AccessAction]
    }

    var kind: Principal.Kind
    var name: String
    var actor: String
    var groups: [String]
    /// Whether rules that count approvals count this caller's.
    var countsAsPerson: Bool
    /// What it may do; absent when nothing is restricted (no access file).
    var grants: [GrantView]?

    init(_ caller: Caller) {
        kind = caller.principal.kind
        name = caller.principal.name
        actor = caller.actor
        groups = caller.principal.groups
        countsAsPerson = caller.principal.isPerson
        grants = caller.grants?.map {
            GrantView(
                clusters: $0.scope.clusters.patterns, namespaces: $0.scope.namespaces.patterns,
                actions: AccessAction.allCases.filter($0.actions.contains))
        }
    }
}
