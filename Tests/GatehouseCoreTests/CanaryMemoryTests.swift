import Foundation
import GatehouseCore
import Testing

/// What memory keeps of each canary is kept small (docs/scale.md), and reads back exactly as given.
@Suite("What memory keeps of a canary", .timeLimit(.minutes(3)))
struct CanaryMemoryTests {
    @Test(
        "Flagger's last message reads back exactly as it came, whatever it names",
        arguments: [
            "Promotion completed! Scaling down podinfo.test",
            "Advance podinfo.test canary weight 20; podinfo.test is healthy",
            "Halt advancement no values found for metric request-success-rate",
            "Promotion completed! Scaling down frontend.test",
            "a mark \u{1} and podinfo.test", "\u{2} leading", "\u{1}", "", "podinfo.test",
        ])
    func messageRoundTrip(message: String) throws {
        var canary = Canary(id: try CanaryID(namespace: "test", name: "podinfo"))
        canary.lastMessage = message
        #expect(canary.lastMessage == message)
        // Another canary given the same words about itself reads its own name back.
        let other = try CanaryID(cluster: "eu-1", namespace: "prod", name: "api")
        var second = Canary(id: other)
        second.lastMessage = message.replacing("podinfo.test", with: "api.prod")
        #expect(second.lastMessage == message.replacing("podinfo.test", with: "api.prod"))
        canary.lastMessage = nil
        #expect(canary.lastMessage == nil && canary.isUntouched)
    }

    @Test("a gate set back to just closed is forgotten: sets made either way are equal")
    func closedGatesAreNotKept() {
        var touched = GateSet()
        touched[.traffic] = Gate(kind: .traffic, isOpen: true, mode: .once, actor: "alice")
        touched[.promotion] = Gate(kind: .promotion, isOpen: false, mode: .once, actor: "bob", reason: "not yet")
        #expect(touched.keys == [.traffic, .promotion])
        touched[.traffic] = .closed(.traffic)
        #expect(touched.keys == [.promotion])
        var direct = GateSet()
        direct[.promotion] = Gate(kind: .promotion, isOpen: false, mode: .once, actor: "bob", reason: "not yet")
        direct[.rollout] = .closed(.rollout)
        #expect(direct == touched)
        #expect(direct[.rollout] == nil)
    }
}
