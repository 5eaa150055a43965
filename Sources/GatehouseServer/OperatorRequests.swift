import Foundation
import GatehouseCore

/// The body of `POST …/gates/{gate}/open`.
struct OpenGateBody: Decodable {
    static let fields = ["reason", "ttl", "expiresAt", "steps", "sticky", "force"]
    var reason: String?
    var ttl: String?
    var expiresAt: String?
    var steps: Int?
    /// `"steps": "rest"`: every remaining traffic check of the rollout in progress.
    var restOfRollout = false
    var sticky: Bool?
    var force: Bool?

    init() {}

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: Self.fields)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        reason = try container.decodeIfPresent(String.self, forKey: .reason)
        ttl = try container.decodeIfPresent(String.self, forKey: .ttl)
        expiresAt = try container.decodeIfPresent(String.self, forKey: .expiresAt)
        if (try? container.decodeIfPresent(String.self, forKey: .steps)) != nil {
            guard try container.decode(String.self, forKey: .steps) == "rest" else {
                throw InvalidInput(Self.stepsRule)
            }
            restOfRollout = true
        } else if let number = try? container.decodeIfPresent(Int.self, forKey: .steps) {
            steps = number
        } else if container.contains(.steps), try !container.decodeNil(forKey: .steps) {
            throw InvalidInput(Self.stepsRule)
        }
        sticky = try container.decodeIfPresent(Bool.self, forKey: .sticky)
        force = try container.decodeIfPresent(Bool.self, forKey: .force)
    }

    private enum CodingKeys: String, CodingKey { case reason, ttl, expiresAt, steps, sticky, force }

    /// How many traffic checks one approval may cover.
    static let steps = 1...10_000
    static let stepsRule = "steps must be a whole number from 1 to 10000, or \"rest\" for the rest of this rollout"

    /// The validated request for `gate`; `force` only means something for a rollback.
    func openRequest(for gate: GateKind, now: Date) throws(InvalidInput) -> OpenRequest {
        if (steps != nil || restOfRollout) && gate != .traffic {
            throw InvalidInput("steps applies only to the traffic gate")
        }
        if let steps, !Self.steps.contains(steps) {
            throw InvalidInput(Self.stepsRule)
        }
        if restOfRollout && sticky == true {
            throw InvalidInput("steps \"rest\" is for this rollout only, so it cannot be sticky")
        }
        if force != nil && gate != .rollback {
            throw InvalidInput("force applies only to a rollback")
        }
        if sticky == true && gate == .rollback {
            throw InvalidInput(
                "a rollback request cannot be sticky: it belongs to one rollout; give it a ttl instead")
        }
        return OpenRequest(
            reason: try Reason.validate(reason), expiresAt: try Expiry.date(ttl: ttl, expiresAt: expiresAt, now: now),
            steps: steps, isSticky: sticky ?? false, coversRestOfRollout: restOfRollout)
    }
}

/// A body that gives only a reason: `POST …/gates/{gate}/close`, `POST …/request`.
struct ReasonBody: Decodable {
    var reason: String?

    init() {}

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: ["reason"])
        reason = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(String.self, forKey: .reason)
    }

    private enum CodingKeys: String, CodingKey { case reason }
}

/// The body of `POST /v1/freezes`.
struct FreezeBody: Decodable {
    var cluster: String?
    var namespace: String?
    var reason: String
    var until: String?
    var duration: String?

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: ["cluster", "namespace", "reason", "until", "for"])
        let container = try decoder.container(keyedBy: CodingKeys.self)
        cluster = try container.decodeIfPresent(String.self, forKey: .cluster)
        namespace = try container.decodeIfPresent(String.self, forKey: .namespace)
        reason = try container.decode(String.self, forKey: .reason)
        until = try container.decodeIfPresent(String.self, forKey: .until)
        duration = try container.decodeIfPresent(String.self, forKey: .duration)
    }

    private enum CodingKeys: String, CodingKey {
        case cluster, namespace, reason, until
        case duration = "for"
    }

    /// What the freeze covers: absent or `*` is every cluster, or every namespace.
    func area() throws(InvalidInput) -> Area {
        try Self.area(cluster: cluster, namespace: namespace)
    }

    /// What a freeze of `cluster` and `namespace` covers: absent or `*` is every one.
    static func area(cluster: String?, namespace: String?) throws(InvalidInput) -> Area {
        try Area(
            validatingCluster: cluster.flatMap { $0 == "*" ? nil : $0 },
            namespace: namespace.flatMap { $0 == "*" ? nil : $0 })
    }
}

/// The body of `POST …/overrides`: lifting one policy rule for this rollout.
struct OverrideBody: Decodable {
    var rule: String
    var reason: String
    var ttl: String?
    var expiresAt: String?

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: ["rule", "reason", "ttl", "expiresAt"])
        let container = try decoder.container(keyedBy: CodingKeys.self)
        rule = try container.decode(String.self, forKey: .rule)
        reason = try container.decode(String.self, forKey: .reason)
        ttl = try container.decodeIfPresent(String.self, forKey: .ttl)
        expiresAt = try container.decodeIfPresent(String.self, forKey: .expiresAt)
    }

    private enum CodingKeys: String, CodingKey { case rule, reason, ttl, expiresAt }

    /// How long an override lasts unless told: it ends with the rollout in any case.
    static let defaultLifetime: TimeInterval = 24 * 60 * 60
}

/// Rules for the free-text reasons people give.
enum Reason {
    static let maximumLength = 1024

    /// Trims a reason and refuses one that is too long; empty means none.
    static func validate(_ reason: String?, required: Bool = false) throws(InvalidInput) -> String? {
        let trimmed = reason?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        if trimmed.isEmpty {
            if required { throw InvalidInput("a reason is required") }
            return nil
        }
        guard trimmed.count <= maximumLength else {
            throw InvalidInput("reason is longer than \(maximumLength) characters")
        }
        return trimmed
    }
}

/// Turns `ttl` or `expiresAt` into one point in time.
enum Expiry {
    static func date(
        ttl: String?, expiresAt: String?, now: Date, ttlField: String = "ttl", timeField: String = "expiresAt"
    )
        throws(InvalidInput) -> Date?
    {
        switch (ttl, expiresAt) {
        case (.some, .some):
            throw InvalidInput("give either \(ttlField) or \(timeField), not both")
        case (.some(let ttl), nil):
            let seconds = try DurationText.seconds(from: ttl, field: ttlField)
            // Shorter would expire before any check could see it.
            guard seconds >= 1 else { throw InvalidInput("\(ttlField) must be at least 1s") }
            return now.addingTimeInterval(seconds)
        case (nil, .some(let text)):
            let date = try Timestamp.date(from: text, field: timeField)
            guard date > now else { throw InvalidInput("\(timeField) \(text) is in the past") }
            return date
        case (nil, nil):
            return nil
        }
    }
}
