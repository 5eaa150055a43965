import Foundation
import GatehouseCore
import Testing

@testable import GatehouseStore

@Suite("Canaries kept side by side, found by id")
struct CanaryTableTests {
    @Test("random puts, updates and removals leave the table holding what a dictionary would")
    func matchesDictionary() throws {
        var generator = OrderedIDsTests.Generator(state: 7)
        var table = CanaryTable()
        var model: [CanaryID: (canary: Canary, stamp: Int64)] = [:]
        for step in 0..<20_000 {
            let id = try CanaryID(
                namespace: "ns-\(Int.random(in: 0..<10, using: &generator))",
                name: "app-\(Int.random(in: 0..<300, using: &generator))")
            var canary = Canary(id: id)
            canary.lastMessage = "step \(step)"
            switch Int.random(in: 0..<4, using: &generator) {
            case 0:
                table.remove(id)
                model[id] = nil
            case 1:
                // An update keeps the stamp, and adds nothing the table lacks.
                table.update(canary)
                if let held = model[id] { model[id] = (canary, held.stamp) }
            default:
                table.put(canary, stamp: Int64(step))
                model[id] = (canary, Int64(step))
            }
            guard step % 100 == 99 else { continue }
            #expect(table.count == model.count)
            #expect(Set(table.ids) == Set(model.keys))
            #expect(Set(table.values.map(\.id)) == Set(model.keys), "each canary once")
            for (id, held) in model {
                #expect(table[id] == held.canary)
                #expect(table.stamp(of: id) == held.stamp)
            }
        }
        let gone = try CanaryID(namespace: "elsewhere", name: "never-put")
        #expect(table[gone] == nil)
        #expect(table.stamp(of: gone) == nil)
        // Emptied one by one, then filled again past its first room.
        for id in model.keys {
            table.remove(id)
            #expect(table[id] == nil)
        }
        #expect(table.isEmpty)
        for index in 0..<1_000 {
            table.put(Canary(id: try CanaryID(namespace: "again", name: "app-\(index)")), stamp: Int64(index))
        }
        for index in 0..<1_000 {
            #expect(table.stamp(of: try CanaryID(namespace: "again", name: "app-\(index)")) == Int64(index))
        }
    }
}

@Suite("What a canary keeps, packed")
struct PackedFieldsTests {
    @Test("gate kinds keep their first order, each once, and are stored as the list JSON writes")
    func gateKinds() throws {
        var kinds = GateKinds()
        for kind in [GateKind.traffic, .promotion, .traffic, .rollback, .shared, .rollout, .promotion] {
            kinds.append(kind)
        }
        #expect(Array(kinds) == [.traffic, .promotion, .rollback, .shared, .rollout])
        #expect(kinds.count == 5 && kinds.contains(.rollout) && !GateKinds().contains(.rollout))
        #expect(kinds.stored == .text(#"["traffic","promotion","rollback","shared","rollout"]"#))
        #expect(try GateKinds(stored: kinds.stored) == kinds)
        #expect(try GateKinds(stored: .null).isEmpty)
        #expect(GateKind.allCases.map(\.position) == Array(GateKind.allCases.indices), "one order of kinds")
    }

    @Test("the fields few canaries have read back as set, and unset ones compare equal to never set")
    func seldomFields() throws {
        let id = try CanaryID(namespace: "test", name: "podinfo")
        var canary = Canary(id: id)
        canary.requestedBy = ["ci"]
        canary.queuedAt = Date(timeIntervalSince1970: 1)
        #expect(canary.requestedBy == ["ci"] && canary.queuedAt == Date(timeIntervalSince1970: 1))
        #expect(canary.labels == CanaryLabels() && canary.overrides.isEmpty && canary.requestedAt == nil)
        #expect(canary != Canary(id: id))
        canary.requestedBy = []
        canary.queuedAt = nil
        #expect(canary == Canary(id: id))
    }
}
