/// Why the store could not do what was asked.
public enum StoreError: Error, Equatable, Sendable {
    /// Storage cannot answer right now; nothing was decided or changed.
    case unavailable(String)
    /// The request contradicts the canary's state (for example a rollback outside a rollout).
    case conflict(String)
    /// The thing asked for does not exist.
    case notFound(String)
    /// Gatehouse already remembers as many canaries as it may; a new one is refused.
    case full(String)
    /// A single-use token was used already.
    case gone(String)
    /// Storage refused this one change (a schema constraint); nothing of it was kept.
    case rejected(String)
    /// A policy rule does not let this person do this (approve their own release, override a rule).
    case forbidden(String)

    /// The sentence the error carries.
    public var message: String {
        switch self {
        case .unavailable(let text), .conflict(let text), .notFound(let text), .full(let text), .gone(let text),
            .rejected(let text), .forbidden(let text):
            text
        }
    }
}
