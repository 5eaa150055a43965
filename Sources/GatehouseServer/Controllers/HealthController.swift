import Foundation
import GatehouseCore
import GatehouseStore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Liveness, readiness and the API's own description.
struct HealthController {
    let store: GateStore
    let metrics: GatehouseMetrics

    var endpoints: RouteCollection<GatehouseRequestContext> {
        let routes = RouteCollection(context: GatehouseRequestContext.self)
        routes.get("healthz") { _, _ -> Response in
            // Alive unless storage is broken in a way only a restart mends (its file deleted or
            // replaced): failing liveness then has the orchestrator restart the process.
            if let problem = store.problemNeedingRestart {
                throw GatehouseError.unavailable("storage needs a restart: \(problem)")
            }
            return Response.text("ok")
        }
        routes.rejectOtherMethods(than: [.get], at: "healthz")
        routes.get("readyz") { _, _ -> Response in
            // Answered within a second whatever storage does: a stalled volume must not hang the probe.
            guard await store.readiness() else {
                throw GatehouseError.unavailable("storage cannot answer; checks are failing closed")
            }
            return Response.text("ready")
        }
        routes.rejectOtherMethods(than: [.get], at: "readyz")
        routes.get("openapi.yaml") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/yaml"],
                body: .init(byteBuffer: ByteBuffer(bytes: OpenAPIDocument.bytes)))
        }
        routes.rejectOtherMethods(than: [.get], at: "openapi.yaml")
        routes.get("v1/version") { _, _ in ServiceVersionView(version: gatehouseVersion) }
        routes.rejectOtherMethods(than: [.get], at: "v1/version")
        return routes
    }
}

/// `/metrics`: open like the loadtester's, or behind the access file's tokens (`--protect-metrics`).
struct MetricsController {
    let store: GateStore
    let metrics: GatehouseMetrics
    let access: AccessGuard
    /// Whether a bearer token from the access file is needed.
    let isProtected: Bool

    var endpoints: RouteCollection<GatehouseRequestContext> {
        let routes = RouteCollection(context: GatehouseRequestContext.self)
        routes.get("metrics") { _, context in
            if isProtected { _ = try access.requireCaller(context) }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: await metrics.render(store: store))))
        }
        routes.rejectOtherMethods(than: [.get], at: "metrics")
        return routes
    }
}

/// The OpenAPI 3 document of the whole API, shipped with the binary.
enum OpenAPIDocument {
    static let bytes: [UInt8] = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
            let data = try? Data(contentsOf: url)
        else { return Array("openapi document missing from this build\n".utf8) }
        return Array(data)
    }()
}
