import HTTPTypes
import Hummingbird

extension RouterMethods {
    /// Answers 405, naming the allowed methods, for every common method a path does not serve.
    @discardableResult
    func rejectOtherMethods(than allowed: [HTTPRequest.Method], at path: RouterPath) -> Self {
        var common: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete, .options, .trace, .query]
        // HEAD is GET without the body where GET is served.
        if !allowed.contains(.get) { common.append(.head) }
        for method in common where !allowed.contains(method) {
            on(path, method: method) { (request: Request, _: Context) -> Response in
                throw GatehouseError.methodNotAllowed(request.method, allowed: allowed)
            }
        }
        return self
    }
}

extension HTTPRequest.Method {
    /// QUERY (a safe request with a body, newer than HTTPTypes' list).
    static let query = HTTPRequest.Method("QUERY")!
}

/// Refuses TRACE, which no route serves, with 405 before anything else looks at the request (an
/// authentication failure would otherwise answer 401 to a request that could never succeed).
struct UnservedMethodMiddleware<Context: RequestContext>: RouterMiddleware {
    /// What some route serves.
    static var served: [HTTPRequest.Method] { [.get, .head, .post, .delete] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard request.method != .trace else {
            throw GatehouseError.methodNotAllowed(request.method, allowed: Self.served)
        }
        return try await next(request, context)
    }
}
