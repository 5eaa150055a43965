/// A canary's identity: the cluster it runs in, its namespace and its name.
public struct CanaryID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The cluster, a DNS-1123 label; empty in a single-cluster setup, where no cluster is named.
    public let cluster: String
    /// The canary's namespace, a DNS-1123 label.
    public let namespace: String
    /// The canary's name, a DNS-1123 subdomain.
    public let name: String

    /// Creates an identity after checking every part is a valid Kubernetes name.
    public init(cluster: String = "", namespace: String, name: String) throws(InvalidInput) {
        if !cluster.isEmpty { try KubernetesName.validateLabel(cluster, field: "cluster") }
        try KubernetesName.validateLabel(namespace, field: "namespace")
        try KubernetesName.validateSubdomain(name, field: "name")
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
    }

    /// Where an area's canaries start in order: before every id the area holds (a bound, not a
    /// canary); nil when the area names no cluster, its canaries then being spread through the order.
    public static func lowerBound(of area: Area) -> CanaryID? {
        guard let cluster = area.cluster else { return nil }
        return CanaryID(bound: cluster, area.namespace ?? "", "")
    }

    /// Whether every id after this one in order is beyond `area` (which names a cluster).
    public func isPast(_ area: Area) -> Bool {
        guard let cluster = area.cluster else { return false }
        if self.cluster != cluster { return self.cluster > cluster }
        return area.namespace.map { namespace > $0 } ?? false
    }

    private init(bound cluster: String, _ namespace: String, _ name: String) {
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
    }

    /// Reads `NAMESPACE/NAME`, or `CLUSTER/NAMESPACE/NAME`; `cluster`, when given, names the cluster
    /// of the two-part form and must agree with the three-part one.
    public init(parsing text: String, cluster: String? = nil) throws(InvalidInput) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 2:
            try self.init(cluster: cluster ?? "", namespace: parts[0], name: parts[1])
        case 3:
            if let cluster, cluster != parts[0] {
                throw InvalidInput("'\(text)' names cluster \(parts[0]), but cluster \(cluster) was asked for")
            }
            try self.init(cluster: parts[0], namespace: parts[1], name: parts[2])
        default:
            throw InvalidInput(
                "name the canary as NAMESPACE/NAME (or CLUSTER/NAMESPACE/NAME), e.g. test/podinfo; '\(text.prefix(70))' is not"
            )
        }
    }

    /// `namespace/name`, as kubectl users write it, preceded by `cluster/` when the cluster is named.
    public var description: String { cluster.isEmpty ? "\(namespace)/\(name)" : "\(cluster)/\(namespace)/\(name)" }

    /// How the `gatehouse` CLI names the canary: `podinfo -n test`, with ` --cluster eu-1` when the cluster is named.
    public var commandLine: String {
        "\(name) -n \(namespace)" + (cluster.isEmpty ? "" : " --cluster \(cluster)")
    }

    /// The canary's namespace in its cluster.
    public var area: Area { Area(cluster: cluster, namespace: namespace) }

    public static func < (lhs: CanaryID, rhs: CanaryID) -> Bool {
        (lhs.cluster, lhs.namespace, lhs.name) < (rhs.cluster, rhs.namespace, rhs.name)
    }
}

/// Where something applies: one namespace of one cluster, or wider. A nil part means every
/// cluster, or every namespace; the empty cluster is the unnamed one of a single-cluster setup.
public struct Area: Hashable, Sendable, CustomStringConvertible {
    /// The cluster, or nil for every cluster.
    public var cluster: String?
    /// The namespace, or nil for every namespace.
    public var namespace: String?

    /// Everywhere.
    public static let everywhere = Area(cluster: nil, namespace: nil)

    /// Creates an area; an empty cluster name is the unnamed cluster.
    public init(cluster: String?, namespace: String?) {
        self.cluster = cluster
        self.namespace = namespace
    }

    /// Creates an area from what a person typed, after checking each named part is a valid
    /// Kubernetes label.
    public init(validatingCluster cluster: String?, namespace: String?) throws(InvalidInput) {
        if let cluster { try KubernetesName.validateLabel(cluster, field: "cluster") }
        if let namespace { try KubernetesName.validateLabel(namespace, field: "namespace") }
        self.init(cluster: cluster, namespace: namespace)
    }

    /// Whether the area holds the canary.
    public func contains(_ canary: CanaryID) -> Bool {
        (cluster == nil || cluster == canary.cluster) && (namespace == nil || namespace == canary.namespace)
    }

    /// "namespace test", "every namespace", with " of cluster eu-1" when a cluster is named.
    public var description: String {
        let namespaces = namespace.map { "namespace \($0)" } ?? "every namespace"
        guard let cluster, !cluster.isEmpty else { return namespaces }
        return "\(namespaces) of cluster \(cluster)"
    }
}

/// Checks of Kubernetes object names, as the API server applies them.
public enum KubernetesName {
    /// Validates a DNS-1123 label: at most 63 lowercase alphanumerics or '-', alphanumeric at both ends.
    public static func validateLabel(_ value: String, field: String) throws(InvalidInput) {
        guard !value.isEmpty else { throw InvalidInput("\(field) must not be empty") }
        guard value.utf8.count <= 63 else {
            throw InvalidInput("\(field) '\(value.prefix(70))' is longer than 63 characters")
        }
        guard isName(value.utf8, dots: false) else {
            throw InvalidInput(
                "\(field) '\(value)' is not a valid Kubernetes name: use lowercase letters, digits and '-', starting and ending with a letter or digit"
            )
        }
    }

    /// Validates a DNS-1123 subdomain: at most 253 characters, dot-separated labels.
    public static func validateSubdomain(_ value: String, field: String) throws(InvalidInput) {
        guard !value.isEmpty else { throw InvalidInput("\(field) must not be empty") }
        guard value.utf8.count <= 253 else {
            throw InvalidInput("\(field) '\(value.prefix(70))…' is longer than 253 characters")
        }
        guard isName(value.utf8, dots: true) else {
            throw InvalidInput(
                "\(field) '\(value)' is not a valid Kubernetes name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
            )
        }
    }

    /// Whether `bytes` are labels (lowercase alphanumerics or '-', alphanumeric at both ends),
    /// separated by dots when `dots`; in one pass, as every check and every row read names a canary.
    private static func isName(_ bytes: String.UTF8View, dots: Bool) -> Bool {
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        let dot = UInt8(ascii: ".")
        var previous = dot  // as if a label had just ended
        for byte in bytes {
            switch byte {
            case dot where dots, UInt8(ascii: "-"):
                // A dot ends a label, which must end alphanumeric; no label starts with '-'.
                if byte == dot ? !isAlphanumeric(previous) : previous == dot { return false }
            default:
                if !isAlphanumeric(byte) { return false }
            }
            previous = byte
        }
        return isAlphanumeric(previous)
    }
}

/// Input that breaks a rule of the API; its message is one sentence meant for the caller.
public struct InvalidInput: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong, as one sentence.
    public let message: String

    /// Creates an error with the sentence shown to the caller.
    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
