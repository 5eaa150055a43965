import Foundation
import Hummingbird

/// Refuses a body in a transfer coding other than chunked (`Transfer-Encoding: gzip, chunked`)
/// with 501, as RFC 9112 asks, rather than reading it as if it were plain.
struct TransferCodingMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        if let value = request.headers[.transferEncoding],
            let unknown = value.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() })
                .first(where: { $0 != "chunked" })
        {
            throw GatehouseError(
                status: .notImplemented, code: "not_implemented",
                message:
                    "the transfer coding '\(unknown.prefix(40))' is not implemented; send the body plain or chunked")
        }
        return try await next(request, context)
    }
}
