import Foundation
import GatehouseCore
import Yams

/// The namespace kubectl would use: the one the kubeconfig's current context (or the context
/// named) sets, else `default` — so that `kubectl gatehouse open rollout podinfo` means the
/// namespace `kubectl get canary podinfo` does.
public enum Kubeconfig {
    /// The namespace of `context` (or of the current context) in the kubeconfig `path` names, or
    /// else `$KUBECONFIG`'s files (the first that says), or else `~/.kube/config`; `default` when
    /// none says. A kubeconfig that cannot be read is an error only when it was named (`path`).
    public static func namespace(
        context: String? = nil, path: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(InvalidInput) -> String {
        let files: [String]
        if let path {
            files = [path]
        } else if let listed = environment["KUBECONFIG"], !listed.isEmpty {
            files = listed.split(separator: ":").map(String.init)
        } else {
            files = [(environment["HOME"] ?? NSHomeDirectory()) + "/.kube/config"]
        }
        var documents: [[String: Any]] = []
        for file in files {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                if path != nil { throw InvalidInput("the kubeconfig \(file) cannot be read") }
                continue
            }
            guard let document = (try? Yams.load(yaml: text)) as? [String: Any] else {
                throw InvalidInput("the kubeconfig \(file) is not a YAML mapping")
            }
            documents.append(document)
        }
        // As kubectl merges them: the first file that sets a value wins.
        guard let name = context ?? documents.lazy.compactMap({ $0["current-context"] as? String }).first else {
            return "default"
        }
        for document in documents {
            for entry in document["contexts"] as? [[String: Any]] ?? [] where entry["name"] as? String == name {
                return ((entry["context"] as? [String: Any])?["namespace"] as? String) ?? "default"
            }
        }
        if context != nil { throw InvalidInput("the kubeconfig has no context \(name)") }
        return "default"
    }
}
