import ArgumentParser
import Foundation
import GatehouseClient
import GatehouseCore

/// Options every client subcommand shares.
struct ClientOptions: ParsableArguments {
    enum Output: String, ExpressibleByArgument, CaseIterable {
        case text
        case json
    }

    @Option(
        help:
            "The Gatehouse service (default: $GATEHOUSE_URL; else, as kubectl's plugin, a port-forward to --service; else http://127.0.0.1:8080)."
    )
    var server: String?

    @Option(
        help:
            "As kubectl's plugin without --server: the Service to port-forward to, NAMESPACE/NAME (default: $GATEHOUSE_SERVICE, else gatehouse/gatehouse)."
    )
    var service: String?

    @Option(
        help: "The kubeconfig context (as kubectl --context): its namespace is the default, and a port-forward uses it."
    )
    var context: String?

    @Option(help: "The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config), as kubectl --kubeconfig.")
    var kubeconfig: String?

    @Option(help: "Bearer token (default: $GATEHOUSE_TOKEN).")
    var token: String?

    @Option(name: [.short, .long], help: "text for people, json for scripts (the API's own JSON).")
    var output: Output = .text

    @Option(help: "How long one request may take, e.g. 10s.")
    var requestTimeout: String = "10s"

    /// Where the service is: `--server`, else `$GATEHOUSE_URL`, else (run as kubectl's plugin) a
    /// port-forward to the Service this starts, else the local default.
    func serviceURL() throws -> URL {
        let environment = ProcessInfo.processInfo.environment
        if let address = server ?? environment["GATEHOUSE_URL"].flatMap({ $0.isEmpty ? nil : $0 }) {
            guard let url = URL(string: address), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw ArgumentParser.ValidationError("--server '\(address)' is not an http(s) URL")
            }
            return url
        }
        guard Gatehouse.invokedName == "kubectl gatehouse" else { return URL(string: "http://127.0.0.1:8080")! }
        let service =
            service ?? environment["GATEHOUSE_SERVICE"].flatMap { $0.isEmpty ? nil : $0 } ?? "gatehouse/gatehouse"
        do throws(PortForward.Failed) {
            return try PortForward.start(
                service: service, context: context, kubeconfig: kubeconfig,
                kubectl: environment["KUBECTL"].flatMap { $0.isEmpty ? nil : $0 } ?? "kubectl")
        } catch {
            FileHandle.standardError.write(Data("gatehouse: \(error.message)\n".utf8))
            throw ExitCode(ClientError.unreachable("").exitCode)
        }
    }

    /// The client these options describe.
    func api() throws -> GatehouseAPI {
        let environment = ProcessInfo.processInfo.environment
        let url = try serviceURL()
        let timeout: TimeInterval
        do {
            timeout = try DurationText.seconds(from: requestTimeout, field: "--request-timeout")
        } catch {
            throw ArgumentParser.ValidationError(error.message)
        }
        return GatehouseAPI(
            server: url, token: token ?? environment["GATEHOUSE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 },
            timeout: timeout, actor: environment["GATEHOUSE_ACTOR"] ?? environment["USER"])
    }

    /// Makes one call; a failure prints one line on stderr and exits with the code documented for it.
    func call<Value>(_ body: (GatehouseAPI) async throws(ClientError) -> GatehouseAPI.Reply<Value>) async throws
        -> GatehouseAPI.Reply<Value>
    {
        let api = try api()
        do {
            return try await body(api)
        } catch {
            FileHandle.standardError.write(Data("gatehouse: \(error.description)\n".utf8))
            throw ExitCode(error.exitCode)
        }
    }

    /// Prints a reply: the API's JSON as it came, or text for people.
    func show<Value>(_ reply: GatehouseAPI.Reply<Value>, text: (Value) -> String) {
        switch output {
        case .json: print(String(decoding: reply.json, as: UTF8.self))
        case .text: print(text(reply.value))
        }
    }

    /// `show`, then the change's warning, if the service gave one, on standard error (text only:
    /// JSON carries it as `notice`).
    func show(change reply: GatehouseAPI.Reply<CanaryStatus>, text: (CanaryStatus) -> String) {
        show(reply, text: text)
        if output == .text, let notice = reply.value.notice {
            FileHandle.standardError.write(Data("warning: \(notice)\n".utf8))
        }
    }
}

/// `-n NAMESPACE`, as kubectl has it (and, without it, the kubeconfig context's namespace), and
/// `--cluster` when several clusters share the service.
struct NamespaceOption: ParsableArguments {
    @Option(
        name: [.short, .long],
        help: "The canary's namespace (default: the kubeconfig context's namespace, as kubectl, else default).")
    var namespace: String?
    @Option(help: "The canary's cluster, when several clusters share the service.")
    var cluster: String?

    /// The namespace asked for, or that of the kubeconfig (and context) `client` names (`default`
    /// when it says none).
    func namespaceOrDefault(_ client: ClientOptions) throws -> String {
        if let namespace { return namespace }
        do throws(InvalidInput) {
            return try Kubeconfig.namespace(context: client.context, path: client.kubeconfig)
        } catch {
            throw ArgumentParser.ValidationError(error.message)
        }
    }

    /// The canary named `NAME` (with -n and --cluster), `NAMESPACE/NAME` or `CLUSTER/NAMESPACE/NAME`.
    func canary(_ name: String, _ client: ClientOptions) throws -> CanaryID {
        let defaultNamespace = name.contains("/") ? nil : try namespaceOrDefault(client)
        do throws(InvalidInput) {
            if let defaultNamespace {
                return try CanaryID(cluster: cluster ?? "", namespace: defaultNamespace, name: name)
            }
            let canary = try CanaryID(parsing: name, cluster: cluster)
            if let namespace, namespace != canary.namespace {
                throw InvalidInput("'\(name)' names namespace \(canary.namespace), but -n asks for \(namespace)")
            }
            return canary
        } catch {
            throw ArgumentParser.ValidationError(error.message)
        }
    }
}

extension GateKind: ExpressibleByArgument {
    public init?(argument: String) {
        guard let kind = try? GateKind(userInput: argument) else { return nil }
        self = kind
    }

    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

extension TrafficSteps: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}
