import Foundation
import GatehouseCore
import GatehouseStore
import HTTPTypes
import Hummingbird
import NIOCore

/// How a check's answer is worded: Gatehouse's sentences, or the loadtester's fixed bodies.
enum AnswerStyle: Sendable {
    case sentence
    case loadtester
}

/// The answer to one gate check: 200 when it passes, 403 otherwise, produced in one place.
struct GateAnswer: ResponseGenerator {
    var decision: Decision
    var style: AnswerStyle

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body: String
        switch style {
        case .sentence: body = decision.message
        case .loadtester: body = decision.isApproved ? "Approved" : "Forbidden"
        }
        return Response(
            status: decision.isApproved ? .ok : .forbidden,
            headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// The endpoints Flagger calls: one per gate hook, plus `event` and `post-rollout` reports.
struct FlaggerController {
    let store: GateStore
    let checker: GateChecker

    var endpoints: RouteCollection<FlaggerRequestContext> {
        let routes = RouteCollection(context: FlaggerRequestContext.self)
        for gate in GateKind.flaggerGates {
            guard let hook = gate.hook else { continue }
            routes.post(RouterPath(hook)) { _, context in
                try await GateAnswer(decision: check(gate, context), style: .sentence)
            }
            routes.rejectOtherMethods(than: [.post], at: RouterPath(hook))
        }
        routes.post("events") { _, context in try await report(context.call, as: .event) }
        routes.rejectOtherMethods(than: [.post], at: "events")
        routes.post("post-rollout") { _, context in try await report(context.call, as: .postRollout) }
        routes.rejectOtherMethods(than: [.post], at: "post-rollout")
        return routes
    }

    func check(_ gate: GateKind, _ context: FlaggerRequestContext) async throws -> Decision {
        let call = context.call
        return try await checker.check(
            Check(canary: call.canary, gate: gate, checksum: call.payload.checksum ?? "", phase: call.payload.phase),
            context: context)
    }

    private func report(_ call: FlaggerCall, as action: AuditAction) async throws -> Response {
        try await store.report(call.payload, of: call.canary, as: action)
        return Response(
            status: .accepted, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: "recorded")))
    }
}
