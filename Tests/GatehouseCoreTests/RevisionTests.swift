import Foundation
import GatehouseCore
import Testing

@Suite("Revisions: one spelling of none")
struct RevisionTests {
    @Test("an absent or empty checksum is no revision; any other names one")
    func none() {
        // Through a variable: in tests a literal makes a revision directly (RevisionLiteral.swift).
        let (empty, checksum): (String?, String?) = ("", "85d557f47b")
        #expect(Revision(nil) == nil)
        #expect(Revision(empty) == nil)
        #expect(Revision(checksum)?.text == "85d557f47b")
    }

    @Test("Flagger's payload with an empty checksum (an old Flagger's) carries no revision")
    func emptyInPayload() throws {
        let bytes = Array(#"{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": ""}"#.utf8)
        let payload = try #require(bytes.withUnsafeBytes { FlaggerPayload(plainJSON: $0) })
        #expect(payload.checksum == nil)
        // The same through JSONDecoder, which reads what the fast reader leaves (nulls, other fields).
        let decoded = try JSONDecoder().decode(
            FlaggerPayload.self, from: Data(#"{"name": "p", "namespace": "t", "checksum": "", "metadata": null}"#.utf8))
        #expect(decoded.checksum == nil)
    }

    @Test("a once-gate used by a call that named no revision is bound all the same")
    func unnamedBinding() throws {
        #expect(Revision.Binding(nil) == .unnamed)
        #expect(Revision.Binding("c1" as Revision) == .revision("c1"))
        #expect(Revision.Binding.unnamed.description == "(no checksum)")
        let encoded = try JSONEncoder().encode([Revision.Binding.unnamed, .revision("c1")])
        #expect(String(decoding: encoded, as: UTF8.self) == #"["","c1"]"#)
        #expect(try JSONDecoder().decode([Revision.Binding].self, from: encoded) == [.unnamed, .revision("c1")])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([Revision].self, from: Data(#"[""]"#.utf8)) }
    }
}
