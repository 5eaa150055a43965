import Foundation
import GatehouseCore
import Hummingbird
import NIOCore

/// Decodes and validates Flagger's webhook payload once for a whole route group; Flagger only POSTs.
struct FlaggerPayloadMiddleware: RouterMiddleware {
    typealias Context = GatehouseRequestContext

    let accessGuard: AccessGuard

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard request.method == .post else {
            throw GatehouseError.methodNotAllowed(request.method, allowed: [.post])
        }
        var context = context
        let payload = try await JSONBody.decode(FlaggerPayload.self, from: request, context: context)
        let canary = try payload.canaryID()
        try accessGuard.requireNamespace(canary.namespace)
        context.flaggerCall = FlaggerCall(payload: payload, canary: canary)
        return try await next(request, context)
    }
}
