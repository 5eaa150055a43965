import Foundation
import HTTPTypes
import Testing

/// One malformed request and what it must get back.
struct BadRequest: Sendable, CustomTestStringConvertible {
    var method: HTTPRequest.Method
    var path: String
    var body: String?
    var status: HTTPResponse.Status
    var message: String

    var testDescription: String { "\(method) \(path) \(body ?? "") → \(status.code)" }
}

@Suite("Bad input gets a clear 4xx and changes nothing", .timeLimit(.minutes(3)))
struct BadInputTests {
    static let cases: [BadRequest] = [
        BadRequest(
            method: .post, path: "/v1/flagger/confirm-rollout", body: "{\"name\":", status: .badRequest,
            message: "the request body is not valid JSON"),
        BadRequest(
            method: .post, path: "/v1/flagger/confirm-rollout", body: "[1, 2]", status: .badRequest,
            message: "the request body must be a JSON object"),
        BadRequest(
            method: .post, path: "/v1/flagger/confirm-rollout", body: nil, status: .badRequest,
            message: "the request body is empty; send a JSON object"),
        BadRequest(
            method: .post, path: "/v1/flagger/confirm-promotion", body: #"{"name": "podinfo"}"#, status: .badRequest,
            message: "missing field 'namespace'"),
        BadRequest(
            method: .post, path: "/v1/flagger/rollback", body: #"{"name": 5, "namespace": "test"}"#,
            status: .badRequest, message: "field 'name' must be a string"),
        BadRequest(
            method: .post, path: "/v1/flagger/events",
            body: #"{"name": "podinfo", "namespace": "test", "metadata": {"a": 1}}"#, status: .badRequest,
            message: "field 'metadata.a' must be a string"),
        BadRequest(
            method: .post, path: "/v1/flagger/confirm-traffic-increase",
            body: #"{"name": "PodInfo", "namespace": "test"}"#, status: .badRequest,
            message: "name 'PodInfo' is not a valid Kubernetes name"),
        BadRequest(
            method: .post, path: "/gate/check", body: #"{"name": "podinfo", "namespace": "a_b"}"#, status: .badRequest,
            message: "namespace 'a_b' is not a valid Kubernetes name"),
        BadRequest(
            method: .post, path: "/gate/open",
            body: #"{"name": "podinfo", "namespace": "\#(String(repeating: "n", count: 64))"}"#, status: .badRequest,
            message: "is longer than 63 characters"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/deploy/open", body: nil, status: .badRequest,
            message: "unknown gate 'deploy'"),
        BadRequest(
            method: .post, path: "/v1/canaries/Test/podinfo/gates/rollout/open", body: nil, status: .badRequest,
            message: "namespace 'Test' is not a valid Kubernetes name"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/rollout/open", body: #"{"tll": "1h"}"#,
            status: .badRequest, message: "unknown field 'tll'"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/rollout/open", body: #"{"ttl": "soon"}"#,
            status: .badRequest, message: "ttl 'soon' is not a duration"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/rollout/open", body: #"{"ttl": 60}"#,
            status: .badRequest, message: "field 'ttl' must be a string"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/rollout/open", body: #"{"expiresAt": "friday"}"#,
            status: .badRequest, message: "expiresAt 'friday' is not an RFC 3339 time"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/rollout/open",
            body: #"{"expiresAt": "2001-01-01T00:00:00Z"}"#, status: .badRequest, message: "is in the past"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/rollout/open",
            body: #"{"ttl": "1h", "expiresAt": "2099-01-01T00:00:00Z"}"#, status: .badRequest,
            message: "give either ttl or expiresAt, not both"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/traffic/open", body: #"{"steps": 0}"#,
            status: .badRequest, message: "steps must be a whole number from 1 to 10000"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/traffic/open", body: #"{"steps": 1.5}"#,
            status: .badRequest, message: "a number must be whole and written without a fraction or exponent"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/traffic/open", body: #"{"steps": 1.0}"#,
            status: .badRequest, message: "a number must be whole and written without a fraction or exponent"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/traffic/open", body: #"{"steps": 1e0}"#,
            status: .badRequest, message: "a number must be whole and written without a fraction or exponent"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/traffic/open", body: #"{"steps": 1, "steps": 5}"#,
            status: .badRequest, message: "the field 'steps' appears twice"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/rollout/open", body: #"{"reason": "x",}"#,
            status: .badRequest, message: "the request body is not valid JSON: a field name in double quotes expected"),
        BadRequest(
            method: .post, path: "/v1/freezes", body: #"{"reason": "x"} {}"#, status: .badRequest,
            message: "the request body is not valid JSON: unexpected text after the JSON value"),
        BadRequest(
            method: .post, path: "/v1/flagger/confirm-rollout",
            body: #"{"name": "other", "name": "podinfo", "namespace": "test"}"#, status: .badRequest,
            message: "the field 'name' appears twice"),
        BadRequest(
            method: .post, path: "/gate/open", body: #"{"name": "podinfo", "namespace": "test",}"#,
            status: .badRequest, message: "the request body is not valid JSON"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/traffic/open", body: #"{"steps": "3"}"#,
            status: .badRequest, message: "steps must be a whole number from 1 to 10000, or \"rest\""),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/rollout/open", body: #"{"ttl": "0.0000001s"}"#,
            status: .badRequest, message: "ttl must be at least 1s"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/traffic/open",
            body: #"{"steps": "rest", "sticky": true}"#,
            status: .badRequest, message: "cannot be sticky"),
        BadRequest(
            method: .trace, path: "/v1/canaries/test/podinfo/gates/traffic/open", body: nil,
            status: .methodNotAllowed, message: "TRACE is not allowed here"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/promotion/open", body: #"{"steps": 3}"#,
            status: .badRequest, message: "steps applies only to the traffic gate"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/promotion/open", body: #"{"sticky": "yes"}"#,
            status: .badRequest, message: "field 'sticky' must be true or false"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/rollout/open",
            body: #"{"reason": "\#(String(repeating: "r", count: 1025))"}"#, status: .badRequest,
            message: "reason is longer than 1024 characters"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/rollback", body: nil, status: .conflict,
            message: "is not known to be in a rollout"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/rollback", body: #"{"sticky": true}"#, status: .badRequest,
            message: "a rollback request cannot be sticky"),
        BadRequest(
            method: .post, path: "/v1/canaries/test/podinfo/gates/rollout/close", body: #"{"why": "x"}"#,
            status: .badRequest, message: "unknown field 'why'"),
        BadRequest(
            method: .post, path: "/v1/freezes", body: #"{"namespace": "test"}"#, status: .badRequest,
            message: "missing field 'reason'"),
        BadRequest(
            method: .post, path: "/v1/freezes", body: #"{"reason": "  "}"#, status: .badRequest,
            message: "a reason is required"),
        BadRequest(
            method: .post, path: "/v1/freezes", body: #"{"reason": "x", "for": "forever"}"#, status: .badRequest,
            message: "for 'forever' is not a duration"),
        BadRequest(
            method: .delete, path: "/v1/freezes/abc", body: nil, status: .badRequest,
            message: "a freeze id is a positive whole number"),
        BadRequest(
            method: .delete, path: "/v1/freezes/42", body: nil, status: .notFound, message: "there is no freeze 42"),
        BadRequest(
            method: .get, path: "/v1/canaries/test/unknown", body: nil, status: .notFound,
            message: "canary test/unknown is not known"),
        BadRequest(
            method: .get, path: "/v1/events?limit=0", body: nil, status: .badRequest,
            message: "limit must be a whole number from 1 to 500"),
        BadRequest(
            method: .get, path: "/v1/events?before=x", body: nil, status: .badRequest,
            message: "before must be a positive event id"),
        BadRequest(
            method: .get, path: "/v1/nothing", body: nil, status: .notFound, message: "there is no GET /v1/nothing"),
        BadRequest(
            method: .get, path: "/v1/flagger/confirm-rollout", body: nil, status: .methodNotAllowed,
            message: "GET is not allowed here; use POST"),
        BadRequest(
            method: .get, path: "/gate/check", body: nil, status: .methodNotAllowed,
            message: "GET is not allowed here; use POST"),
        BadRequest(
            method: .put, path: "/gate/approve", body: nil, status: .methodNotAllowed,
            message: "PUT is not allowed here; use POST"),
        BadRequest(
            method: .delete, path: "/v1/canaries", body: nil, status: .methodNotAllowed,
            message: "DELETE is not allowed here; use GET"),
        BadRequest(
            method: .get, path: "/v1/canaries/test/podinfo/gates/rollout/open", body: nil, status: .methodNotAllowed,
            message: "use POST"),
        BadRequest(
            method: .post, path: "/v1/flagger/confirm-rollout",
            body: #"{"name": "podinfo", "namespace": "test", "pad": "\#(String(repeating: "x", count: 70_000))"}"#,
            status: .contentTooLarge, message: "the request body is larger than 64 KiB"),
    ]

    @Test("HEAD is answered as GET is, without the body; where GET is not served, 405")
    func head() async throws {
        try await TestServer().run { client in
            let get = try await client.send(.get, "/healthz", body: nil)
            let head = try await client.send(.head, "/healthz", body: nil)
            #expect(head.status == .ok)
            #expect(head.text.isEmpty)
            #expect(head.headers[.contentLength] == get.headers[.contentLength])
            #expect(try await client.send(.head, "/v1/canaries", body: nil).status == .ok)
            let post = try await client.send(.head, "/v1/canaries/test/podinfo/gates/rollout/open", body: nil)
            #expect(post.status == .methodNotAllowed)
        }
    }

    @Test("refused with one sentence, and nothing is created or changed", arguments: cases)
    func refused(_ bad: BadRequest) async throws {
        try await TestServer().run { client in
            let reply = try await client.send(bad.method, bad.path, body: bad.body)
            #expect(reply.status == bad.status)
            let message: String
            if bad.path.hasPrefix("/v1/flagger/") || bad.path.hasPrefix("/gate/") {
                message = reply.text
                #expect(reply.headers[.contentType]?.hasPrefix("text/plain") == true)
            } else {
                let object = try reply.json()
                message = try #require(object["message"] as? String)
                #expect(object["error"] is String)
            }
            #expect(message.contains(bad.message), "got: \(message)")
            // One sentence on one line, ended by a newline (plain-text answers).
            #expect(!message.dropLast(message.hasSuffix("\n") ? 1 : 0).contains("\n"))
            if reply.status == .methodNotAllowed { #expect(reply.headers[.allow] != nil) }

            let canaries = try await client.get("/v1/canaries").json()["canaries"] as? [Any]
            #expect(canaries?.isEmpty == true, "a refused request must not create a canary")
            let events = try await client.get("/v1/events").json()["events"] as? [Any]
            #expect(events?.isEmpty == true, "a refused request must not write the audit trail")
        }
    }

    @Test("a bad request leaves an existing gate exactly as it was")
    func unchangedGate() async throws {
        try await TestServer().run { client in
            _ = try await client.post("/v1/canaries/test/podinfo/gates/traffic/open", #"{"steps": 2, "reason": "two"}"#)
            let before = try await client.get("/v1/canaries/test/podinfo").text
            for body in [#"{"steps": -1}"#, #"{"ttl": "x"}"#, #"{"steps": 2, "extra": true}"#, "nope"] {
                #expect(
                    try await client.post("/v1/canaries/test/podinfo/gates/traffic/open", body).status == .badRequest)
            }
            #expect(try await client.get("/v1/canaries/test/podinfo").text == before)
        }
    }

    @Test("Flagger's payload may carry fields Gatehouse does not know")
    func unknownFlaggerFields() async throws {
        try await TestServer().run { client in
            let reply = try await client.post(
                "/v1/flagger/confirm-rollout",
                #"{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "c1", "metadata": {"k": "v"}, "newField": {"x": [1]}}"#
            )
            #expect(reply.status == .forbidden)
        }
    }
}
