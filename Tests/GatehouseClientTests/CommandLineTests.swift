import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the built `gatehouse` binary, as a user or a CI job would.
struct Gatehouse {
    struct Result {
        var status: Int32
        var output: String
        var errors: String
    }

    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("gatehouse")
    }

    static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> Result {
        let binary = Self.binary
        try #require(
            FileManager.default.isExecutableFile(atPath: binary.path),
            "build the gatehouse product first (swift test builds it)")
        return try await program(binary.path, arguments, environment: environment)
    }

    /// Runs another program (a terminal multiplexer, `timeout`) to its end, as `run` runs gatehouse.
    static func program(_ path: String, _ arguments: [String], environment: [String: String] = [:]) async throws
        -> Result
    {
        let environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        // posix_spawn on a thread of its own, not Foundation's Process: on this toolchain its run()
        // over-reads /proc/self/fd entries and crashes now and then (swift-corelibs-foundation #5472).
        return try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Swift.Result { try spawn(path, arguments, environment: environment) })
            }
        }
    }

    /// Runs the program to its end, collecting what it writes to stdout and stderr.
    static func spawn(_ path: String, _ arguments: [String], environment: [String: String]) throws -> Result {
        var output: [Int32] = [0, 0]
        var errors: [Int32] = [0, 0]
        guard pipe(&output) == 0, pipe(&errors) == 0 else { throw POSIXError(.EMFILE) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        for descriptor in output + errors { posix_spawn_file_actions_addclose(&actions, descriptor) }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        // The child starts with every signal's default action and none blocked, as from a shell: the
        // test process ignores some (its services handle SIGTERM and SIGINT themselves), and a child
        // inheriting that would outlive the terminal it ran in (SIGHUP ignored).
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
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        close(output[1])
        close(errors[1])
        defer {
            close(output[0])
            close(errors[0])
        }
        guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EIO) }
        // Both pipes are read together, so that a child filling one cannot block on it.
        var collected: [Int32: [UInt8]] = [output[0]: [], errors[0]: []]
        var open = [output[0], errors[0]]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            var polled = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard poll(&polled, nfds_t(polled.count), -1) >= 0 || errno == EINTR else { break }
            for entry in polled where entry.revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    collected[entry.fd, default: []] += buffer[0..<count]
                } else if count == 0 || errno != EINTR {
                    open.removeAll { $0 == entry.fd }
                }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(
            status: exited, output: String(decoding: collected[output[0]] ?? [], as: UTF8.self),
            errors: String(decoding: collected[errors[0]] ?? [], as: UTF8.self))
    }
}

@Suite("The gatehouse CLI against a live service", .timeLimit(.minutes(3)))
struct CommandLineTests {
    @Test("every subcommand, in text and JSON")
    func subcommands() async throws {
        try await withLiveServer { server in
            let global = ["--server", server.absoluteString]
            func gatehouse(_ arguments: String...) async throws -> Gatehouse.Result {
                let result = try await Gatehouse.run(arguments + global, environment: ["USER": "carol"])
                #expect(result.status == 0, "gatehouse \(arguments.joined(separator: " ")): \(result.errors)")
                return result
            }
            #expect(
                try await gatehouse("open", "rollout", "podinfo", "-n", "test", "--reason", "1.4.2", "--ttl", "2h")
                    .output
                    .contains("rollout gate of test/podinfo: open once, 2h left"))
            let steps = try await gatehouse("open", "traffic", "podinfo", "-n", "test", "--steps", "3").output
            #expect(steps.contains("3 steps"))
            #expect(steps.contains("approved the next 3 traffic checks"), "says how many checks it covers")
            let rest = try await gatehouse("open", "traffic", "podinfo", "-n", "test", "--steps", "rest").output
            #expect(rest.contains("approved the rest of the traffic checks of the next rollout"))
            #expect(rest.contains("final check at maximum weight"))
            #expect(
                try await gatehouse("open", "confirm-promotion", "podinfo", "-n", "test", "--sticky").output
                    .contains("open sticky"))
            #expect(
                try await gatehouse("close", "traffic", "podinfo", "-n", "test", "--reason", "hold").output
                    .contains("traffic gate of test/podinfo: closed"))
            #expect(
                try await gatehouse("rollback", "podinfo", "-n", "test", "--force", "--reason", "bad").output
                    .contains("rollback gate of test/podinfo: open once"))

            let table = try await gatehouse("status", "-A").output
            #expect(table.contains("CANARY") && table.contains("test/podinfo") && table.contains("open sticky"))
            let detail = try await gatehouse("status", "podinfo", "-n", "test").output
            #expect(
                detail.contains("Canary:     test/podinfo") && detail.contains("Latest events:")
                    && detail.contains("carol"))
            let elsewhere = try await gatehouse("status", "-n", "other").output
            #expect(
                elsewhere.contains("No canaries in namespace other; 1 in namespace test") && elsewhere.contains("-A"),
                "an empty namespace says where the canaries are: \(elsewhere)")

            let json = try await gatehouse("status", "podinfo", "-n", "test", "--output", "json").output
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            #expect(object["name"] as? String == "podinfo")

            #expect(
                try await gatehouse("events", "podinfo", "-n", "test", "--limit", "2").output.split(separator: "\n")
                    .count == 3)
            let freeze = try await gatehouse("freeze", "-n", "test", "--reason", "quarter end", "--for", "1h").output
            #expect(freeze.contains("freeze 1 set") && freeze.contains("quarter end"))
            #expect(try await gatehouse("freezes").output.contains("quarter end"))
            #expect(try await gatehouse("unfreeze", "1").output.contains("freeze 1 lifted"))
            #expect(try await gatehouse("freezes").output.contains("No freezes in force"))
            let events = try await gatehouse("events", "--output", "json").output
            #expect(try JSONSerialization.jsonObject(with: Data(events.utf8)) is [String: Any])
        }
    }

    @Test(
        "without -n a canary is in the kubeconfig context's namespace, as kubectl has it; --context picks another; options may come before the subcommand"
    )
    func kubeconfigNamespace() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-kube-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let kubeconfig = directory.appendingPathComponent("config").path
        try """
        apiVersion: v1
        kind: Config
        current-context: staging
        contexts:
          - name: staging
            context: {cluster: kind, user: dev, namespace: shop}
          - name: bare
            context: {cluster: kind, user: dev}
        """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        try await withLiveServer { server in
            let environment = ["KUBECONFIG": kubeconfig, "USER": "carol"]
            let opened = try await Gatehouse.run(
                ["open", "rollout", "podinfo", "--server", server.absoluteString], environment: environment)
            #expect(opened.status == 0 && opened.output.contains("rollout gate of shop/podinfo"), "\(opened)")
            #expect(opened.errors.contains("warning: no canary shop/podinfo has called Gatehouse"), "\(opened)")
            let bare = try await Gatehouse.run(
                ["open", "rollout", "podinfo", "--context", "bare", "--server", server.absoluteString],
                environment: environment)
            #expect(bare.status == 0 && bare.output.contains("rollout gate of default/podinfo"), "\(bare)")
            let named = try await Gatehouse.run(
                [
                    "open", "rollout", "podinfo", "-n", "test", "--kubeconfig", kubeconfig, "--server",
                    server.absoluteString,
                ])
            #expect(named.status == 0 && named.output.contains("rollout gate of test/podinfo"), "\(named)")
            let unknown = try await Gatehouse.run(
                ["open", "rollout", "podinfo", "--context", "prod", "--server", server.absoluteString],
                environment: environment)
            #expect(unknown.status != 0 && unknown.errors.contains("has no context prod"), "\(unknown)")
            // As kubectl takes its own: options before the subcommand, in both forms.
            let before = try await Gatehouse.run(
                ["--server", server.absoluteString, "-n", "test", "--output=json", "status", "podinfo"],
                environment: environment)
            #expect(before.status == 0 && before.output.contains(#""namespace":"test""#), "\(before)")
            let beforeNested = try await Gatehouse.run(
                ["--server=\(server.absoluteString)", "--context", "bare", "close", "rollout", "podinfo"],
                environment: environment)
            #expect(
                beforeNested.status == 0 && beforeNested.output.contains("rollout gate of default/podinfo: closed"),
                "\(beforeNested)")
        }
    }

    @Test(
        "as kubectl's plugin without --server, it port-forwards to the Service with the kubeconfig's context, and the forward ends with the command"
    )
    func portForward() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-forward-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // kubectl's plugin is the same binary under the name kubectl-gatehouse.
        let plugin = directory.appendingPathComponent("kubectl-gatehouse").path
        try FileManager.default.createSymbolicLink(atPath: plugin, withDestinationPath: Gatehouse.binary.path)
        // No cluster is reachable here: kubectl is stood in for by a program that forwards for real
        // (Fixtures/kubectl-port-forward.py) to the live service, and records how it was called.
        let forwarder = try #require(
            Bundle.module.url(forResource: "Fixtures/kubectl-port-forward", withExtension: "py"))
        let kubectl = directory.appendingPathComponent("kubectl")
        try "#!/bin/sh\nexec python3 '\(forwarder.path)' \"$@\"\n".write(to: kubectl, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: kubectl.path)
        let record = directory.appendingPathComponent("forward.json").path
        try await withLiveServer { server in
            let port = try #require(server.port)
            let environment = [
                "KUBECTL": kubectl.path, "FORWARD_TARGET": "127.0.0.1:\(port)", "FORWARD_RECORD": record,
                "GATEHOUSE_URL": "", "USER": "carol",
            ]
            let opened = try await Gatehouse.program(
                plugin, ["open", "rollout", "podinfo", "-n", "test", "--context", "prod", "--service", "release/gh"],
                environment: environment)
            #expect(opened.status == 0 && opened.output.contains("rollout gate of test/podinfo"), "\(opened)")
            let called = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: record))) as? [String: Any]
            )
            #expect(
                called["arguments"] as? [String]
                    == [
                        "--context", "prod", "-n", "release", "port-forward", "service/gh", ":80", "--address",
                        "127.0.0.1",
                    ])
            // The forward ended with the command.
            let pid = try #require(called["pid"] as? Int32)
            var gone = false
            for _ in 0..<200 where !gone {
                // Gone, or a zombie left for init to reap.
                let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?
                    .split(separator: ")").last?.split(separator: " ").first
                gone = kill(pid, 0) != 0 || state == "Z"
                if !gone { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(gone, "kubectl port-forward outlived the command")
            // Without a Service to reach, it says what it tried.
            let failing = try await Gatehouse.program(
                plugin, ["status", "-A"], environment: environment.merging(["KUBECTL": "/bin/false"]) { $1 })
            #expect(failing.status == 3 && failing.errors.contains("port-forward service/gatehouse"), "\(failing)")
        }
    }

    @Test("status --watch redraws one view in place in a terminal, and prints a view only when it changes otherwise")
    func watch() async throws {
        try await withLiveServer { server in
            #expect(try await flagger(server, "confirm-promotion", phase: "Progressing", checksum: "c1") == 403)
            // A terminal: tmux, with a server of its own, the view in its one window.
            let tmux = ["-L", "gatehouse-watch-\(UUID().uuidString.prefix(8))"]
            let watch =
                "\(Gatehouse.binary.path) status -n test --watch --interval 0.2s --server \(server.absoluteString)"
            let started = try await Gatehouse.program(
                "/usr/bin/tmux", tmux + ["new-session", "-d", "-x", "160", "-y", "30", watch])
            try #require(started.status == 0, "tmux: \(started.errors)")
            // Ends the view with its terminal, however the test ends (quick: it waits on nothing of ours).
            defer {
                _ = try? Gatehouse.spawn(
                    "/usr/bin/tmux", tmux + ["kill-server"], environment: ProcessInfo.processInfo.environment)
            }
            func screen(showing text: String) async throws -> String {
                var shown = ""
                for _ in 0..<200 where !shown.contains(text) {
                    shown = try await Gatehouse.program("/usr/bin/tmux", tmux + ["capture-pane", "-p"]).output
                    if !shown.contains(text) { try await Task.sleep(for: .milliseconds(50)) }
                }
                return shown
            }
            let waiting = try await screen(showing: "(gate closed)")
            #expect(waiting.contains("test/podinfo") && waiting.contains("promotion for"), "\(waiting)")
            _ = try await Gatehouse.run([
                "open", "promotion", "podinfo", "-n", "test", "--server", server.absoluteString,
            ])
            let opened = try await screen(showing: "open once")
            #expect(opened.contains("gate open: passes at Flagger's next check"), "\(opened)")
            // Redrawn in place: one header and one table on the screen, however many times it was drawn.
            #expect(opened.components(separatedBy: "Every 0.2s:").count == 2, "\(opened)")
            #expect(opened.components(separatedBy: "CANARY").count == 2, "\(opened)")

            // Not a terminal: a view each time the answer changes — here, over 4 s of asking, once (the
            // time is only how long it keeps asking; the first view comes long before, even on a busy machine).
            let piped = try await Gatehouse.program(
                "/usr/bin/timeout",
                [
                    "4", Gatehouse.binary.path, "status", "-n", "test", "--watch", "--interval", "0.1s", "-o", "json",
                    "--server", server.absoluteString,
                ])
            #expect(piped.output.components(separatedBy: #"{"canaries":"#).count == 2, "\(piped.output)")

            // Its reader gone while the view stays the same (so nothing more is written): it ends,
            // and the pipeline with it (timeout, exit 124, only if it kept watching).
            let watcher =
                "\(Gatehouse.binary.path) status -n test --watch --interval 0.1s --server \(server.absoluteString)"
            let reader = try await Gatehouse.program(
                "/usr/bin/timeout", ["20", "/bin/sh", "-c", "\(watcher) | head -c 1 >/dev/null; echo ended"])
            #expect(reader.status == 0 && reader.output == "ended\n", "\(reader)")
        }
    }

    @Test("canaries named NAMESPACE/NAME, CLUSTER/NAMESPACE/NAME or with --cluster; freezes of one cluster")
    func clusters() async throws {
        try await withLiveServer { server in
            let global = ["--server", server.absoluteString]
            func gatehouse(_ arguments: String...) async throws -> Gatehouse.Result {
                try await Gatehouse.run(arguments + global, environment: ["USER": "carol"])
            }
            let opened = try await gatehouse("open", "promotion", "eu-1/test/podinfo", "--sticky")
            #expect(opened.status == 0 && opened.output.contains("promotion gate of eu-1/test/podinfo"), "\(opened)")
            #expect(try await gatehouse("open", "rollout", "test/podinfo").status == 0)
            #expect(try await gatehouse("open", "traffic", "podinfo", "-n", "test", "--cluster", "us-1").status == 0)

            let eu = try await gatehouse("status", "-A", "--cluster", "eu-1").output
            #expect(eu.contains("eu-1/test/podinfo") && !eu.contains("us-1"), "\(eu)")
            let all = try await gatehouse("status", "-A").output
            #expect(all.contains("eu-1/test/podinfo") && all.contains("us-1/test/podinfo"), "\(all)")
            let detail = try await gatehouse("status", "podinfo", "-n", "test", "--cluster", "eu-1").output
            #expect(detail.contains("Canary:     eu-1/test/podinfo"), "\(detail)")

            let conflict = try await gatehouse("status", "eu-1/test/podinfo", "--cluster", "us-1")
            #expect(conflict.status != 0 && conflict.errors.contains("cluster us-1"), "\(conflict)")
            let malformed = try await gatehouse("status", "a/b/c/d")
            #expect(malformed.status != 0 && malformed.errors.contains("NAMESPACE/NAME"), "\(malformed)")

            let freeze = try await gatehouse("freeze", "--all", "--cluster", "eu-1", "--reason", "upgrade")
            #expect(freeze.output.contains("every namespace of cluster eu-1"), "\(freeze)")
            #expect(try await gatehouse("freezes").output.contains("every namespace of cluster eu-1"))
        }
    }

    @Test("policy simulate replays the service's trail, or its database file, and exits 7 when a rule would hold")
    func policySimulate() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("simulate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = directory.appendingPathComponent("g.sqlite").path
        let strict = directory.appendingPathComponent("strict.yaml").path
        try """
        rules:
          - name: two-for-promotion
            gates: [promotion]
            approvals: {count: 2, from: [alice, bob]}
        """.write(toFile: strict, atomically: true, encoding: .utf8)
        let lenient = directory.appendingPathComponent("lenient.yaml").path
        try "rules:\n  - name: one\n    gates: [promotion]\n    approvals: {count: 1, from: [alice]}\n".write(
            toFile: lenient, atomically: true, encoding: .utf8)
        try await withLiveServer(databasePath: database) { server in
            #expect(try await flagger(server, "confirm-promotion", phase: "Progressing", checksum: "r1") == 403)
            let opened = try await Gatehouse.run(
                ["open", "promotion", "podinfo", "-n", "test", "--server", server.absoluteString],
                environment: ["GATEHOUSE_ACTOR": "alice"])
            #expect(opened.status == 0, "\(opened)")
            #expect(try await flagger(server, "confirm-promotion", phase: "Progressing", checksum: "r1") == 200)

            let held = try await Gatehouse.run([
                "policy", "simulate", strict, "--since", "1h", "-o", "json", "--server", server.absoluteString,
            ])
            #expect(held.status == 7, "\(held)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(held.output.utf8)) as? [String: Any])
            let rule = try #require((report["rules"] as? [[String: Any]])?.first)
            let first = try #require((rule["held"] as? [[String: Any]])?.first)
            #expect(rule["rolloutsHeld"] as? Int == 1 && first["canary"] as? String == "test/podinfo")
            #expect((first["unblockedBy"] as? String)?.contains("waiting for one of: bob") == true, "\(first)")

            let fine = try await Gatehouse.run([
                "policy", "simulate", lenient, "--since", "1h", "--server", server.absoluteString,
            ])
            #expect(fine.status == 0 && fine.output.contains("rule one (line 2): would have held nothing"), "\(fine)")
            #expect(fine.output.hasPrefix("Replayed "), "\(fine)")
        }
        // The same answer from the database file alone.
        let offline = try await Gatehouse.run(["policy", "simulate", strict, "--since", "1h", "--database", database])
        #expect(offline.status == 7, "\(offline)")
        #expect(offline.output.contains("test/podinfo rollout r1 promotion gate: held "), "\(offline)")
        #expect(offline.output.contains("could be let go by: 1 of 2 approvals: alice; waiting for one of: bob"))
    }

    @Test("exit codes: refused 2, unreachable 3, timed out 4; one line on stderr")
    func exitCodes() async throws {
        try await withLiveServer { server in
            let refused = try await Gatehouse.run(["rollback", "idle", "-n", "test", "--server", server.absoluteString])
            #expect(refused.status == 2)
            #expect(refused.errors.hasPrefix("gatehouse: test/idle is not known to be in a rollout"))
            #expect(refused.errors.split(separator: "\n").count == 1)
        }
        let unreachable = try await Gatehouse.run(
            ["status", "-A"], environment: ["GATEHOUSE_URL": "http://127.0.0.1:1"])
        #expect(unreachable.status == 3)
        #expect(unreachable.errors.contains("cannot reach the Gatehouse service at http://127.0.0.1:1"))
        let silent = try SilentListener()
        let timedOut = try await Gatehouse.run([
            "status", "-A", "--server", "http://127.0.0.1:\(silent.port)", "--request-timeout", "500ms",
        ])
        #expect(timedOut.status == 4)
    }

    @Test("--token and GATEHOUSE_TOKEN authenticate; the token's name is the actor; no token is refused")
    func token() async throws {
        let generated = try await Gatehouse.run(["token", "generate"])
        let lines = generated.output.split(separator: "\n").map { $0.split(separator: " ").last.map(String.init) ?? "" }
        let (secret, hash) = (lines[0], lines[1])
        let hashed = try await Gatehouse.run(["token", "hash", secret])
        #expect(hashed.output.trimmingCharacters(in: .whitespacesAndNewlines) == hash)
        let file = "tokens:\n  - name: ci-bot\n    sha256: \(hash)\n    namespaces: [test]\n    actions: [read, open]\n"
        try await withLiveServer(accessFile: file) { server in
            let url = server.absoluteString
            let refused = try await Gatehouse.run(["open", "rollout", "podinfo", "-n", "test", "--server", url])
            #expect(refused.status == 2 && refused.errors.contains("bearer token"))
            let opened = try await Gatehouse.run(
                ["open", "rollout", "podinfo", "-n", "test", "--server", url, "--token", secret])
            #expect(opened.status == 0, "\(opened.errors)")
            let outOfScope = try await Gatehouse.run(
                ["open", "rollout", "podinfo", "-n", "prod", "--server", url], environment: ["GATEHOUSE_TOKEN": secret])
            #expect(outOfScope.status == 2 && outOfScope.errors.contains("ci-bot may not open in namespace prod"))
            let events = try await Gatehouse.run(
                ["events", "podinfo", "-n", "test", "--output", "json", "--server", url],
                environment: ["GATEHOUSE_TOKEN": secret])
            #expect(events.output.contains(#""actor":"token:ci-bot""#))
            let who = try await Gatehouse.run(["whoami", "--server", url, "--token", secret])
            #expect(who.status == 0, "\(who.errors)")
            #expect(
                who.output.contains("token:ci-bot: shared token ci-bot")
                    && who.output.contains("does not count as a person")
                    && who.output.contains("may read, open in namespaces test"), "\(who.output)")
        }
    }

    @Test("wait: 0 when the rollout succeeds, 6 when it fails, 4 on timeout")
    func wait() async throws {
        try await withLiveServer { server in
            let url = server.absoluteString
            _ = try await flagger(server, "post-rollout", name: "good", phase: "Succeeded", checksum: "c1")
            // Every wait has a timeout, so none can outlive the test.
            async let good = Gatehouse.run([
                "wait", "good", "-n", "test", "--for", "Succeeded", "--timeout", "60s", "--interval", "100ms",
                "--server", url,
            ])
            async let bad = Gatehouse.run([
                "wait", "bad", "-n", "test", "--for", "Succeeded", "--timeout", "60s", "--interval", "100ms",
                "--server", url,
            ])
            async let idle = Gatehouse.run([
                "wait", "idle", "-n", "test", "--for", "Succeeded", "--timeout", "1s", "--interval", "100ms",
                "--server", url,
            ])
            // Each step waits until the waits have looked at their canaries since the last one.
            try await waitForPolls(server, beyond: 3)
            _ = try await flagger(
                server, "events", name: "good", phase: "Progressing", checksum: "c2", message: "Advance weight 10")
            _ = try await flagger(
                server, "events", name: "bad", phase: "Progressing", checksum: "c2", message: "Advance weight 10")
            try await waitForPolls(server, beyond: try await canaryPolls(server) + 4)
            _ = try await flagger(server, "post-rollout", name: "good", phase: "Succeeded", checksum: "c2")
            _ = try await flagger(server, "post-rollout", name: "bad", phase: "Failed", checksum: "c2")
            let (goodResult, badResult, idleResult) = try await (good, bad, idle)
            #expect(goodResult.status == 0, "\(goodResult.errors)")
            #expect(goodResult.output.contains("test/good reached Succeeded"))
            #expect(badResult.status == 6)
            #expect(badResult.errors.contains("test/bad ended Failed while waiting for Succeeded"))
            #expect(idleResult.status == 4)
        }
    }

    @Test("--version and version: the client's version, then the service's")
    func version() async throws {
        let flag = try await Gatehouse.run(["--version"])
        #expect(flag.status == 0 && flag.output == "0.1.0\n")
        try await withLiveServer { server in
            let both = try await Gatehouse.run(["version", "--server", server.absoluteString])
            #expect(both.status == 0)
            #expect(both.output == "Client: 0.1.0\nServer: 0.1.0 (\(server.absoluteString))\n")
            let json = try await Gatehouse.run(["version", "-o", "json", "--server", server.absoluteString])
            #expect(json.output == #"{"client":{"version":"0.1.0"},"server":{"version":"0.1.0"}}"# + "\n")
        }
        let unreachable = try await Gatehouse.run(["version", "--server", "http://127.0.0.1:1"])
        #expect(unreachable.status == 3 && unreachable.output == "Client: 0.1.0\n")
        #expect(unreachable.errors.contains("cannot reach the Gatehouse service"))
    }

    @Test("a typo in --for or --until is refused before anything is sent, with what was meant")
    func mistypedOptions() async throws {
        let phase = try await Gatehouse.run(["wait", "podinfo", "-n", "test", "--for", "Sucessed"])
        #expect(phase.status == 64)
        #expect(phase.errors.contains("--for 'Sucessed' is not a Flagger phase (did you mean Succeeded?)"))
        let until = try await Gatehouse.run(["open", "promotion", "test/podinfo", "--until", "tomorrow"])
        #expect(until.status == 64)
        #expect(until.errors.contains("--until 'tomorrow' is not an RFC 3339 time") && until.errors.contains("--ttl"))
        let freeze = try await Gatehouse.run(["freeze", "--all", "--reason", "x", "--until", "friday"])
        #expect(freeze.status == 64 && freeze.errors.contains("--for"))
    }

    @Test("an approval a rule holds for more is shown as its tally, never as an open gate")
    func approvalsTally() async throws {
        let policy = """
            rules:
              - name: two-approvers
                gates: [promotion]
                approvals: {count: 2, from: [alice, bob]}
            """
        try await withLiveServer(policyFile: policy) { server in
            func gatehouse(_ user: String, _ arguments: String...) async throws -> Gatehouse.Result {
                try await Gatehouse.run(arguments + ["--server", server.absoluteString], environment: ["USER": user])
            }
            let first = try await gatehouse("alice", "open", "promotion", "podinfo", "-n", "test")
            #expect(
                first.status == 0 && first.output.contains("promotion gate of test/podinfo: 1 of 2 approvals"),
                "\(first.output)\(first.errors)")
            let table = try await gatehouse("alice", "status", "-A").output
            #expect(table.contains("1 of 2 approvals") && !table.contains("open once"), "\(table)")
            let second = try await gatehouse("bob", "open", "promotion", "podinfo", "-n", "test")
            #expect(second.output.contains("promotion gate of test/podinfo: open once"), "\(second.output)")
        }
    }

    @Test("guardrails: status shows queue places and windows; request, override and policy check")
    func guardrails() async throws {
        let policy = """
            rules:
              - name: hands-off
                gates: [rollout, traffic, promotion]
                automatic: true
              - name: one-at-a-time
                concurrency: {limit: 1}
              - name: never-on-thursdays
                gates: [promotion]
                window: {closed: "Thu 00:00-24:00", timeZone: Europe/Berlin}
                overrideBy: [carol]
            """
        try await withLiveServer(policyFile: policy) { server in
            let global = ["--server", server.absoluteString]
            func gatehouse(_ arguments: String...) async throws -> Gatehouse.Result {
                try await Gatehouse.run(arguments + global, environment: ["USER": "carol"])
            }
            #expect(
                try await flagger(server, "confirm-rollout", name: "first", phase: "Succeeded", checksum: "a") == 200)
            #expect(
                try await flagger(server, "confirm-rollout", name: "second", phase: "Succeeded", checksum: "b") == 403)
            let table = try await gatehouse("status", "-n", "test")
            #expect(table.status == 0)
            #expect(
                table.output.contains("rollout for")
                    && table.output.contains("(queued for a rollout slot: 2nd; rule one-at-a-time)"),
                "table: \(table.output)")
            #expect(table.output.contains("Window never-on-thursdays (promotion): "), "windows: \(table.output)")
            let detail = try await gatehouse("status", "test/second").output
            #expect(
                detail.contains("Rule:       one-at-a-time: test/first ends its rollout or is silent for 30m"),
                "detail: \(detail)")

            let requested = try await gatehouse("request", "test/first", "--reason", "release 7")
            #expect(
                requested.status == 0 && requested.output.contains("approval requested by carol"), "\(requested.errors)"
            )
            let lifted = try await gatehouse("override", "test/first", "never-on-thursdays", "--reason", "INC-9")
            #expect(lifted.status == 0 && lifted.output.contains("rule never-on-thursdays lifted for test/first"))
            let unknown = try await gatehouse("override", "test/first", "no-such-rule", "--reason", "x")
            #expect(
                unknown.status != 0 && unknown.errors.contains("there is no rule no-such-rule"), "\(unknown.errors)")

            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("policy-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let good = directory.appendingPathComponent("good.yaml").path
            try policy.write(toFile: good, atomically: true, encoding: .utf8)
            let checked = try await Gatehouse.run(["policy", "check", good, "--canary", "test/podinfo"])
            #expect(checked.status == 0)
            #expect(
                checked.output.contains("valid, 3 rules")
                    && checked.output.contains("Rules that apply to test/podinfo:"))
            #expect(checked.output.contains("may be overridden by: carol"))
            let bad = directory.appendingPathComponent("bad.yaml").path
            try policy.replacingOccurrences(of: "limit: 1", with: "limit: -1").write(
                toFile: bad, atomically: true, encoding: .utf8)
            let refused = try await Gatehouse.run(["policy", "check", bad])
            #expect(
                refused.status == 1 && refused.errors.contains("line 6: limit is a whole number"), "\(refused.errors)")
            // A name no person can have is valid, with a warning: it would never count.
            let shared = directory.appendingPathComponent("shared.yaml").path
            try policy.replacingOccurrences(of: "overrideBy: [carol]", with: "overrideBy: [carol, token:ci]").write(
                toFile: shared, atomically: true, encoding: .utf8)
            let warned = try await Gatehouse.run(["policy", "check", shared])
            #expect(warned.status == 0 && warned.output.contains("valid, 3 rules"))
            #expect(
                warned.errors.contains("overrideBy names token:ci, which is not a person")
                    && warned.errors.contains("warning:"), "\(warned.errors)")
        }
    }

    @Test("status says what stops a canary now: a freeze, not the gate it asked")
    func waitingOnAFreeze() async throws {
        try await withLiveServer { server in
            let global = ["--server", server.absoluteString]
            func gatehouse(_ arguments: String...) async throws -> String {
                let result = try await Gatehouse.run(arguments + global)
                #expect(result.status == 0, "gatehouse \(arguments.joined(separator: " ")): \(result.errors)")
                return result.output
            }
            _ = try await gatehouse("freeze", "-n", "test", "--reason", "quarter end", "--for", "1h")
            _ = try await gatehouse("open", "rollout", "test/podinfo")
            #expect(try await flagger(server, "confirm-rollout", phase: "Initialized", checksum: "c1") == 403)

            let table = try await gatehouse("status", "-n", "test")
            #expect(table.contains("rollout for") && table.contains("(frozen)"), "table: \(table)")
            let detail = try await gatehouse("status", "test/podinfo")
            #expect(detail.contains("quarter end"), "the detail gives the freeze's reason: \(detail)")

            _ = try await gatehouse("unfreeze", "1")
            let lifted = try await gatehouse("status", "test/podinfo")
            #expect(lifted.contains("passes at Flagger's next check"), "after the freeze: \(lifted)")
            #expect(try await flagger(server, "confirm-rollout", phase: "Initialized", checksum: "c1") == 200)
            #expect(try await gatehouse("status", "test/podinfo").contains("Waiting on: -"))
        }
    }

    @Test("status follows the rollout: past the promotion gate once promoting; no earlier rollout's news")
    func statusFollowsTheRollout() async throws {
        try await withLiveServer { server in
            let global = ["--server", server.absoluteString]
            func status() async throws -> String {
                try await Gatehouse.run(["status", "test/podinfo"] + global).output
            }
            // A rollout that failed, then a new revision.
            #expect(try await flagger(server, "confirm-traffic-increase", phase: "Progressing", checksum: "c1") == 403)
            _ = try await flagger(
                server, "events", phase: "Failed", checksum: "c1", message: "Canary failed! Scaling down podinfo.test")
            #expect(try await status().contains("Flagger:    Canary failed!"))
            #expect(try await flagger(server, "confirm-promotion", phase: "Progressing", checksum: "c2") == 403)
            let next = try await status()
            #expect(
                !next.contains("Flagger:    Canary failed!"), "the previous rollout's end is not this one's: \(next)")
            #expect(next.contains("Waiting on: promotion"))

            // Flagger reports promoting (the gate was opened and its check passed elsewhere).
            _ = try await flagger(
                server, "events", phase: "Promoting", checksum: "c2",
                message: "Copying podinfo.test template spec to podinfo-primary.test")
            let promoting = try await status()
            #expect(promoting.contains("Waiting on: -"), "promoting is past the promotion gate: \(promoting)")
        }
    }

    @Test(
        "--help of every subcommand shows an example",
        arguments: [
            "serve", "open", "close", "rollback", "status", "events", "freeze", "unfreeze", "freezes", "wait",
            "migrate", "version",
        ])
    func help(subcommand: String) async throws {
        let result = try await Gatehouse.run([subcommand, "--help"])
        #expect(result.status == 0)
        #expect(result.output.contains("gatehouse \(subcommand)"))
        #expect(result.output.contains("Example"))
    }
}
