import Foundation
import GatehouseCore
import Hummingbird
import NIOCore

/// Decodes and validates Flagger's webhook payload once for a whole route group; Flagger only POSTs.
struct FlaggerPayloadMiddleware: RouterMiddleware {
    typealias Context = GatehouseRequestContext

    let accessGuard: AccessGuard
    /// Flagger's secrets, on the routes Flagger calls; nil on the loadtester's routes for people,
    /// where `metadata.cluster` alone names the cluster.
    var secret: FlaggerSecret?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard request.method == .post else {
            throw GatehouseError.methodNotAllowed(request.method, allowed: [.post])
        }
        var context = context
        context.flaggerCall = try FlaggerCall(
            body: try await request.body.collect(upTo: context.maxUploadSize), accessGuard: accessGuard,
            secret: secret)
        return try await next(request, context)
    }
}

extension FlaggerCall {
    /// Decodes and validates a Flagger webhook body: the payload, Flagger's secret (when one is
    /// configured), the canary it names in its cluster, and that `--namespace-regexp` serves its namespace.
    init(body: ByteBuffer, accessGuard: AccessGuard, secret: FlaggerSecret?) throws {
        payload =
            try body.withUnsafeReadableBytes(FlaggerPayload.init(plainJSON:))
            ?? JSONBody.decode(FlaggerPayload.self, from: body, numbers: .any)
        canary = try payload.canaryID(cluster: try secret?.cluster(of: payload) ?? payload.metadata?["cluster"] ?? "")
        try accessGuard.requireNamespace(canary.namespace)
    }
}
