import GatehouseCore
import Hummingbird
import Logging

/// Turns every error into a clear response in one place: one sentence, plain text on the
/// Flagger-facing and loadtester routes, `{"error", "message"}` JSON on the others.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Path prefixes whose callers (Flagger, loadtester scripts) expect plain text.
    static var textPrefixes: [String] { ["/v1/flagger/", "/gate/", "/rollback/"] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch {
            let failure = GatehouseError.from(error, request: request)
            if failure.status.code >= 500 && ![.serviceUnavailable, .notImplemented].contains(failure.status) {
                context.logger.error(
                    "request failed",
                    metadata: [
                        "path": "\(request.uri.path)", "status": .stringConvertible(failure.status.code),
                        "error": "\(error)",
                    ])
            } else {
                context.logger.debug(
                    "request refused",
                    metadata: [
                        "path": "\(request.uri.path)", "status": .stringConvertible(failure.status.code),
                        "error": "\(failure.message)",
                    ])
            }
            let path = request.uri.path
            return failure.response(asText: Self.textPrefixes.contains { path.hasPrefix($0) })
        }
    }
}
