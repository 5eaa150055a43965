import Foundation
import GatehouseCore
import GatehouseStore
import HTTPTypes
import Testing

@testable import GatehouseServer

/// Every change, by every kind of principal: the operations decide (grants, namespace filter,
/// approver eligibility), whichever channel brought the request. A channel only builds the caller,
/// so a new route or channel cannot skip a check it never makes.
@Suite("Authorization in the operations", .timeLimit(.minutes(3)))
struct AuthorizationTests {
    /// The operations, each on a canary of its own in `payments`.
    enum Operation: String, CaseIterable, Sendable {
        case openRollout, openPromotion, close, rollback, requestApproval, override, freeze, unfreeze
    }

    /// The principals, each as its channel builds it.
    enum Who: String, CaseIterable, Sendable {
        case alice, lead, mallory, sharedToken, workload, declared, link
    }

    static let payments = Grant(
        scope: Scope(namespaces: NameScope(["payments"])), actions: Set(AccessAction.allCases))

    static func caller(_ who: Who, for canary: CanaryID) -> Caller {
        switch who {
        // A person with every right in payments (a personal token, single sign-on, a proxy).
        case .alice: Caller.person(name: "alice", groups: [], grants: [payments])
        // A person whose group grants read, open and close, and whom a rule names by that group.
        case .lead:
            Caller.person(
                name: "lee", groups: ["leads"],
                grants: [Grant(scope: Scope(namespaces: NameScope(["payments"])), actions: [.read, .open, .close])])
        // A person with rights elsewhere only.
        case .mallory:
            Caller.person(
                name: "mallory", groups: [],
                grants: [Grant(scope: Scope(namespaces: NameScope(["other"])), actions: Set(AccessAction.allCases))])
        case .sharedToken: Caller(Principal(.sharedToken, "team"), grants: [payments])
        case .workload:
            Caller(
                Principal(.workload, "deploy"),
                grants: [Grant(scope: Scope(namespaces: NameScope(["payments"])), actions: [.read, .open])])
        // No access file: anyone, by the name they give.
        case .declared: Caller.unrestricted(actor: "dave")
        // An approval link: one canary, one action.
        case .link:
            Caller(
                Principal(.declared, "link"),
                grants: [
                    Grant(
                        scope: Scope(clusters: NameScope([""]), namespaces: NameScope([canary.namespace])),
                        actions: [.open])
                ])
        }
    }

    /// What each may do: the table the test holds the operations to.
    static let allowed: [Who: Set<Operation>] = [
        .alice: Set(Operation.allCases),
        .lead: [.openRollout, .openPromotion, .close, .requestApproval],
        .mallory: [],
        // Not a person: never an approver under a rule, never an overrider.
        .sharedToken: [.openRollout, .close, .rollback, .requestApproval, .freeze, .unfreeze],
        .workload: [.openRollout, .requestApproval],
        // A declared name counts as a person, but the rule names neither dave nor his groups.
        .declared: [.openRollout, .close, .rollback, .requestApproval, .freeze, .unfreeze],
        .link: [.openRollout, .requestApproval],
    ]

    static let policy = """
        rules:
          - name: people
            canaries: {namespaces: [payments]}
            gates: [promotion]
            approvals: {count: 1, from: [alice, group:leads]}
            overrideBy: [alice]
        """

    struct Case: Sendable, CustomTestStringConvertible {
        var who: Who
        var operation: Operation
        var testDescription: String { "\(who.rawValue) \(operation.rawValue)" }
    }

    static let cases = Who.allCases.flatMap { who in Operation.allCases.map { Case(who: who, operation: $0) } }

    @Test("every operation by every kind of principal is allowed or refused (403) as the table says", arguments: cases)
    func table(_ example: Case) async throws {
        let database = FileManager.default.temporaryDirectory.appendingPathComponent("authz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: database, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: database) }
        let policy = try PolicyFile.parse(Self.policy)
        let store = try GateStore(
            writer: try GateStore.openDatabase(
                atPath: database.appendingPathComponent("g.sqlite").path, busyTimeout: 5),
            policy: { policy })
        let operations = GateOperations(
            store: store, settings: GateSettings(), metrics: GatehouseMetrics(),
            accessGuard: AccessGuard(namespaces: nil))
        let canary = try CanaryID(namespace: "payments", name: "ledger")
        let caller = Self.caller(example.who, for: canary)
        // Flagger has asked, so rules apply; a freeze exists to lift.
        _ = try await store.check(Check(canary: canary, gate: .promotion, checksum: Revision("r1")))
        let freeze = try await operations.freeze(
            canary.area, reason: "audit", endsAt: nil, by: .unrestricted(actor: "setup"))
        let run: @Sendable () async throws -> Void = {
            switch example.operation {
            case .openRollout: _ = try await operations.open(.rollout, of: canary, OpenRequest(), by: caller)
            case .openPromotion: _ = try await operations.open(.promotion, of: canary, OpenRequest(), by: caller)
            case .close: _ = try await operations.close(.promotion, of: canary, reason: nil, by: caller)
            case .rollback: _ = try await operations.open(.rollback, of: canary, OpenRequest(), by: caller)
            case .requestApproval: _ = try await operations.requestApproval(of: canary, reason: nil, by: caller)
            case .override:
                _ = try await operations.override(
                    rule: "people", of: canary, reason: "hotfix", expiresAt: Date().addingTimeInterval(600), by: caller)
            case .freeze:
                _ = try await operations.freeze(canary.area, reason: "stop", endsAt: nil, by: caller)
            case .unfreeze: _ = try await operations.unfreeze(id: freeze.id, by: caller)
            }
        }
        let expected = Self.allowed[example.who, default: []].contains(example.operation)
        do {
            try await run()
            #expect(expected, "allowed, but the table says refused")
        } catch {
            let status = GatehouseError.from(error, request: nil).status
            #expect(
                !expected, "refused (\(GatehouseError.from(error, request: nil).message)), but the table says allowed")
            #expect(status == .forbidden || status == .conflict, "\(status): \(error)")
        }
    }

    @Test(
        "a namespace not served here is refused to everyone, even without access control", arguments: Operation.allCases
    )
    func unservedNamespace(_ operation: Operation) async throws {
        let database = FileManager.default.temporaryDirectory.appendingPathComponent("authz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: database, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: database) }
        let store = try GateStore(
            writer: try GateStore.openDatabase(atPath: database.appendingPathComponent("g.sqlite").path, busyTimeout: 5)
        )
        let everywhere = GateOperations(
            store: store, settings: GateSettings(), metrics: GatehouseMetrics(),
            accessGuard: AccessGuard(namespaces: nil))
        let operations = GateOperations(
            store: store, settings: GateSettings(), metrics: GatehouseMetrics(),
            accessGuard: AccessGuard(namespaces: try NamespaceFilter("^payments$")))
        let canary = try CanaryID(namespace: "test", name: "podinfo")
        let anyone = Caller.unrestricted(actor: "dave")
        let freeze = try await everywhere.freeze(canary.area, reason: "audit", endsAt: nil, by: anyone)
        await #expect(throws: GatehouseError.self) {
            switch operation {
            case .openRollout: _ = try await operations.open(.rollout, of: canary, OpenRequest(), by: anyone)
            case .openPromotion: _ = try await operations.open(.promotion, of: canary, OpenRequest(), by: anyone)
            case .close: _ = try await operations.close(.promotion, of: canary, reason: nil, by: anyone)
            case .rollback: _ = try await operations.open(.rollback, of: canary, OpenRequest(), by: anyone)
            case .requestApproval: _ = try await operations.requestApproval(of: canary, reason: nil, by: anyone)
            case .override:
                _ = try await operations.override(
                    rule: "people", of: canary, reason: "x", expiresAt: Date().addingTimeInterval(60), by: anyone)
            case .freeze: _ = try await operations.freeze(canary.area, reason: "stop", endsAt: nil, by: anyone)
            case .unfreeze: _ = try await operations.unfreeze(id: freeze.id, by: anyone)
            }
        }
    }
}
