import Foundation
import GRDB
import GatehouseCore

/// A fact worth telling people about.
public struct Notable: Sendable {
    /// What kind of fact.
    public enum Kind: String, Sendable, CaseIterable {
        case waiting
        case reminder
        case opened
        case closed
        case expired
        case rollbackRequested = "rollback-requested"
        case rollbackFired = "rollback-fired"
        case freezeSet = "freeze-set"
        case freezeLifted = "freeze-lifted"
        case succeeded
        case failed
    }

    /// What happened.
    public var kind: Kind
    /// The canary after the change (nil for freezes).
    public var canary: Canary?
    /// The gate concerned.
    public var gate: GateKind?
    /// Who did it, why, and the rollout's checksum.
    public var fact: GateFact
    /// The freeze concerned.
    public var freeze: Freeze?
    /// When.
    public var at: Date

    /// Creates a fact.
    public init(kind: Kind, canary: Canary?, gate: GateKind?, fact: GateFact, freeze: Freeze?, at: Date) {
        self.kind = kind
        self.canary = canary
        self.gate = gate
        self.fact = fact
        self.freeze = freeze
        self.at = at
    }

    /// A key that makes the same fact enqueue one message, however often it is seen.
    public var key: String? {
        guard let canary else { return nil }
        switch kind {
        case .waiting:
            return "waiting|\(canary.id)|\(gate?.rawValue ?? "")|\(fact.checksum?.text ?? "")"
        case .reminder:
            // In whole milliseconds, as storage keeps dates: the key must be the same after a restart.
            let since = canary.waitingOn.map { Int64(($0.since.timeIntervalSince1970 * 1000).rounded()) } ?? 0
            return "reminder|\(canary.id)|\(gate?.rawValue ?? "")|\(since)"
        case .succeeded, .failed:
            return "outcome|\(canary.id)|\(fact.checksum?.text ?? "")"
        case .rollbackFired:
            return "rollback-fired|\(canary.id)|\(fact.checksum?.text ?? "")"
        default:
            return nil
        }
    }
}

/// One message for one destination, ready to be delivered.
public struct OutboxMessage: Sendable, Equatable {
    /// A name for the destination, for logs and metrics (`slack`, `webhook`).
    public var target: String
    /// Where it is POSTed.
    public var url: String
    /// Its content type.
    public var contentType: String
    /// Its body.
    public var body: Data

    /// Creates a message.
    public init(target: String, url: String, contentType: String = "application/json", body: Data) {
        self.target = target
        self.url = url
        self.contentType = contentType
        self.body = body
    }
}

/// Decides which messages a fact produces; the store enqueues them in the fact's own transaction.
public protocol NotificationPolicy: Sendable {
    /// The messages for a fact (none if nobody is to be told).
    func messages(for notable: Notable) -> [OutboxMessage]
    /// How long delivery is retried before it is given up and recorded in the audit trail.
    var giveUpAfter: TimeInterval { get }
}

/// A message waiting in the outbox.
public struct PendingNotification: Sendable, Equatable {
    /// The outbox row.
    public var id: Int64
    /// The message.
    public var message: OutboxMessage
    /// Tries so far.
    public var attempts: Int
    /// When delivery stops being retried.
    public var giveUpAt: Date
}

extension Notable {
    /// The notable facts among a gate's facts.
    static func from(_ facts: [GateFact], gate: GateKind, canary: Canary, at now: Date) -> [Notable] {
        facts.compactMap { fact in
            let kind: Kind
            switch (fact.action, gate) {
            case (.refused, .rollout), (.refused, .traffic), (.refused, .promotion), (.refused, .shared):
                kind = .waiting
            case (.opened, .rollback): kind = .rollbackRequested
            case (.opened, _): kind = .opened
            case (.closed, _): kind = .closed
            case (.expired, _): kind = .expired
            case (.approved, .rollback): kind = .rollbackFired
            default: return nil
            }
            return Notable(kind: kind, canary: canary, gate: gate, fact: fact, freeze: nil, at: now)
        }
    }
}

extension GateStore {
    /// How many messages wait in the outbox (neither delivered nor given up); nil when storage
    /// does not answer within `limit` or is failing — a scrape must never wait on a stalled volume.
    public func pendingNotifications(within limit: Duration = .milliseconds(200)) async -> Int? {
        guard isHealthy else { return nil }
        let count = Task {
            try? await self.rows(Outbox.pendingCount) { Int(try $0.integer("count")) }.first ?? 0
        }
        return await Bounded.value(of: count, within: limit) ?? nil
    }

    /// Claims the outbox rows due for delivery: each is leased to this caller for `lease` (its next
    /// attempt moved past it), so replicas sharing the outbox never deliver one message at once; a
    /// replica that dies mid-delivery leaves it to be retried when the lease ends.
    public func dueNotifications(at now: Date = Date(), limit: Int = 20, lease: TimeInterval = 60) async throws
        -> [PendingNotification]
    {
        try await transaction(reads: [Outbox.claimDue(at: now, limit: limit, lease: lease)]) { rows in
            Plan(value: try rows[0].map(Outbox.pending).sorted { $0.id < $1.id })
        }
    }

    /// Records a delivery.
    public func markDelivered(_ id: Int64, at now: Date = Date()) async throws {
        try await run([Outbox.delivered(id, at: now)])
    }

    /// Schedules another try.
    public func retryDelivery(_ id: Int64, at next: Date, error: String) async throws {
        try await run([Outbox.retry(id, at: next, error: error)])
    }

    /// Stops trying, and says so in the audit trail.
    public func giveUpDelivery(_ id: Int64, target: String, error: String, at now: Date = Date()) async throws {
        let fact = GateFact(
            action: .notificationFailed, actor: Gate.systemActor,
            reason: "gave up delivering notification \(id) to \(target): \(error)")
        try await run([
            Outbox.givenUp(id, error: error, at: now),
            Records.audit(at: now, in: nil, fact: fact),
        ])
    }

    /// Enqueues the messages for a fact found outside a write (a reminder); the key keeps it to one.
    public func enqueue(_ notable: Notable) async throws {
        try await run(enqueueing(notable))
    }

    /// Records that a single-use token (an approval link's nonce, a Slack request's signature) was
    /// used; false if it already was. Kept until `expiresAt`, when it could not be used anyway.
    public func useOnce(_ nonce: String, expiresAt: Date, at now: Date = Date()) async throws -> Bool {
        let use = Records.use(SingleUse(nonce: nonce, expiresAt: expiresAt), at: now)
        return try await transaction(reads: use) { rows in Plan(value: rows.last?.isEmpty == false) }
    }

    /// Whether a single-use token was used already.
    public func isUsed(_ nonce: String) async throws -> Bool {
        try await !rows(SQL("SELECT nonce FROM usedLink WHERE nonce = ?", [.text(nonce)])) { _ in () }.isEmpty
    }

    /// The statements that insert a fact's messages, once per key.
    func enqueueing(_ notable: Notable) -> [SQL] {
        guard let policy = notifications else { return [] }
        return policy.messages(for: notable).map { Outbox.insert($0, for: notable, giveUpAfter: policy.giveUpAfter) }
    }
}

/// The statements of the notification outbox, the same for SQLite and PostgreSQL.
enum Outbox {
    static let pendingCount = SQL("SELECT COUNT(*) AS count FROM outbox WHERE deliveredAt IS NULL AND failedAt IS NULL")

    static func insert(_ message: OutboxMessage, for notable: Notable, giveUpAfter: TimeInterval) -> SQL {
        SQL(
            """
            INSERT INTO outbox (key, target, url, contentType, body, createdAt, nextAttemptAt, giveUpAt)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING
            """,
            [
                notable.key.map { "\($0)|\(message.target)|\(message.url)" }.stored, .text(message.target),
                .text(message.url), .text(message.contentType), .blob(message.body), .date(notable.at),
                .date(notable.at), .date(notable.at.addingTimeInterval(giveUpAfter)),
            ])
    }

    /// Moves the next attempt of the due rows past the lease and returns them. The outer condition
    /// is checked again on a row another replica claimed meanwhile (PostgreSQL re-reads a row it
    /// waited for), so that replica keeps it.
    static func claimDue(at now: Date, limit: Int, lease: TimeInterval) -> SQL {
        SQL(
            """
            UPDATE outbox SET nextAttemptAt = ?
            WHERE deliveredAt IS NULL AND failedAt IS NULL AND nextAttemptAt <= ? AND id IN (
                SELECT id FROM outbox WHERE deliveredAt IS NULL AND failedAt IS NULL AND nextAttemptAt <= ?
                ORDER BY nextAttemptAt, id LIMIT ?)
            RETURNING *
            """, [.date(now.addingTimeInterval(lease)), .date(now), .date(now), .integer(Int64(limit))])
    }

    static func pending(_ row: any StoredRow) throws -> PendingNotification {
        PendingNotification(
            id: try row.integer("id"),
            message: OutboxMessage(
                target: try row.text("target"), url: try row.text("url"), contentType: try row.text("contentType"),
                body: try Data(stored: try row.value("body", as: .blob))),
            attempts: Int(try row.integer("attempts")), giveUpAt: try Date(stored: try row.value("giveUpAt", as: .date))
        )
    }

    static func delivered(_ id: Int64, at now: Date) -> SQL {
        SQL(
            "UPDATE outbox SET deliveredAt = ?, attempts = attempts + 1, lastError = NULL WHERE id = ?",
            [.date(now), .integer(id)])
    }

    static func retry(_ id: Int64, at next: Date, error: String) -> SQL {
        SQL(
            "UPDATE outbox SET nextAttemptAt = ?, attempts = attempts + 1, lastError = ? WHERE id = ?",
            [.date(next), .text(error), .integer(id)])
    }

    static func givenUp(_ id: Int64, error: String, at now: Date) -> SQL {
        SQL(
            "UPDATE outbox SET failedAt = ?, attempts = attempts + 1, lastError = ? WHERE id = ?",
            [.date(now), .text(error), .integer(id)])
    }
}

/// A token that may be used once (an approval link's nonce): using it and acting on it happen in
/// one transaction, so a crash between them cannot spend it for nothing.
public struct SingleUse: Sendable {
    /// The token.
    public var nonce: String
    /// When it could not be used any more anyway, so its record may go.
    public var expiresAt: Date

    /// Creates a single-use token.
    public init(nonce: String, expiresAt: Date) {
        self.nonce = nonce
        self.expiresAt = expiresAt
    }
}
