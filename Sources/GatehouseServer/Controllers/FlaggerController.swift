import Foundation
import GatehouseCore
import GatehouseStore
import HTTPTypes
import Hummingbird
import NIOCore

/// The reports Flagger sends: its `event` hook and `post-rollout`. (Its gate hooks are `CheckController`'s.)
struct FlaggerController {
    let store: GateStore

    var endpoints: RouteCollection<FlaggerRequestContext> {
        let routes = RouteCollection(context: FlaggerRequestContext.self)
        routes.post("events") { _, context in try await report(context.call, as: .event) }
        routes.rejectOtherMethods(than: [.post], at: "events")
        routes.post("post-rollout") { _, context in try await report(context.call, as: .postRollout) }
        routes.rejectOtherMethods(than: [.post], at: "post-rollout")
        return routes
    }

    private func report(_ call: FlaggerCall, as action: AuditAction) async throws -> Response {
        try await store.report(call.payload, of: call.canary, as: action)
        return Response.text("recorded", status: .accepted)
    }
}
