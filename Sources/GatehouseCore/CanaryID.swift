/// The identity of one Flagger canary: its Kubernetes namespace and name.
public struct CanaryID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The canary's namespace, a DNS-1123 label.
    public let namespace: String
    /// The canary's name, a DNS-1123 subdomain.
    public let name: String

    /// Creates an identity after checking both parts are valid Kubernetes names.
    public init(namespace: String, name: String) throws(InvalidInput) {
        try KubernetesName.validateLabel(namespace, field: "namespace")
        try KubernetesName.validateSubdomain(name, field: "name")
        self.namespace = namespace
        self.name = name
    }

    /// `namespace/name`, as kubectl users write it.
    public var description: String { "\(namespace)/\(name)" }

    public static func < (lhs: CanaryID, rhs: CanaryID) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
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
        guard isLabel(value.utf8) else {
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
        guard value.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).allSatisfy(isLabel)
        else {
            throw InvalidInput(
                "\(field) '\(value)' is not a valid Kubernetes name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
            )
        }
    }

    private static func isLabel(_ bytes: some Collection<UInt8>) -> Bool {
        guard let first = bytes.first, let last = bytes.reversed().first else { return false }
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        return isAlphanumeric(first) && isAlphanumeric(last)
            && bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") }
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
