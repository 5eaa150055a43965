import GatehouseCore

/// Revisions written out in tests ("c1"); the service's own code never makes one from a literal,
/// so that an empty string can never stand for "none".
extension Revision: ExpressibleByStringLiteral {
    public init(stringLiteral text: String) {
        self.init(text)!
    }
}

/// A gate's binding written out in tests: the revision "c1" names.
extension Revision.Binding: ExpressibleByStringLiteral {
    public init(stringLiteral text: String) {
        self = .revision(Revision(stringLiteral: text))
    }
}
