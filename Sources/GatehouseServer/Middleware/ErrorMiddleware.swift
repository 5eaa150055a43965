import Foundation
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
            try Self.refuseUnknownTransferCoding(request)
            return try await next(request, context)
        } catch {
            let failure = GatehouseError.from(error, request: request)
            if failure.status.code >= 500 && ![.serviceUnavailable, .notImplemented].contains(failure.status) {
                context.logger.error(
                    "request failed",
                    metadata: ["path": "\(request.uri.path)", "status": "\(failure.status.code)", "error": "\(error)"])
            } else {
                context.logger.debug(
                    "request refused",
                    metadata: [
                        "path": "\(request.uri.path)", "status": "\(failure.status.code)",
                        "error": "\(failure.message)",
                    ])
            }
            let path = request.uri.path
            return failure.response(asText: Self.textPrefixes.contains { path.hasPrefix($0) })
        }
    }

    /// A body in a transfer coding other than chunked (`Transfer-Encoding: gzip, chunked`) cannot
    /// be read here: 501, as RFC 9112 asks, rather than reading it as if it were plain.
    static func refuseUnknownTransferCoding(_ request: Request) throws {
        guard let value = request.headers[.transferEncoding] else { return }
        let codings = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        if let unknown = codings.first(where: { $0 != "chunked" }) {
            throw GatehouseError(
                status: .notImplemented, code: "not_implemented",
                message:
                    "the transfer coding '\(unknown.prefix(40))' is not implemented; send the body plain or chunked")
        }
    }
}
