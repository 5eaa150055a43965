import Foundation
import GatehouseCore
import GatehouseStore
import Hummingbird

/// Freezes: list, set, lift.
struct FreezeController {
    let store: GateStore

    var endpoints: RouteCollection<GatehouseRequestContext> {
        let routes = RouteCollection(context: GatehouseRequestContext.self)
        routes.get { request, _ in
            let all = request.uri.queryParameters["all"].map { $0 == "true" || $0 == "1" } ?? false
            return FreezeList(freezes: try await store.freezes(includingEnded: all))
        }
        routes.post { request, context in
            let body = try await JSONBody.decode(FreezeBody.self, from: request, context: context)
            let namespace = body.namespace.flatMap { $0 == "*" || $0.isEmpty ? nil : $0 }
            if let namespace { try KubernetesName.validateLabel(namespace, field: "namespace") }
            let now = Date()
            let freeze = try await store.freeze(
                namespace: namespace, reason: try Reason.validate(body.reason, required: true) ?? "",
                endsAt: try Expiry.date(
                    ttl: body.duration, expiresAt: body.until, now: now, ttlField: "for", timeField: "until"),
                actor: Actor.of(request), at: now)
            return EditedResponse(status: .created, response: freeze)
        }
        routes.rejectOtherMethods(than: [.get, .post], at: "")
        routes.delete(":id") { request, context in
            guard let id = Int64(try context.parameters.require("id")), id > 0 else {
                throw GatehouseError.badRequest("a freeze id is a positive whole number")
            }
            return try await store.unfreeze(id: id, actor: Actor.of(request))
        }
        routes.rejectOtherMethods(than: [.delete], at: ":id")
        return routes
    }
}
