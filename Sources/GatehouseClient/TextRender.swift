import Foundation
import GatehouseCore

/// The text the CLI prints for people; `--output json` prints the API's JSON instead.
public enum TextRender {
    /// The status table of many canaries.
    public static func table(_ canaries: [CanaryStatus], now: Date = Date()) -> String {
        guard !canaries.isEmpty else { return "No canaries yet: Flagger has not called and no gate was opened." }
        var rows = [
            ["CANARY", "PHASE", "WAITING ON"] + GateKind.allCases.map { $0.rawValue.uppercased() } + ["LAST SEEN"]
        ]
        for canary in canaries {
            rows.append(
                [canary.displayName, canary.phase?.rawValue ?? "-", waiting(canary, now: now)]
                    + GateKind.allCases.map { gate(canary.gate($0), now: now) }
                    + [canary.lastSeen.map { age($0, now: now) + " ago" } ?? "-"])
        }
        return columns(rows)
    }

    /// One canary in detail, with its latest audit entries.
    public static func detail(_ canary: CanaryStatus, events: [AuditEntry], now: Date = Date()) -> String {
        var lines = [
            "Canary:     \(canary.displayName)",
            "Phase:      \(canary.phase?.rawValue ?? "-")\(canary.inRollout ? " (rollout under way)" : "")",
            "Checksum:   \(canary.checksum ?? "-")",
            "Last seen:  \(canary.lastSeen.map { age($0, now: now) + " ago" } ?? "never")",
            "Waiting on: \(waiting(canary, now: now))",
        ]
        if let why = canary.waitingOn?.message { lines.append("            \(why)") }
        if let hold = canary.waitingOn?.hold { lines.append("Rule:       \(hold.rule): \(hold.needed)") }
        for kind in GateKind.allCases {
            if let status = canary.gate(kind)?.approvalStatus {
                lines.append("Approvals:  \(kind.rawValue): \(status)")
            }
        }
        if let rollout = canary.rollout {
            lines.append("Rollout:    \(rollout.stage.rawValue)\(rollout.revision.map { " (revision \($0))" } ?? "")")
            if let held = rollout.held { lines.append("Held:       \(held)") }
        }
        if let message = canary.message { lines.append("Flagger:    \(message)") }
        lines.append("")
        var rows = [["GATE", "STATE", "BY", "REASON", "CHANGED"]]
        for kind in GateKind.allCases {
            let status = canary.gate(kind)
            rows.append([
                kind.rawValue, gate(status, now: now), status?.actor ?? "-", status?.reason ?? "-",
                status?.changedAt.map { age($0, now: now) + " ago" } ?? "-",
            ])
        }
        lines.append(columns(rows))
        if !events.isEmpty {
            lines.append("")
            lines.append("Latest events:")
            lines.append(self.events(events, now: now))
        }
        return lines.joined(separator: "\n")
    }

    /// Audit entries as a table.
    public static func events(_ events: [AuditEntry], now: Date = Date()) -> String {
        guard !events.isEmpty else { return "No events." }
        var rows = [["TIME", "CANARY", "GATE", "ACTION", "ACTOR", "CHECKSUM", "REASON"]]
        for event in events {
            let canary = [event.cluster, event.namespace, event.name].compactMap { $0 }.joined(separator: "/")
            rows.append([
                Timestamp.string(from: event.at), canary.isEmpty ? "-" : canary, event.gate?.rawValue ?? "-",
                event.action.rawValue, event.actor, event.checksum?.text ?? "-", event.reason ?? "",
            ])
        }
        return columns(rows)
    }

    /// Freezes as a table.
    public static func freezes(_ freezes: [Freeze], now: Date = Date()) -> String {
        guard !freezes.isEmpty else { return "No freezes in force." }
        var rows = [["ID", "SCOPE", "REASON", "BY", "UNTIL", "STATE"]]
        for freeze in freezes {
            rows.append([
                String(freeze.id), freeze.area == .everywhere ? "everything" : "\(freeze.area)", freeze.reason,
                freeze.actor,
                freeze.endsAt.map(Timestamp.string(from:)) ?? "lifted by hand",
                freeze.isActive(at: now) ? "active" : "ended",
            ])
        }
        return columns(rows)
    }

    /// One line after a change: the gate's new state, and what the change covers.
    public static func change(_ kind: GateKind, of canary: CanaryStatus, now: Date = Date()) -> String {
        let state = "\(kind.rawValue) gate of \(canary.displayName): \(gate(canary.gate(kind), now: now))"
        return canary.outcome.map { "\(state)\n\($0)" } ?? state
    }

    /// A gate in a few words: `closed`, `open once`, `open sticky, 2 steps, 14m left`, and, while a
    /// rule waits for more approvals, `1 of 2 approvals` instead of open.
    static func gate(_ gate: GateStatus?, now: Date) -> String {
        guard let gate, gate.isOpen || gate.isApproving else { return "closed" }
        var parts = [
            gate.isApproving
                ? "\(gate.approvalsCounted ?? 0) of \(gate.approvalsRequired.map(String.init) ?? "more") approvals"
                : "open \(gate.mode.rawValue)"
        ]
        if let steps = gate.remainingSteps { parts.append("\(steps) step\(steps == 1 ? "" : "s")") }
        if let expiry = gate.expiresAt {
            let left = max(expiry.timeIntervalSince(now), 0)
            // whole minutes, rounded up, read better than 1h59m59s
            parts.append("\(DurationText.format(left >= 60 ? (left / 60).rounded(.up) * 60 : left.rounded(.up))) left")
        }
        return parts.joined(separator: ", ")
    }

    /// What a canary waits on in a few words: `rollout for 5m (frozen)`.
    static func waiting(_ canary: CanaryStatus, now: Date) -> String {
        guard let waiting = canary.waitingOn else { return "-" }
        let why: String
        switch (waiting.cause, waiting.hold) {
        case (.held?, _), (nil, _):
            why = canary.rollout?.unapprovedRevision.map { " (revision \($0) not approved)" } ?? ""
        case (_, let hold?):
            let place = hold.position.map { ": \(Canary.ordinal($0))" } ?? ""
            why = " (\(waiting.cause?.summary ?? hold.kind.rawValue)\(place); rule \(hold.rule))"
        case (let cause?, nil): why = " (\(cause.summary))"
        }
        return "\(waiting.gate.rawValue) for \(age(waiting.since, now: now))\(why)"
    }

    /// The deploy windows of a policy, one line each: whether gates pass now and until when.
    public static func windows(_ policy: PolicyStatus) -> String? {
        let lines = policy.rules.compactMap { rule -> String? in
            guard let passes = rule.passesNow else { return nil }
            let gates = rule.gates.map(\.rawValue).joined(separator: ", ")
            let until = rule.changesAt.map { " until \(Timestamp.string(from: $0))" } ?? ""
            return "Window \(rule.name) (\(gates)): \(passes ? "passes" : "holds")\(until)"
        }
        return lines.isEmpty ? nil : lines.joined(separator: "\n")
    }

    static func age(_ date: Date, now: Date) -> String {
        DurationText.format(max(now.timeIntervalSince(date), 1))
    }

    static func columns(_ rows: [[String]]) -> String {
        let widths = rows.reduce(into: [Int]()) { widths, row in
            for (index, cell) in row.enumerated() {
                if index < widths.count {
                    widths[index] = max(widths[index], cell.count)
                } else {
                    widths.append(cell.count)
                }
            }
        }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
