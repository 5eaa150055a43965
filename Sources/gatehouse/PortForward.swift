import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `kubectl port-forward` to the Gatehouse Service, started by the kubectl plugin when no
/// `--server` or `$GATEHOUSE_URL` says where the service is, and ended with the command.
///
/// kubectl runs under a small shell that waits on a pipe from this process and stops kubectl when
/// the pipe closes, so the forward never outlives the command, however it ends.
enum PortForward {
    /// Why the forward could not start.
    struct Failed: Error {
        let message: String
    }

    /// Forwards started by this process, by their command: one for all the requests a command makes
    /// (`status --watch` asks again and again).
    private static let started = Mutex<[[String]: URL]>([:])

    /// The local address of a forward to `service` (`NAMESPACE/NAME`, port 80), through `kubectl`
    /// with the kubeconfig `context` and file given; started once per process, waiting at most
    /// `timeout` for kubectl to say where it listens.
    static func start(
        service: String, context: String?, kubeconfig: String?, kubectl: String = "kubectl",
        timeout: Duration = .seconds(20)
    ) throws(Failed) -> URL {
        let parts = service.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw Failed(message: "--service '\(service)' is not NAMESPACE/NAME")
        }
        var command = [kubectl]
        if let context { command += ["--context", context] }
        if let kubeconfig { command += ["--kubeconfig", kubeconfig] }
        command += ["-n", parts[0], "port-forward", "service/\(parts[1])", ":80", "--address", "127.0.0.1"]
        if let known = started.withLock({ $0[command] }) { return known }
        // The shell starts kubectl and waits for it; beside it, a reader of the shell's standard input
        // (a pipe from this process, kept as descriptor 3: a background list's own standard input is
        // /dev/null) stops kubectl when that closes, that is when this process ends.
        let script =
            #"exec 3<&0; "$@" 2>&1 3<&- & forward=$!; { read -r _ <&3; kill "$forward" 2>/dev/null; } >/dev/null 2>&1 & wait "$forward""#
        let arguments = ["/bin/sh", "-c", script, "port-forward"] + command
        var input: [Int32] = [0, 0]
        var output: [Int32] = [0, 0]
        guard pipe(&input) == 0, pipe(&output) == 0 else { throw Failed(message: "no pipe for kubectl port-forward") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        // The pipes' own descriptors are closed in the child, unless one already is 0, 1 or 2 (this
        // process started with a standard descriptor closed) and so is where it belongs.
        for descriptor in input + output where descriptor > 2 {
            posix_spawn_file_actions_addclose(&actions, descriptor)
        }
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        // Every signal at its default and none blocked, as from a shell: the thread this runs on
        // blocks most signals, and kubectl inheriting that could not be stopped.
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
        let spawned = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, environ)
        close(input[0])
        close(output[1])
        // The write end stays open (and is inherited by nothing else) until this process ends.
        _ = fcntl(input[1], F_SETFD, FD_CLOEXEC)
        guard spawned == 0 else {
            close(output[0])
            throw Failed(message: "kubectl port-forward could not be started")
        }
        var said = ""
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            if let port = Self.port(in: said), let url = URL(string: "http://127.0.0.1:\(port)") {
                started.withLock { $0[command] = url }
                // kubectl goes on writing ("Handling connection for 80"): read it away for as long as
                // it runs, so that it neither blocks on a full pipe nor dies writing to a closed one.
                let descriptor = output[0]
                Thread.detachNewThread {
                    var sink = [UInt8](repeating: 0, count: 4096)
                    while sink.withUnsafeMutableBytes({ read(descriptor, $0.baseAddress, $0.count) }) > 0 {}
                    close(descriptor)
                }
                return url
            }
            var polled = pollfd(fd: output[0], events: Int16(POLLIN), revents: 0)
            let left = deadline - ContinuousClock.now
            let ready = poll(&polled, 1, Int32(max(1, left.components.seconds * 1000)))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { break }
            let count = buffer.withUnsafeMutableBytes { read(output[0], $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            said += String(decoding: buffer[0..<count], as: UTF8.self)
        }
        close(input[1])
        close(output[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let words = said.split(whereSeparator: \.isNewline).last.map(String.init) ?? "it said nothing"
        throw Failed(
            message:
                "no --server or GATEHOUSE_URL, and `\(command.joined(separator: " "))` did not start (\(words.prefix(300)))"
        )
    }

    /// The local port in kubectl's "Forwarding from 127.0.0.1:PORT -> 8080".
    static func port(in text: String) -> Int? {
        guard let range = text.range(of: "Forwarding from 127.0.0.1:") else { return nil }
        let digits = text[range.upperBound...].prefix { $0.isNumber }
        return Int(digits)
    }
}
