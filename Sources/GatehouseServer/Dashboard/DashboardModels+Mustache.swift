import Mustache

// The overview renders a few hundred of these per page, and every variable a template names is
// looked up in each object of the context stack in turn. Mustache finds a struct's properties with
// `Mirror`, which resolves field types by demangling each time: most of the overview's cost (100
// waiting rows at 20,000 canaries took 45 ms, 20 ms without). The types of its rows list their
// properties instead; a name not listed is still found the way Mustache would, so nothing renders
// differently.

/// A model whose properties templates read through a table of key paths rather than `Mirror`.
protocol TemplateFields: MustacheParent {
    /// The properties templates name, by name.
    static var fields: [String: any PartialKeyPath<Self> & Sendable] { get }
}

extension TemplateFields {
    /// What Mustache's own lookup gives for `name`: the property's value, nil for a nil optional (so
    /// the lookup goes on up the context stack) or for no such property.
    func child(named name: String) -> Any? {
        let value: Any
        if let field = Self.fields[name] {
            value = self[keyPath: field]
        } else if let found = Mirror(reflecting: self).children.first(where: { $0.label == name })?.value {
            value = found
        } else {
            return nil
        }
        return (value as? any OptionalValue).map(\.wrapped) ?? value
    }
}

/// An optional, whatever it wraps.
private protocol OptionalValue {
    var wrapped: Any? { get }
}

extension Optional: OptionalValue {
    fileprivate var wrapped: Any? { self.map { $0 as Any } }
}

extension Moment: TemplateFields {
    static let fields: [String: any PartialKeyPath<Self> & Sendable] = [
        "iso": \.iso, "ago": \.ago, "relative": \.relative,
    ]
}

extension WaitingModel: TemplateFields {
    static let fields: [String: any PartialKeyPath<Self> & Sendable] = [
        "label": \.label, "cause": \.cause, "since": \.since, "message": \.message,
    ]
}

extension OverviewRow: TemplateFields {
    static let fields: [String: any PartialKeyPath<Self> & Sendable] = [
        "id": \.id, "href": \.href, "phase": \.phase, "state": \.state, "waiting": \.waiting, "detail": \.detail,
        "lastSeen": \.lastSeen, "step": \.step,
    ]
}

extension NextAction: TemplateFields {
    static let fields: [String: any PartialKeyPath<Self> & Sendable] = [
        "action": \.action, "gate": \.gate, "checksum": \.checksum, "label": \.label, "isTraffic": \.isTraffic,
        "tally": \.tally, "cannot": \.cannot, "rollback": \.rollback,
    ]
}

extension OverviewGroup: TemplateFields {
    static let fields: [String: any PartialKeyPath<Self> & Sendable] = [
        "title": \.title, "column": \.column, "count": \.count, "showing": \.showing, "rows": \.rows,
        "first": \.first, "next": \.next, "all": \.all,
    ]
}

extension OverviewLive: TemplateFields {
    static let fields: [String: any PartialKeyPath<Self> & Sendable] = [
        "groups": \.groups, "empty": \.empty, "emptyText": \.emptyText, "updated": \.updated, "csrf": \.csrf,
    ]
}
