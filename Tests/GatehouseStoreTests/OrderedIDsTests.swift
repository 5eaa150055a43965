import GatehouseCore
import Testing

@testable import GatehouseStore

@Suite("Canary ids kept in order for pages")
struct OrderedIDsTests {
    /// A small deterministic generator, so that a failure repeats.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state
        }
    }

    @Test("random inserts and removals, across many chunks, page exactly as a sorted list would")
    func matchesSortedList() throws {
        var generator = Generator(state: 42)
        var ordered = OrderedIDs()
        var model = Set<CanaryID>()
        let clusters = ["", "eu-1", "us-2"]
        for step in 0..<20_000 {
            let id = try CanaryID(
                cluster: clusters[Int.random(in: 0..<3, using: &generator)],
                namespace: "ns-\(Int.random(in: 0..<40, using: &generator))",
                name: "app-\(Int.random(in: 0..<400, using: &generator))")
            if Int.random(in: 0..<3, using: &generator) == 0 {
                ordered.remove(id)
                model.remove(id)
            } else {
                ordered.insert(id)
                model.insert(id)
            }
            guard step % 2000 == 1999 else { continue }
            let sorted = model.sorted()
            #expect(ordered.count == sorted.count)
            #expect(Array(ordered.ids(after: nil)) == sorted)
            // A page after any id, and from where an area starts, is the sorted list's.
            for _ in 0..<20 {
                let after = sorted.randomElement(using: &generator)
                #expect(Array(ordered.ids(after: after).prefix(50)) == Array(sorted.filter { $0 > after! }.prefix(50)))
                let area = Area(cluster: "eu-1", namespace: "ns-\(Int.random(in: 0..<40, using: &generator))")
                let start = try #require(CanaryID.lowerBound(of: area))
                let inArea = Array(ordered.ids(after: nil, from: start).prefix { !$0.isPast(area) })
                #expect(inArea == sorted.filter { area.contains($0) })
            }
        }
    }

    @Test("ids added in order (as a load adds them) fill whole chunks, and inserts among them still keep the order")
    func loadedInOrder() throws {
        var generator = Generator(state: 9)
        func id(_ number: Int) throws -> CanaryID {
            let digits = String(number)
            return try CanaryID(
                namespace: "ns", name: "app-" + String(repeating: "0", count: 5 - digits.count) + digits)
        }
        var ordered = OrderedIDs()
        var model = Set<CanaryID>()
        for index in 0..<(3 * OrderedIDs.chunkSize + 7) {
            ordered.insert(try id(index * 2))
            model.insert(try id(index * 2))
        }
        #expect(Array(ordered.ids(after: nil)) == model.sorted())
        #expect(ordered.chunkLengths == [OrderedIDs.chunkSize, OrderedIDs.chunkSize, OrderedIDs.chunkSize, 7])
        for _ in 0..<2_000 {
            let some = try id(Int.random(in: 0..<4_000, using: &generator))
            if Bool.random(using: &generator) {
                ordered.insert(some)
                model.insert(some)
            } else {
                ordered.remove(some)
                model.remove(some)
            }
        }
        #expect(Array(ordered.ids(after: nil)) == model.sorted())
        #expect(ordered.count == model.count)
    }
}
