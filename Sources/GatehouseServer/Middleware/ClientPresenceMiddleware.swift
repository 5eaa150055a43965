import GatehouseStore
import Hummingbird

/// Tells the store, for every request, whether its client is still connected: a change whose client
/// left before it committed (Flagger gave up after its webhook timeout) is dropped, never applied
/// unseen (`Presence`, `WriteTicket`).
struct ClientPresenceMiddleware: RouterMiddleware {
    let connections: ConnectionLimit

    func handle(
        _ request: Request, context: GatehouseRequestContext,
        next: (Request, GatehouseRequestContext) async throws -> Response
    ) async throws -> Response {
        try await Presence.$current.withValue(connections.presence(of: context.connection)) {
            try await next(request, context)
        }
    }
}
