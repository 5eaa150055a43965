import Foundation
import GatehouseCore
import GatehouseStore
import Hummingbird
import Logging

/// Freezes: list, set, lift.
struct FreezeController {
    let store: GateStore
    let operations: GateOperations
    let access: AccessGuard

    var endpoints: RouteCollection<GatehouseRequestContext> {
        let routes = RouteCollection(context: GatehouseRequestContext.self)
        routes.get { request, context in
            try access.requireCaller(context)
            let all: Bool
            switch request.uri.queryParameters.getAll("all") {
            case []: all = false
            case ["true"]: all = true
            case ["false"]: all = false
            default: throw GatehouseError.badRequest("all must be true or false, given once")
            }
            // A freeze concerns those who may read something it covers.
            let visible = try await store.freezes(includingEnded: all).filter { freeze in
                access.canRead(freeze.area, context: context)
            }
            return FreezeList(freezes: visible)
        }
        routes.post { request, context in
            let body = try await JSONBody.decode(FreezeBody.self, from: request, context: context)
            let area = try body.area()
            let caller = try access.requireCaller(context)
            let now = Date()
            let freeze = try await operations.freeze(
                area, reason: try Reason.validate(body.reason, required: true) ?? "",
                endsAt: try Expiry.date(
                    ttl: body.duration, expiresAt: body.until, now: now, ttlField: "for", timeField: "until"),
                by: caller, at: now)
            return EditedResponse(status: .created, response: freeze)
        }
        routes.rejectOtherMethods(than: [.get, .post], at: "")
        routes.delete(":id") { _, context in
            guard let id = Int64(try context.parameters.require("id")), id > 0 else {
                throw GatehouseError.badRequest("a freeze id is a positive whole number")
            }
            try access.requireCaller(context)
            // A freeze the caller may not see does not exist for them: 404, as for one that never did.
            guard let existing = try await store.freeze(id: id),
                access.canRead(existing.area, context: context)
            else { throw GatehouseError.notFound("there is no freeze \(id)") }
            let caller = try access.requireCaller(context)
            return try await operations.unfreeze(id: id, by: caller)
        }
        routes.rejectOtherMethods(than: [.delete], at: ":id")
        return routes
    }
}
