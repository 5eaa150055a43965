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
            let namespace = request.uri.queryParameters["namespace"].map(String.init)
            if let namespace { try KubernetesName.validateLabel(namespace, field: "namespace") }
            _ = try access.authorize(.read, in: namespace, context: context)
            return page.result(try await store.events(namespace: namespace, limit: page.limit, before: page.before))
        }
        routes.rejectOtherMethods(than: [.get], at: "")
        return routes
    }
}
