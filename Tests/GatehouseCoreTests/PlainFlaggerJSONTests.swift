import Foundation
import GatehouseCore
import Testing

/// `FlaggerPayload(plainJSON:)` must read what JSONDecoder reads, or nothing at all.
@Suite("Flagger's payload read without JSONDecoder", .timeLimit(.minutes(3)))
struct PlainFlaggerJSONTests {
    /// Payloads as Flagger sends them, which must be read without JSONDecoder.
    static let flaggerPayloads = [
        #"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"6c5d8f7c9b","metadata":{"key1":"val1"}}"#,
        #"{"name":"podinfo","namespace":"test","phase":"Waiting","checksum":"6c5d8f7c9b"}"#,
        #"{"name": "podinfo", "namespace": "test", "phase": "Succeeded", "checksum": "85d557f47b", "metadata": {"eventMessage": "Promotion completed! Scaling down podinfo.test", "eventType": "Normal", "timestamp": "1700000000000"}}"#,
        #"{"name":"podinfo","namespace":"test"}"#,
        "{\n  \"name\": \"podinfo\",\n  \"namespace\": \"test\",\n  \"metadata\": {}\n}\n",
        #"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"c1","newField":"added by a later Flagger"}"#,
        #"{"name":"","namespace":"test"}"#,
        #"{"name":"podinfo","namespace":"test","phase":"SomeFuturePhase"}"#,
    ]

    /// Payloads it must leave to JSONDecoder: valid or not, they are not of the plain shape.
    static let otherPayloads = [
        "", " ", "{", "}", "[]", "null", "\"podinfo\"", "{}", #"{"name":"podinfo"}"#,
        #"{"name":"pod\"info","namespace":"test"}"#, #"{"name":"pod\u0069nfo","namespace":"test"}"#,
        #"{"name":"podinfo","namespace":"tëst"}"#, #"{"name":"podinfo","namespace":"test","weight":10}"#,
        #"{"name":"podinfo","namespace":"test","phase":null}"#,
        #"{"name":"podinfo","namespace":"test","metadata":null}"#,
        #"{"name":"podinfo","namespace":"test","metadata":{"k":1}}"#,
        #"{"name":"podinfo","namespace":"test","metadata":{"k":{"nested":"v"}}}"#,
        #"{"name":"podinfo","namespace":"test","metadata":"k=v"}"#,
        #"{"name":"podinfo","namespace":"test","metadata":{"k":"v"},"metadata":{"k":"w"}}"#,
        #"{"name":"podinfo","namespace":"test","metadata":{"k":"v","k":"w"}}"#,
        #"{"name":"podinfo","name":"other","namespace":"test"}"#,
        #"{"name":"podinfo","namespace":"test",}"#, #"{"name":"podinfo","namespace":"test"} x"#,
        #"{"name":"podinfo","namespace":"test"}{}"#, #"{"name":"podinfo" "namespace":"test"}"#,
        #"{"name":"podinfo","namespace":"test","tags":["a"]}"#, #"{"name":"podinfo","namespace":"test","ok":true}"#,
        "{\"name\":\"pod\tinfo\",\"namespace\":\"test\"}", "\u{FEFF}{\"name\":\"podinfo\",\"namespace\":\"test\"}",
        #"{"name":"podinfo","namespace":5}"#, #"{name:"podinfo","namespace":"test"}"#,
    ]

    @Test("Flagger's payloads are read, and read as JSONDecoder reads them", arguments: flaggerPayloads)
    func readsFlaggerPayloads(_ json: String) throws {
        let expected = try JSONDecoder().decode(FlaggerPayload.self, from: Data(json.utf8))
        #expect(Self.plain(json) == expected)
    }

    @Test("anything else is left to JSONDecoder", arguments: otherPayloads)
    func leavesTheRest(_ json: String) {
        #expect(Self.plain(json) == nil)
    }

    @Test("on thousands of damaged payloads it never reads what JSONDecoder does not, nor reads it otherwise")
    func agreesOnDamagedPayloads() {
        var random = SplitMix64(seed: 20_261_122)
        let alphabet = Array(#"{}[]:,"\ azAZ09.-_ntfrue"#.utf8) + [0x00, 0x09, 0x0A, 0x7F, 0xC3, 0xA9]
        var read = 0
        for _ in 0..<20_000 {
            var bytes = Array(Self.flaggerPayloads.randomElement(using: &random)!.utf8)
            for _ in 0..<Int.random(in: 1...3, using: &random) where !bytes.isEmpty {
                let at = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes.remove(at: at)
                case 1: bytes.insert(alphabet.randomElement(using: &random)!, at: at)
                default: bytes[at] = alphabet.randomElement(using: &random)!
                }
            }
            let plain = bytes.withUnsafeBytes(FlaggerPayload.init(plainJSON:))
            let decoded = try? JSONDecoder().decode(FlaggerPayload.self, from: Data(bytes))
            if let plain {
                read += 1
                #expect(plain == decoded, "\(String(decoding: bytes, as: UTF8.self))")
            }
        }
        #expect(read > 1_000, "most damage that keeps the shape is still read: \(read)")
    }

    private static func plain(_ json: String) -> FlaggerPayload? {
        Array(json.utf8).withUnsafeBytes(FlaggerPayload.init(plainJSON:))
    }
}

/// A small seeded generator, so a failure can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
