import GatehouseCore
import Testing

@Suite("Request bodies are strict JSON", .timeLimit(.minutes(3)))
struct StrictJSONTests {
    @Test(
        "what RFC 8259 allows is accepted",
        arguments: [
            #"{}"#, #" { "a" : [ ] } "#, #"{"a": "\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}"#,
            #"[1, -2, 0, true, false, null]"#,
            #"{"a": {"b": {"c": [{"d": "e"}]}}}"#, #""plain""#, "{\"é\": \"ü\"}",
        ])
    func accepted(_ text: String) throws {
        try StrictJSON.validate(Array(text.utf8))
    }

    @Test(
        "what it does not is refused with the reason",
        arguments: [
            (#"{"a": 1,}"#, "a trailing comma?"), (#"[1,]"#, "a trailing comma?"),
            (#"{"a": 1} x"#, "after the JSON value"),
            (#"{"a": 1, "a": 2}"#, "'a' appears twice"), (#"{"\u0061": 1, "a": 2}"#, "'a' appears twice"),
            (#"{"a": 01}"#, "leading zero"), (#"{"a": 1.}"#, "a digit expected after '.'"),
            (#"{'a': 1}"#, "double quotes"),
            (#"{"a": "\x"}"#, "an unknown escape"), (#"{"a": "\ud800"}"#, "a lone surrogate"),
            ("{\"a\": \"\u{01}\"}", "control character"),
            (#"{"a": NaN}"#, "unexpected character"), (#"{"a": tru}"#, "unexpected character"),
            (#"{"a": "x"#, "ends inside a string"),
            ("", "ends where a value belongs"),
            (String(repeating: "[", count: 65) + String(repeating: "]", count: 65), "nested too deeply"),
        ])
    func refused(_ text: String, reason: String) {
        #expect {
            try StrictJSON.validate(Array(text.utf8))
        } throws: { error in
            (error as? InvalidInput)?.message.contains(reason) == true
        }
    }

    @Test("a fraction or exponent is refused where whole numbers belong, and read where any number may")
    func numbers() throws {
        for text in [#"{"steps": 1.0}"#, #"{"steps": 1e0}"#, #"{"steps": 2E+1}"#] {
            #expect(throws: InvalidInput.self) { try StrictJSON.validate(Array(text.utf8)) }
            try StrictJSON.validate(Array(text.utf8), numbers: .any)
        }
        try StrictJSON.validate(Array(#"{"steps": -12}"#.utf8))
    }
}
