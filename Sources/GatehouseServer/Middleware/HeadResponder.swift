import HTTPTypes
import Hummingbird

/// HEAD is GET without the body (RFC 9110, 9.3.2): a HEAD request is answered by the GET route of
/// its path, with that response's status and headers (its `Content-Length` included) and no body.
/// Paths without a GET route answer HEAD with 405, like any other method they do not serve
/// (`rejectOtherMethods`). It wraps the router's responder because the router picks a route by
/// method before any middleware runs.
struct HeadResponder<Inner: HTTPResponder>: HTTPResponder {
    let inner: Inner

    func respond(to request: Request, context: Inner.Context) async throws -> Response {
        guard request.method == .head else { return try await inner.respond(to: request, context: context) }
        var head = request.head
        head.method = .get
        var response = try await inner.respond(to: Request(head: head, body: request.body), context: context)
        if response.status == .methodNotAllowed {
            // No GET here: HEAD is refused as its own method (and listed as GET's neighbour nowhere).
            return try await inner.respond(to: request, context: context)
        }
        // The body GET would send is not written; its length is still said.
        response.body = ResponseBody(contentLength: response.body.contentLength) { writer in
            try await writer.finish(nil)
        }
        return response
    }
}
