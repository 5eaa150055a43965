import Foundation
import GatehouseCore
import GatehouseStore
import Hummingbird
import Logging

/// flagger-loadtester's gate endpoints, with its paths, status codes, bodies and sticky gates.
struct LoadtesterController {
    /// The actor recorded for changes made through the loadtester-compatible endpoints.
    static let actor = "loadtester-api"

    let operations: GateOperations
    let access: AccessGuard

    /// `/gate/approve` and `/gate/halt`, which answer the same whatever the body.
    var fixedEndpoints: RouteCollection<GatehouseRequestContext> {
        let routes = RouteCollection(context: GatehouseRequestContext.self)
        routes.post("gate/approve") { _, _ in
            Response(
                status: .ok, headers: [.contentType: GateAnswer.contentType],
                body: .init(byteBuffer: .init(string: "OK")))
        }
        routes.rejectOtherMethods(than: [.post], at: "gate/approve")
        routes.post("gate/halt") { _, _ in
            Response(
                status: .forbidden, headers: [.contentType: GateAnswer.contentType],
                body: .init(byteBuffer: .init(string: "Forbidden")))
        }
        routes.rejectOtherMethods(than: [.post], at: "gate/halt")
        return routes
    }

    /// Opening and closing the shared and rollback gates, which people and scripts call.
    var changeEndpoints: RouteCollection<FlaggerRequestContext> {
        let routes = RouteCollection(context: FlaggerRequestContext.self)
        for (prefix, gate) in Self.gates {
            routes.post(RouterPath("\(prefix)/open")) { _, context in
                let action: AccessAction = gate == .rollback ? .rollback : .open
                let caller = try access.requireCaller(context)
                _ = try await operations.open(
                    gate, of: context.call.canary, OpenRequest(isSticky: true), rollback: .loadtesterSwitch,
                    by: caller)
                return Response(status: .accepted)
            }
            routes.post(RouterPath("\(prefix)/close")) { _, context in
                let caller = try access.requireCaller(context)
                _ = try await operations.close(
                    gate, of: context.call.canary, reason: nil,
                    by: caller)
                return Response(status: .accepted)
            }
            for action in ["open", "close"] {
                routes.rejectOtherMethods(than: [.post], at: RouterPath("\(prefix)/\(action)"))
            }
        }
        return routes
    }

    /// The loadtester's path prefixes and the gates they stand for: `/gate/…` and `/rollback/…`.
    static let gates = [(prefix: "gate", gate: GateKind.shared), (prefix: "rollback", gate: GateKind.rollback)]
}
