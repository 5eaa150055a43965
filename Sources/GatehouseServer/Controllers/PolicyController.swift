import Foundation
import GatehouseCore
import GatehouseStore
import Hummingbird

/// `GET /v1/policy`: the guardrails in force, each rule in a sentence, and each window's state now.
struct PolicyController {
    let store: GateStore
    let access: AccessGuard

    var endpoints: RouteCollection<GatehouseRequestContext> {
        let routes = RouteCollection(context: GatehouseRequestContext.self)
        routes.get { _, context in
            try access.requireCaller(context)
            return PolicyView(store.policyInForce, at: Date())
        }
        routes.rejectOtherMethods(than: [.get], at: "")
        return routes
    }
}

/// The policy as the API shows it.
struct PolicyView: ResponseEncodable {
    struct Rule: Codable {
        var name: String
        var line: Int
        var requirement: String
        var gates: [GateKind]
        var summary: String
        var enforce: Bool
        var overrideBy: [String]?
        /// For a window: whether gates may pass now, and when that changes.
        var passesNow: Bool?
        var changesAt: Date?
    }

    var rules: [Rule]

    init(_ policy: Policy, at now: Date) {
        rules = policy.rules.map { rule in
            var window: DeployWindow?
            if case .window(let given) = rule.requirement { window = given }
            return Rule(
                name: rule.name, line: rule.line, requirement: rule.requirement.keyword,
                gates: GateKind.policyGates.filter { rule.gates.contains($0) }, summary: rule.summary,
                enforce: rule.enforced, overrideBy: rule.overriders.isEmpty ? nil : rule.overriders,
                passesNow: window?.allows(at: now),
                changesAt: window?.nextChange(after: now))
        }
    }
}
