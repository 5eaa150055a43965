import HTTPTypes
import Hummingbird

extension RouterMethods {
    /// Answers 405, naming the allowed methods, for every common method a path does not serve.
    @discardableResult
    func rejectOtherMethods(than allowed: [HTTPRequest.Method], at path: RouterPath) -> Self {
        let common: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete, .options, .trace]
        for method in common where !allowed.contains(method) {
            on(path, method: method) { (request: Request, _: Context) -> Response in
                throw GatehouseError.methodNotAllowed(request.method, allowed: allowed)
            }
        }
        return self
    }
}
