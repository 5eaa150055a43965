/// Why a call to the Gatehouse service failed; each maps to its own exit code.
public enum ClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The service refused the request (4xx); the message is the service's.
    case refused(status: Int, message: String)
    /// The service failed or cannot decide now (5xx).
    case serverError(status: Int, message: String)
    /// The service could not be reached.
    case unreachable(String)
    /// The request, or a wait, took longer than allowed.
    case timedOut(String)
    /// The service answered something that is not Gatehouse's API.
    case invalidResponse(String)
    /// `wait` saw the canary end the other way (Failed while waiting for Succeeded).
    case oppositeOutcome(String)

    public var description: String {
        switch self {
        case .refused(_, let message), .serverError(_, let message), .unreachable(let message),
            .timedOut(let message), .invalidResponse(let message), .oppositeOutcome(let message):
            message
        }
    }

    /// The process exit code a CI job can act on (documented in the README).
    public var exitCode: Int32 {
        switch self {
        case .refused: 2
        case .unreachable: 3
        case .timedOut: 4
        case .serverError, .invalidResponse: 5
        case .oppositeOutcome: 6
        }
    }
}
