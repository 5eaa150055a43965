import GatehouseCore
import GatehouseStore
import Hummingbird

/// The whole audit trail, newest first.
struct AuditController {
    let store: GateStore
    let access: AccessGuard

    var endpoints: RouteCollection<GatehouseRequestContext> {
        let routes = RouteCollection(context: GatehouseRequestContext.self)
        routes.get { request, context in
            let page = try PageQuery(request)
            let area = try ClusterParameter.area(of: request)
            _ = try access.authorize(.read, in: area, context: context)
            return page.result(
                try await store.events(
                    in: area, matching: try AuditFilter(request), limit: page.limit, before: page.before))
        }
        routes.rejectOtherMethods(than: [.get], at: "")
        return routes
    }
}
