import Foundation
import GatehouseCore
import GatehouseStore
import Logging
import ServiceLifecycle

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Delivers the outbox with URLSession (libcurl on Linux), off the check path: retries with
/// exponential backoff on errors, 5xx and 429 (honouring Retry-After), gives up at each message's
/// deadline and records that in the audit trail. A restart resumes whatever is pending. Also
/// enqueues the one reminder of a canary that has waited too long.
struct OutboxDelivery: Service {
    let store: GateStore
    let metrics: GatehouseMetrics
    let interval: Duration
    let retryBase: TimeInterval
    let reminderAfter: TimeInterval?
    let logger: Logger
    let session: URLSession

    init(
        store: GateStore, metrics: GatehouseMetrics, interval: Duration, retryBase: TimeInterval,
        reminderAfter: TimeInterval?, logger: Logger
    ) {
        self.store = store
        self.metrics = metrics
        self.interval = interval
        self.retryBase = retryBase
        self.reminderAfter = reminderAfter
        self.logger = logger
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 10
        configuration.timeoutIntervalForResource = 10
        session = URLSession(configuration: configuration)
    }

    func run() async throws {
        var reminded = Set<String>()
        while !Task.isShuttingDownGracefully {
            await remind(at: Date(), skipping: &reminded)
            await deliverDue(at: Date())
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
        }
    }

    /// Sends every message that is due.
    func deliverDue(at now: Date) async {
        let due: [PendingNotification]
        do {
            due = try await store.dueNotifications(at: now)
        } catch {
            return  // storage trouble is reported by the store; try again next round
        }
        for pending in due { await deliver(pending) }
    }

    private func deliver(_ pending: PendingNotification) async {
        let message = pending.message
        let outcome: Outcome
        if let url = URL(string: message.url) {
            var request = URLRequest(url: url, timeoutInterval: 10)
            request.httpMethod = "POST"
            request.setValue(message.contentType, forHTTPHeaderField: "Content-Type")
            request.setValue("gatehouse/\(gatehouseVersion)", forHTTPHeaderField: "User-Agent")
            request.httpBody = message.body
            do {
                let (_, response) = try await session.data(for: request)
                outcome = Outcome(response as? HTTPURLResponse, attempts: pending.attempts, base: retryBase)
            } catch {
                outcome = .retry(
                    after: Self.backoff(pending.attempts, base: retryBase), "\(error.localizedDescription)")
            }
        } else {
            outcome = .fail("the URL is not valid")
        }
        do {
            switch outcome {
            case .delivered:
                try await store.markDelivered(pending.id)
                metrics.recordNotification(target: message.target, outcome: "delivered")
            case .retry(let delay, let error) where Date().addingTimeInterval(delay) < pending.giveUpAt:
                try await store.retryDelivery(pending.id, at: Date().addingTimeInterval(delay), error: error)
                metrics.recordNotification(target: message.target, outcome: "retried")
                logger.notice(
                    "notification delivery failed; retrying",
                    metadata: [
                        "target": "\(message.target)", "error": "\(error)", "retryInSeconds": .stringConvertible(delay),
                    ])
            case .retry(_, let error), .fail(let error):
                try await store.giveUpDelivery(pending.id, target: message.target, error: error)
                metrics.recordNotification(target: message.target, outcome: "failed")
                logger.error(
                    "gave up delivering a notification", metadata: ["target": "\(message.target)", "error": "\(error)"])
            }
        } catch {
            logger.warning("could not record a notification's delivery", metadata: ["error": "\(error)"])
        }
    }

    /// One reminder per waiting episode, for canaries waiting longer than `reminderAfter`; the outbox
    /// key keeps it to one across restarts, and `reminded` spares a write per round until then.
    func remind(at now: Date, skipping reminded: inout Set<String>) async {
        guard let reminderAfter else { return }
        // Only the active few can be waiting.
        for canary in (try? await store.canaries(after: nil, among: .active, limit: .max).canaries) ?? [] {
            guard let waiting = canary.waitingOn, now.timeIntervalSince(waiting.since) >= reminderAfter else {
                continue
            }
            let fact = GateFact(
                action: .refused, actor: Gate.systemActor, reason: "still waiting",
                checksum: canary.gate(waiting.gate).lastVerdictChecksum)
            let notable = Notable(kind: .reminder, canary: canary, gate: waiting.gate, fact: fact, freeze: nil, at: now)
            guard let key = notable.key, !reminded.contains(key) else { continue }
            if (try? await store.enqueue(notable)) != nil { reminded.insert(key) }
        }
    }

    /// 1, 2, 4 … × `base`, at most five minutes.
    static func backoff(_ attempts: Int, base: TimeInterval) -> TimeInterval {
        min(base * pow(2, Double(min(attempts, 20))), 300)
    }

    enum Outcome {
        case delivered
        case retry(after: TimeInterval, String)
        case fail(String)

        init(_ response: HTTPURLResponse?, attempts: Int, base: TimeInterval) {
            guard let response else {
                self = .retry(after: OutboxDelivery.backoff(attempts, base: base), "no HTTP response")
                return
            }
            let status = response.statusCode
            switch status {
            case 200..<300:
                self = .delivered
            case 429:
                let retryAfter = response.value(forHTTPHeaderField: "Retry-After").flatMap(Self.seconds(retryAfter:))
                self = .retry(after: max(retryAfter ?? OutboxDelivery.backoff(attempts, base: base), 0), "HTTP 429")
            case 500..<600:
                self = .retry(after: OutboxDelivery.backoff(attempts, base: base), "HTTP \(status)")
            default:
                self = .fail("HTTP \(status): the receiver refused the message")
            }
        }

        /// Retry-After as seconds or an HTTP date.
        static func seconds(retryAfter: String) -> TimeInterval? {
            if let seconds = TimeInterval(retryAfter.trimmingCharacters(in: .whitespaces)) { return seconds }
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
            return formatter.date(from: retryAfter).map { $0.timeIntervalSinceNow }
        }
    }
}
