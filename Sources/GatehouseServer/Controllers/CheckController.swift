import GatehouseCore
import HTTPTypes
import Hummingbird
import NIOCore

/// How a check's answer is worded: Gatehouse's sentences, or the loadtester's fixed bodies.
enum AnswerStyle: Sendable {
    case sentence
    case loadtester
}

/// A route that checks a gate with Flagger's payload: one per Flagger hook, and the loadtester's
/// `/gate/check` and `/rollback/check`.
struct CheckRoute: Sendable {
    /// The route's path, as the router reports it in metrics and logs.
    var path: String
    /// The gate it checks.
    var gate: GateKind
    /// How it words its answer.
    var style: AnswerStyle

    /// Every check route.
    static let all: [CheckRoute] =
        GateKind.flaggerGates.compactMap { gate in
            gate.hook.map { CheckRoute(path: "/v1/flagger/\($0)", gate: gate, style: .sentence) }
        }
        + LoadtesterController.gates.map { CheckRoute(path: "/\($0.prefix)/check", gate: $0.gate, style: .loadtester) }
}

/// The answer to one gate check: 200 when it passes, 403 otherwise, produced in one place.
struct GateAnswer: ResponseGenerator {
    var decision: Decision
    var style: AnswerStyle

    /// The status code.
    var status: HTTPResponse.Status { decision.isApproved ? .ok : .forbidden }

    /// The body: the decision's sentence, or the loadtester's word.
    var text: String {
        switch style {
        case .sentence: decision.message
        case .loadtester: decision.isApproved ? "Approved" : "Forbidden"
        }
    }

    static let contentType = "text/plain; charset=utf-8"

    func response(from request: Request, context: some RequestContext) throws -> Response {
        switch style {
        case .sentence: .text(text, status: status)
        case .loadtester:
            Response(
                status: status, headers: [.contentType: Self.contentType],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }
}

/// The check routes: every Flagger hook that asks a gate, and the loadtester's check endpoints.
struct CheckController {
    let checker: GateChecker

    var endpoints: RouteCollection<FlaggerRequestContext> {
        let routes = RouteCollection(context: FlaggerRequestContext.self)
        for route in CheckRoute.all {
            routes.post(RouterPath(route.path)) { _, context in
                let payload = context.call.payload
                let check = Check(
                    canary: context.call.canary, gate: route.gate, checksum: payload.checksum,
                    phase: payload.phase, metadata: payload.metadata)
                return GateAnswer(decision: try await checker.check(check, context: context), style: route.style)
            }
            routes.rejectOtherMethods(than: [.post], at: RouterPath(route.path))
        }
        return routes
    }
}
