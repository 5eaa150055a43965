import GatehouseCore
import Testing

@testable import GatehouseStore

@Suite("Lists stored as JSON text")
struct StoredListTests {
    @Test(
        "a list reads back as it was written, whatever its strings hold",
        arguments: [
            [], [""], ["alice"], ["alice", "bob"], ["a\",\"b", "c"], ["quote \" inside"], ["back\\slash"],
            ["comma, space", "ünïcode ✓"], ["", "", "x"], ["[\"", "\"]"],
        ] as [[String]])
    func strings(_ list: [String]) throws {
        #expect(try [String](stored: list.stored) == list)
    }

    @Test("gate kinds read back; text a decoder would refuse is refused, not misread")
    func gateKinds() throws {
        let kinds: [GateKind] = [.rollout, .traffic, .promotion]
        #expect(try [GateKind](stored: kinds.stored) == kinds)
        #expect(try [GateKind](stored: .text(#"[ "rollout" ]"#)) == [.rollout], "other spacing goes to the decoder")
        #expect(throws: (any Error).self) { try [GateKind](stored: .text(#"["rollout","nonsense"]"#)) }
        #expect(throws: (any Error).self) { try [String](stored: .text(#"["unterminated]"#)) }
        #expect(try [String](stored: .null) == [])
    }
}
