import Foundation
import GatehouseClient
import GatehouseServer
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Runs the real service on 127.0.0.1 (port 0) over a temporary SQLite file and hands the test its URL.
func withLiveServer<Value: Sendable>(
    accessFile: String? = nil, policyFile: String? = nil, databasePath: String? = nil,
    _ test: @Sendable (URL) async throws -> Value
) async throws -> Value {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
        "gatehouse-client-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    var arguments = ServerArguments()
    arguments.host = "127.0.0.1"
    arguments.port = 0
    arguments.databasePath = databasePath ?? directory.appendingPathComponent("gatehouse.sqlite").path
    if let accessFile {
        let path = directory.appendingPathComponent("access.yaml").path
        try accessFile.write(toFile: path, atomically: true, encoding: .utf8)
        arguments.accessFile = path
    }
    if let policyFile {
        let path = directory.appendingPathComponent("policy.yaml").path
        try policyFile.write(toFile: path, atomically: true, encoding: .utf8)
        arguments.policyFile = path
    }
    var logger = Logger(label: "gatehouse-client-test")
    logger.logLevel = .warning
    let app = try await buildApplication(arguments, logger: logger)
    return try await app.test(.live) { client in
        let port = try #require(client.port)
        return try await test(URL(string: "http://127.0.0.1:\(port)")!)
    }
}

/// Sends what Flagger would send to one of its hooks.
func flagger(
    _ server: URL, _ hook: String, name: String = "podinfo", phase: String, checksum: String, message: String? = nil
)
    async throws -> Int
{
    var request = URLRequest(url: server.appendingPathComponent("v1/flagger/\(hook)"))
    request.httpMethod = "POST"
    let metadata = message.map { #", "metadata": {"eventMessage": "\#($0)", "eventType": "Normal"}"# } ?? ""
    request.httpBody = Data(
        #"{"name": "\#(name)", "namespace": "test", "phase": "\#(phase)", "checksum": "\#(checksum)"\#(metadata)}"#.utf8
    )
    let (_, response) = try await URLSession.shared.data(for: request)
    return (response as? HTTPURLResponse)?.statusCode ?? 0
}

/// A TCP listener on 127.0.0.1 that accepts connections and never answers, for timeout tests.
final class SilentListener: Sendable {
    let port: Int
    private let descriptor: Int32

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.descriptor = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && listen(descriptor, 16) == 0
                    && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }
}

/// How many times the service was asked for one canary (`gatehouse wait` polls that way).
func canaryPolls(_ server: URL) async throws -> Int {
    let (data, _) = try await URLSession.shared.data(from: server.appendingPathComponent("metrics"))
    return String(decoding: data, as: UTF8.self).split(separator: "\n").filter {
        $0.hasPrefix("gatehouse_http_requests_total{") && $0.contains(#"route="/v1/canaries/{namespace}/{name}""#)
            && $0.contains(#"method="GET""#)
    }.compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0) { $0 + Int($1) }
}

/// Waits (at most 30 seconds) until the service has been asked for one canary more than `count` times.
func waitForPolls(_ server: URL, beyond count: Int) async throws {
    for _ in 0..<300 {
        if try await canaryPolls(server) > count { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    Issue.record("the waits did not poll the service within 30 seconds")
}
