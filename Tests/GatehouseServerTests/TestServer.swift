import Foundation
import GatehouseServer
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore

/// A Gatehouse service on a temporary SQLite file, built exactly as `gatehouse serve` builds it.
final class TestServer: Sendable {
    let directory: URL
    let arguments: ServerArguments

    init(_ adjust: (inout ServerArguments) -> Void = { _ in }) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "gatehouse-server-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var arguments = ServerArguments()
        arguments.host = "127.0.0.1"
        arguments.port = 0
        arguments.databasePath = directory.appendingPathComponent("gatehouse.sqlite").path
        arguments.storageTimeout = 5
        arguments.maintenanceInterval = 3600
        adjust(&arguments)
        self.arguments = arguments
    }

    /// Runs `test` against the service: `.router` calls the router directly, `.live` speaks HTTP on 127.0.0.1.
    func run<Value: Sendable>(_ setup: TestingSetup = .live, _ test: @Sendable (Client) async throws -> Value)
        async throws -> Value
    {
        var logger = Logger(label: "gatehouse-test")
        logger.logLevel = .warning
        let app = try await buildApplication(arguments, logger: logger)
        return try await app.test(setup) { client in try await test(Client(client: client)) }
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A thin wrapper over Hummingbird's test client with the calls the tests make.
struct Client: Sendable {
    let client: any TestClientProtocol

    struct Reply: Sendable {
        var status: HTTPResponse.Status
        var text: String
        var headers: HTTPFields

        /// The body as a JSON object.
        func json() throws -> [String: Any] {
            guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                throw CocoaError(.coderReadCorrupt)
            }
            return object
        }
    }

    func send(_ method: HTTPRequest.Method, _ path: String, body: String? = nil, headers: HTTPFields = [:]) async throws
        -> Reply
    {
        let response = try await client.execute(
            uri: path, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
        return Reply(status: response.status, text: String(buffer: response.body), headers: response.headers)
    }

    func post(_ path: String, _ body: String? = nil) async throws -> Reply {
        try await send(.post, path, body: body)
    }

    func get(_ path: String) async throws -> Reply {
        try await send(.get, path)
    }

    /// A Flagger webhook call with Flagger's payload.
    func hook(
        _ hook: String, checksum: String, phase: String = "Progressing", name: String = "podinfo",
        namespace: String = "test"
    ) async throws
        -> Reply
    {
        let path = hook == "event" ? "/v1/flagger/events" : "/v1/flagger/\(hook)"
        return try await post(
            path,
            #"{"name": "\#(name)", "namespace": "\#(namespace)", "phase": "\#(phase)", "checksum": "\#(checksum)"}"#)
    }
}
