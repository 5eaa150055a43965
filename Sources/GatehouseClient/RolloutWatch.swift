import Foundation
import GatehouseCore

/// Follows a canary towards a phase without being fooled by the previous rollout's final phase.
///
/// With a service that reports the rollout's stage, the outcome counts only once a new rollout has
/// been seen and has ended (an event's phase lags a tick, so the next rollout's first events still
/// carry the previous outcome). Older services are followed by phase: a terminal phase counts only
/// once a new rollout has been seen (a checksum change, or a phase that is not Succeeded or Failed).
public struct RolloutWatch: Sendable {
    /// What one observation means.
    public enum Progress: Equatable, Sendable {
        /// Not there yet.
        case waiting
        /// The canary reached the phase waited for.
        case reached
        /// The rollout ended the other way (or ended before reaching a non-terminal phase).
        case ended(CanaryPhase)
    }

    /// The phase waited for.
    public let target: CanaryPhase
    private let baselineChecksum: String?
    private let baselineRevision: String?
    private var hasStarted: Bool

    /// Starts watching from the canary's state now (nil when the service does not know it yet).
    public init(target: CanaryPhase, initial: CanaryStatus?) {
        self.target = target
        baselineChecksum = initial?.checksum
        baselineRevision = initial?.rollout?.revision
        if let stage = initial?.rollout?.stage {
            hasStarted = stage != .ended && stage != .idle
        } else {
            hasStarted = initial.map { status in status.phase.map { !$0.endsRollout } ?? false } ?? true
        }
    }

    /// Takes one more look at the canary.
    public mutating func observe(_ status: CanaryStatus) -> Progress {
        if let rollout = status.rollout {
            return observe(status.phase, stage: rollout.stage, revision: rollout.revision)
        }
        let phase = status.phase
        if !hasStarted {
            let isNewRollout = status.checksum != nil && status.checksum != baselineChecksum
            let isUnderWay = phase.map { !$0.endsRollout } ?? false
            hasStarted = isNewRollout || isUnderWay
        }
        guard hasStarted, let phase else { return .waiting }
        if phase == target { return .reached }
        if phase.endsRollout { return .ended(phase) }
        return .waiting
    }

    private mutating func observe(_ phase: CanaryPhase?, stage: Rollout.Stage, revision: String?) -> Progress {
        if !hasStarted {
            // A whole rollout may have passed between two looks: a new revision that ended counts.
            hasStarted = (stage != .ended && stage != .idle) || (stage == .ended && revision != baselineRevision)
        }
        guard hasStarted else { return .waiting }
        if stage == .ended {
            let outcome = phase.flatMap { $0.endsRollout ? $0 : nil } ?? .failed
            return outcome == target ? .reached : .ended(outcome)
        }
        if let phase, phase == target, !phase.endsRollout { return .reached }
        return .waiting
    }
}

extension GatehouseAPI {
    /// Polls the canary until it reaches `target`; throws `oppositeOutcome` or `timedOut` otherwise.
    /// Passing trouble (service unreachable or 503, canary not known yet) is retried until the deadline.
    public func wait(
        for target: CanaryPhase, of canary: CanaryID, timeout: TimeInterval, interval: TimeInterval,
        progress: @Sendable (String) -> Void = { _ in }
    ) async throws(ClientError) -> Reply<CanaryStatus> {
        let deadline = Date().addingTimeInterval(timeout)
        var watch = RolloutWatch(
            target: target, initial: try await currentStatus(of: canary, progress: progress)?.value)
        var lastPhase: CanaryPhase?
        while true {
            if let reply = try await currentStatus(of: canary, progress: progress) {
                let status = reply.value
                if status.phase != lastPhase, let phase = status.phase {
                    progress(
                        "\(canary): \(phase)\(status.waitingOn.map { ", waiting on the \($0.gate.rawValue) gate" } ?? "")"
                    )
                    lastPhase = phase
                }
                switch watch.observe(status) {
                case .reached: return reply
                case .ended(let phase):
                    throw .oppositeOutcome(
                        "\(canary) ended \(phase) while waiting for \(target)\(status.message.map { ": \($0)" } ?? "")")
                case .waiting: break
                }
            }
            guard Date().addingTimeInterval(interval) < deadline else {
                throw .timedOut("\(canary) did not reach \(target) within \(DurationText.format(timeout))")
            }
            try? await Task.sleep(for: .seconds(interval))
        }
    }

    private func currentStatus(of canary: CanaryID, progress: @Sendable (String) -> Void) async throws(ClientError)
        -> Reply<CanaryStatus>?
    {
        do {
            return try await self.canary(canary)
        } catch .refused(status: 404, _) {
            return nil
        } catch .unreachable(let message), .serverError(_, let message), .timedOut(let message) {
            progress("retrying: \(message)")
            return nil
        }
    }
}
