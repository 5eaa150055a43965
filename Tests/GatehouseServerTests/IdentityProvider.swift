import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// A real OpenID provider on 127.0.0.1 (`Fixtures/oidc-provider.py`, built with Authlib), started
/// for one test and stopped with it: it exits when the pipe to its standard input closes, so it
/// never outlives the test process.
final class IdentityProvider: Sendable {
    /// Its issuer URL, as its tokens name it.
    let issuer: String
    static let clientID = "gatehouse-dashboard"
    static let clientSecret = "dashboard-secret"
    private let pid: pid_t
    private let input: Int32

    /// Starts the provider on a thread of its own — never on the concurrency pool, whose few
    /// threads every live server of the test process needs while Python starts and makes its keys.
    static func started() async throws -> IdentityProvider {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try IdentityProvider() }) }
        }
    }

    /// Starts the provider, blocking until it says where it listens (at most 60 s; the test then
    /// fails, never hangs). Call `started()` from async code.
    private init() throws {
        let script = try #require(Bundle.module.url(forResource: "Fixtures/oidc-provider", withExtension: "py"))
        var stdin: [Int32] = [0, 0]
        var stdout: [Int32] = [0, 0]
        guard pipe(&stdin) == 0, pipe(&stdout) == 0 else { throw POSIXError(.EMFILE) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdout[1], 1)
        for descriptor in stdin + stdout { posix_spawn_file_actions_addclose(&actions, descriptor) }
        let arguments = ["python3", script.path]
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t()
        var none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid = pid_t()
        let spawned = posix_spawnp(&pid, "python3", &actions, &attributes, argv, envp)
        close(stdin[0])
        close(stdout[1])
        defer { close(stdout[0]) }
        guard spawned == 0 else {
            close(stdin[1])
            throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EIO)
        }
        self.pid = pid
        input = stdin[1]
        // Its first line, "PORT <n>", waited for with a bound.
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while !line.contains(UInt8(ascii: "\n")) {
            var polled = pollfd(fd: stdout[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&polled, 1, 60_000)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0, read(stdout[0], &byte, 1) == 1 else { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("PORT "), let port = Int(text.dropFirst(5)) else {
            Self.stop(pid: pid, input: input)
            throw NotStarted(
                message:
                    "the OpenID provider did not start (python3 with Authlib is needed: pip install authlib); it said '\(text)'"
            )
        }
        issuer = "http://127.0.0.1:\(port)"
    }

    deinit { Self.stop(pid: pid, input: input) }

    private static func stop(pid: pid_t, input: Int32) {
        close(input)
        kill(pid, SIGTERM)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    /// Who the next sign-in at the provider is.
    func signInAs(_ email: String, groups: [String] = []) async throws {
        _ = try await call("/test/person", ["sub": "sub-\(email)", "email": email, "groups": groups])
    }

    /// An ID token for a workload, as a CI system issues it: `claims` added to iss, iat and exp.
    func mint(_ claims: [String: Any], expiresIn: Int = 300, unpublishedKey: Bool = false) async throws -> String {
        var request = claims
        request["expires_in"] = expiresIn
        if unpublishedKey { request["sign_with"] = "unpublished" }
        return try #require(try await call("/test/mint", request)["token"] as? String)
    }

    /// A new signing key, published beside the old.
    func rotateKey() async throws { _ = try await call("/test/rotate", [:]) }

    /// How often its key set was fetched.
    func keySetFetches() async throws -> Int {
        try #require(try await call("/test/stats", nil)["jwks"] as? Int)
    }

    /// The provider's answer to the browser's visit of `url`, without following its redirect.
    func visit(_ url: String) async throws -> (status: Int, location: String?) {
        let session = URLSession(configuration: .ephemeral, delegate: NoRedirects(), delegateQueue: nil)
        let (_, response) = try await session.data(from: try #require(URL(string: url)))
        let http = try #require(response as? HTTPURLResponse)
        return (http.statusCode, http.value(forHTTPHeaderField: "Location"))
    }

    private func call(_ path: String, _ body: [String: Any]?) async throws -> [String: Any] {
        var request = URLRequest(url: try #require(URL(string: issuer + path)), timeoutInterval: 30)
        if let body {
            request.httpMethod = "POST"
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
        }
        let (data, _) = try await URLSession.shared.data(for: request)
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}

/// Why the provider did not start, in one sentence (the test fails with it).
struct NotStarted: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Lets a test see a redirect instead of following it.
private final class NoRedirects: NSObject, URLSessionTaskDelegate, Sendable {
    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}
