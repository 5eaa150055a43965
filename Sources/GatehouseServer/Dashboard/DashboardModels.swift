import Foundation
import GatehouseCore
import GatehouseStore

// What the dashboard's templates show, as plain values: every sentence is made here, and the
// templates only place and escape them.

/// A moment, as a machine-readable time (UTC; the page's script shows it in the viewer's zone on
/// hover), how long ago it was, and that in words ("4 min ago", "in 2 h").
struct Moment {
    var iso: String
    var ago: String
    var relative: String

    init(_ date: Date, now: Date = Date()) {
        iso = Timestamp.string(from: date)
        ago = Self.words(max(Int(now.timeIntervalSince(date).rounded()), 1))
        relative = Self.relative(date, now: now)
    }

    /// "just now", "40 s ago", "4 min ago", "3 h 5 min ago", "2 d ago"; "in …" for a time to come.
    static func relative(_ date: Date, now: Date) -> String {
        let seconds = Int(now.timeIntervalSince(date).rounded())
        guard abs(seconds) >= 5 else { return "just now" }
        return seconds > 0 ? words(seconds) + " ago" : "in " + words(-seconds)
    }

    /// A length of time in words, to its two largest units: "40 s", "4 min", "3 h 5 min", "2 d 1 h".
    static func words(_ seconds: Int) -> String {
        switch seconds {
        case ..<60: "\(seconds) s"
        case ..<3600: "\(seconds / 60) min"
        case ..<86400: "\(seconds / 3600) h" + (seconds % 3600 / 60 == 0 ? "" : " \(seconds % 3600 / 60) min")
        default: "\(seconds / 86400) d" + (seconds % 86400 / 3600 == 0 ? "" : " \(seconds % 86400 / 3600) h")
        }
    }
}

/// What holds a canary, in words.
struct WaitingModel {
    var label: String
    var cause: String
    var since: Moment
    var message: String

    init(_ waiting: Waiting, now: Date) {
        label = "\(waiting.gate.rawValue) gate: \(waiting.cause.summary)"
        cause = waiting.cause.rawValue
        since = Moment(waiting.since, now: now)
        message = waiting.message
    }
}

/// What a dry-run rule would have done differently, in words.
struct DryRunModel {
    var rule: String
    var verb: String
    var gate: String
    var since: Moment
    var message: String

    init(_ dryRun: DryRun, now: Date) {
        rule = dryRun.rule
        verb = dryRun.wouldHold ? "held" : "let pass"
        gate = dryRun.gate.rawValue
        since = Moment(dryRun.since, now: now)
        message = dryRun.message
    }
}

/// The page of one canary: where it is, the path of its page and actions.
struct CanaryModel {
    var id: String
    var namespace: String
    var name: String
    /// `/canaries/NAMESPACE/NAME`: the page, and the prefix of its actions.
    var base: String
    /// `?cluster=…` when the canary's cluster is named.
    var query: String
    /// The addresses live updates fetch: the canary's state and gates, and its timeline.
    var liveStatus: String
    var liveTimeline: String
    var phase: String
    var state: String
    var rollout: String
    var lastSeen: Moment?
    var message: String?
    var waiting: WaitingModel?
    var dryRuns: [DryRunModel] = []
    var gates: [GateRow]
    var timeline: [RolloutHistory]

    init(_ id: CanaryID) {
        self.id = id.description
        namespace = id.namespace
        name = id.name
        base = Self.path(of: id)
        query = id.cluster.isEmpty ? "" : "?cluster=" + Self.escape(id.cluster)
        liveStatus = base + (query.isEmpty ? "?" : query + "&") + "part=status"
        liveTimeline = base + (query.isEmpty ? "?" : query + "&") + "part=timeline"
        phase = ""
        state = ""
        rollout = ""
        gates = []
        timeline = []
    }

    /// The phase Flagger last reported; one that ended the previous rollout says so while a new
    /// one waits to start (not "Succeeded" for a release that has not begun).
    static func phase(of canary: Canary, unknown: String) -> String {
        guard let phase = canary.lastPhase else { return unknown }
        if canary.rollout.stage == .waiting, [.succeeded, .failed].contains(phase) {
            return "\(phase.rawValue) (previous rollout)"
        }
        return phase.rawValue
    }

    /// `/canaries/NAMESPACE/NAME` (namespaces and names are DNS labels and subdomains: nothing to escape).
    static func path(of id: CanaryID) -> String { "/canaries/\(id.namespace)/\(id.name)" }

    /// The page of a canary, with its cluster.
    static func href(of id: CanaryID) -> String {
        path(of: id) + (id.cluster.isEmpty ? "" : "?cluster=" + escape(id.cluster))
    }

    static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~")))
            ?? ""
    }

    /// Everything the page shows of `canary` at `now`.
    init(_ canary: Canary, view: CanaryView, events: [AuditEntry], now: Date) {
        self.init(canary.id)
        phase = CanaryModel.phase(of: canary, unknown: "not reported yet")
        state = view.state.rawValue
        let rollout = canary.rollout
        var text = rollout.stage.rawValue
        if let revision = rollout.currentChecksum { text += ", revision \(revision)" }
        if let since = rollout.since { text += ", since \(Moment.relative(since, now: now))" }
        if let held = rollout.held { text += ". \(held)" }
        self.rollout = text
        lastSeen = canary.lastSeen.map { Moment($0, now: now) }
        message = view.message
        waiting = view.waitingOn.map { WaitingModel($0, now: now) }
        dryRuns = canary.dryRuns.map { DryRunModel($0, now: now) }
        gates = GateKind.allCases.map { GateRow($0, view.gates[$0.rawValue]) }
        timeline = RolloutHistory.grouping(
            events, current: rollout.isInProgress ? rollout.currentChecksum : nil, plan: canary.labels.trafficPlan,
            now: now)
    }
}

/// One gate's row.
struct GateRow {
    var name: String
    /// `open`, `approving` or `closed` (a class of the row).
    var state: String
    /// The state in words: `1 of 2 approvals` while a rule waits for more.
    var stateText: String
    var mode: String
    var bound: String
    var expires: Moment?
    var steps: String
    var changed: Change?
    var verdict: String
    var verdictAt: Moment?
    /// Where a rule counts approvals: "1 of 2 approvals: alice; waiting for one of: bob, carol".
    var approvals: String?

    struct Change {
        var actor: String
        var reason: String?
        var changed: Moment
    }

    init(_ kind: GateKind, _ gate: GateView?) {
        name = kind.rawValue
        approvals = gate?.approvalStatus
        state = gate?.state.rawValue ?? "closed"
        stateText = state
        if let gate, gate.state == .approving {
            stateText = "\(gate.approvalsCounted ?? 0) of \(gate.approvalsRequired ?? 0) approvals"
        }
        mode = gate?.mode.rawValue ?? ""
        bound = gate?.boundChecksum ?? "—"
        expires = gate?.expiresAt.map { Moment($0) }
        steps = gate?.remainingSteps.map(String.init) ?? "—"
        changed = gate.flatMap { gate in
            gate.changedAt.map {
                Change(actor: gate.actor ?? "", reason: gate.reason, changed: Moment($0))
            }
        }
        verdict = gate?.lastVerdict?.rawValue ?? "—"
        verdictAt = gate?.lastVerdict == nil ? nil : gate?.lastVerdictAt.map { Moment($0) }
    }
}

/// The audit entries and Flagger's events of one rollout, newest first, with its traffic over time.
struct RolloutHistory {
    var title: String
    var entries: [EntryRow]
    /// The weights Flagger's events report, when they report any.
    var progress: RolloutProgress?

    /// The canary's entries (newest first) by rollout, newest first (`Release.split`: one release is
    /// one rollout, its start included), titled. `plan`, when the canary's metadata says how its
    /// analysis moves traffic, gives the maximum and the steps left.
    static func grouping(_ events: [AuditEntry], current: Revision?, plan: TrafficPlan? = nil, now: Date = Date())
        -> [RolloutHistory]
    {
        Release.split(events.reversed()).reversed().enumerated().map { index, release in
            let title: String
            switch release.anyChecksum {
            case _ where index == 0 && current != nil && (release.revision == nil || release.revision == current):
                title = "Rollout \(current!) (in progress)"
            case _ where index == 0 && release.revision == nil && release.end == nil && release.asksRolloutGate:
                title = "Next rollout (waiting to start)"
            case nil: title = "Without a rollout"
            case let revision?: title = "Rollout \(revision)"
            }
            // The newest rollout, in progress, runs until now; the others end at their last entry.
            let inProgress = index == 0 && current != nil
            return RolloutHistory(
                title: title, entries: release.entries.reversed().map { EntryRow($0, linkingCanary: false) },
                progress: RolloutProgress(release.entries, until: inProgress ? now : nil, plan: plan))
        }
    }
}

/// A rollout's traffic over time, from Flagger's events ("Advance podinfo.test canary weight 20"):
/// the weight now and the highest reached (and, when the canary's metadata repeats its analysis, the
/// maximum and the steps left), how long it stayed at each, the analysis checks that failed, and a
/// small chart of weight over time (drawn on the server; no script needed).
struct RolloutProgress {
    struct Step {
        var weight: Int
        var time: String
    }

    var weight: Int
    var highest: Int
    var steps: [Step]
    var failedChecks: Int
    var summary: String
    /// The chart: its polyline's points, the top of its scale, and what it shows in words.
    var points: String
    var scaleTop: Int
    var label: String

    static let width = 560.0
    static let height = 120.0
    static let left = 40.0
    static let bottom = 18.0
    static let top = 8.0

    /// From a rollout's entries, oldest first, until `end` (now, for one in progress; else its last
    /// entry). Nil when no event reports a weight.
    init?(_ entries: [AuditEntry], until end: Date?, plan: TrafficPlan? = nil) {
        let events = entries.filter { $0.action == .event }
        let advances = events.compactMap { event in
            event.reason.flatMap(FlaggerMessage.advancedWeight).map { (at: event.at, weight: $0) }
        }
        guard let start = entries.first?.at, let last = entries.last?.at, !advances.isEmpty else { return nil }
        let finish = max(end ?? last, last)
        weight = advances.last!.weight
        highest = advances.map(\.weight).max()!
        failedChecks = events.filter { $0.reason.map(FlaggerMessage.isFailedCheck) ?? false }.count
        steps = advances.enumerated().map { index, advance in
            let next = index + 1 < advances.count ? advances[index + 1].at : finish
            let seconds = max(Int(next.timeIntervalSince(advance.at).rounded()), 0)
            return Step(
                weight: advance.weight,
                time: Moment.words(max(seconds, 1)) + (index + 1 == advances.count && end != nil ? " so far" : ""))
        }
        let total = Moment.words(max(Int(finish.timeIntervalSince(start).rounded()), 1))
        let failed = failedChecks == 0 ? "" : "; \(failedChecks) failed check\(failedChecks == 1 ? "" : "s")"
        let of = plan.map { " of \($0.maximum)%" } ?? ""
        var left = ""
        if end != nil, let plan, let count = plan.stepsLeft(from: weight) {
            left = count == 0 ? "; at its maximum" : "; \(count) step\(count == 1 ? "" : "s") left"
        }
        summary =
            "Canary weight \(weight)%\(of) (highest \(highest)%) after \(advances.count) step\(advances.count == 1 ? "" : "s") in \(total)\(left)\(failed)."
        let scale = max(10, (max(highest, plan?.maximum ?? 0) + 9) / 10 * 10)
        scaleTop = scale
        label = "Canary weight over \(total): " + advances.map { "\($0.weight)%" }.joined(separator: ", ")
        points = Self.chart(advances, from: start, to: finish, scale: scale)
    }

    /// The polyline: weight 0 from the rollout's first entry, each advance a step up (or down),
    /// held until the end.
    static func chart(_ advances: [(at: Date, weight: Int)], from start: Date, to finish: Date, scale: Int) -> String {
        let span = max(finish.timeIntervalSince(start), 1)
        let plotWidth = width - left - 8
        let plotHeight = height - top - bottom
        func point(_ date: Date, _ weight: Int) -> String {
            String(
                format: "%.1f,%.1f", left + date.timeIntervalSince(start) / span * plotWidth,
                top + (1 - Double(weight) / Double(scale)) * plotHeight)
        }
        var points = [point(start, 0)]
        var previous = 0
        for advance in advances {
            points.append(point(advance.at, previous))
            points.append(point(advance.at, advance.weight))
            previous = advance.weight
        }
        points.append(point(finish, previous))
        return points.joined(separator: " ")
    }
}

/// One audit entry, in words.
struct EntryRow {
    var at: Moment
    var action: String
    var what: String
    var actor: String
    var reason: String?
    var subject: String
    var href: String?
    var checksum: String

    init(_ entry: AuditEntry, linkingCanary: Bool) {
        at = Moment(entry.at)
        action = entry.action.rawValue
        let gate = entry.gate.map { " the \($0.rawValue) gate" } ?? ""
        switch entry.action {
        case .event: what = "Flagger event" + (entry.phase.map { " (\($0.rawValue))" } ?? "")
        case .postRollout: what = "post-rollout report" + (entry.phase.map { ": \($0.rawValue)" } ?? "")
        case .freezeSet: what = "set a freeze"
        case .freezeLifted: what = "lifted a freeze"
        case .notificationFailed: what = "notification not delivered"
        default: what = entry.action.rawValue + gate
        }
        actor = entry.actor
        reason = entry.reason
        checksum = entry.checksum?.text ?? ""
        let area = Area(cluster: entry.cluster, namespace: entry.namespace)
        if let namespace = entry.namespace, let name = entry.name,
            let id = try? CanaryID(cluster: entry.cluster ?? "", namespace: namespace, name: name)
        {
            subject = id.description
            href = linkingCanary ? CanaryModel.href(of: id) : nil
        } else {
            subject = area.description
        }
    }
}

/// A choice in a drop-down.
struct Choice {
    var value: String
    var label: String
    var selected: Bool
}

/// The overview page.
struct OverviewPage {
    var page: PageFrame
    var live: OverviewLive
    var filter: OverviewFilter
}

/// The overview's filters.
struct OverviewFilter {
    var namespace: String
    var namespaces: [String]
    var states: [Choice]
    /// The page with these filters, which live updates fetch.
    var here: String
}

/// The part of the overview that live updates replace.
struct OverviewLive {
    var groups: [OverviewGroup]
    var empty: Bool { groups.isEmpty }
    var emptyText: String
    var updated: String
    /// The CSRF token of the rows' forms.
    var csrf: String
}

/// Canaries in one state.
struct OverviewGroup {
    var title: String
    var column: String
    /// How many canaries are in this state; nil where counting them would mean looking at every one.
    var count: Int?
    /// How many of them it shows.
    var showing: Int
    var rows: [OverviewRow]
    /// The first page of the group, when this is a later one.
    var first: String?
    /// The next page of the group, when there is one.
    var next: String?
    /// The page listing all of the group, when it shows only the first.
    var all: String?
}

/// One canary in the overview.
struct OverviewRow {
    var id: String
    var href: String
    var phase: String
    var state: String
    var waiting: WaitingModel?
    var detail: String
    var lastSeen: Moment?
    /// The one thing that lets it go on, for the viewer to do right here; nil when approving cannot
    /// help (a freeze, a window, a dependency, the queue) or nothing waits. (Not `next`: a row without
    /// one would find its group's next-page link instead, as Mustache looks up the stack.)
    var step: NextAction?

    init(_ canary: Canary, view: CanaryView, now: Date, caller: Caller? = nil, policy: Policy = .none) {
        id = canary.id.description
        href = CanaryModel.href(of: canary.id)
        phase = CanaryModel.phase(of: canary, unknown: "—")
        state = view.state.rawValue
        waiting = view.waitingOn.map { WaitingModel($0, now: now) }
        let rollout = canary.rollout
        let revision = rollout.currentChecksum.map { " (revision \($0))" } ?? ""
        detail = rollout.stage.rawValue + revision
        lastSeen = canary.lastSeen.map { Moment($0, now: now) }
        if let caller, let waiting = view.waitingOn {
            step = NextAction(canary, waiting: waiting, view: view, caller: caller, policy: policy, at: now)
        }
    }
}

/// A waiting canary's next step on the overview: one button (two for traffic: the next step, or the
/// rest of the rollout) with an optional reason, the rule's tally, and whether the viewer's approval
/// counts; Roll back through its confirmation page while a rollout is under way.
struct NextAction {
    /// Where the form posts (the canary page's open action), and the page it returns to.
    var action: String
    var gate: String
    var checksum: String
    var label: String
    var isTraffic: Bool
    /// "1 of 2 approvals: alice; waiting for one of: bob, carol", where a rule counts approvals.
    var tally: String?
    /// Why the viewer cannot approve, where a rule would not count them; the button is not offered.
    var cannot: String?
    /// The rollback confirmation page, when the viewer may ask for one and a rollout is under way.
    var rollback: String?

    init?(_ canary: Canary, waiting: Waiting, view: CanaryView, caller: Caller, policy: Policy, at now: Date) {
        guard [.closed, .expired, .held, .approvals].contains(waiting.cause) else { return nil }
        let gate = canary.gateToOpen(waitingAt: waiting.gate, checksum: canary.gate(waiting.gate).lastVerdictChecksum)
        guard gate != .rollback, caller.allows(.open, in: canary.id.area) else { return nil }
        let query = canary.id.cluster.isEmpty ? "" : "?cluster=" + CanaryModel.escape(canary.id.cluster)
        action = CanaryModel.path(of: canary.id) + "/open" + query
        self.gate = gate.rawValue
        checksum = canary.rollout.isInProgress ? canary.rollout.currentChecksum?.text ?? "" : ""
        isTraffic = gate == .traffic
        label =
            switch gate {
            case .rollout: "Start the rollout"
            case .promotion: "Promote"
            case .traffic: "Approve the next step"
            default: "Open the \(gate.rawValue) gate"
            }
        tally = view.gates[gate.rawValue]?.approvalStatus
        do {
            try GateStore.requireApprover(
                caller.actor, groups: caller.principal.groups, of: gate, canary, under: policy, at: now)
        } catch {
            cannot = "Your approval would not count: \(GatehouseError.from(error, request: nil).message)."
        }
        if canary.rollout.canRollBack, caller.allows(.rollback, in: canary.id.area) {
            rollback = CanaryModel.path(of: canary.id) + "/rollback" + query
        }
    }
}

/// The canary page.
struct CanaryPage {
    var page: PageFrame
    var canary: CanaryModel
    var actions: CanaryActions?
    var readOnlyNote: String
}

/// The forms of the canary page the viewer may use; nil when they may use none.
struct CanaryActions {
    /// One approval form.
    struct Approval {
        var gate: String
        var title: String
        var button: String
        var isTraffic: Bool
    }

    /// One gate that can be closed.
    struct Closable {
        var gate: String
    }

    var checksum: String
    var rolloutNote: String
    var approvals: [Approval]
    var closable: [Closable]
    var canRollback: Bool

    init?(_ canary: Canary, view: CanaryView, caller: Caller, at now: Date) {
        let area = canary.id.area
        let mayOpen = caller.allows(.open, in: area)
        let mayClose = caller.allows(.close, in: area)
        let mayRollBack = caller.allows(.rollback, in: area)
        guard mayOpen || mayClose || mayRollBack else { return nil }
        let rollout = canary.rollout
        checksum = rollout.isInProgress ? rollout.currentChecksum?.text ?? "" : ""
        rolloutNote =
            checksum.isEmpty
            ? "No rollout is in progress: an approval given here is for the next one."
            : "Approvals given here are for rollout \(checksum) only."
        // Only the approvals that apply now: the rollout gate before a rollout starts; traffic and
        // promotion while one is under way; none while it is promoted. The gate the canary waits
        // on comes first (a revision held for skipping the rollout gate is approved through it).
        var gates: [GateKind]
        switch rollout.stage {
        case .idle, .waiting, .ended: gates = [.rollout]
        case .admitted, .progressing: gates = [.traffic, .promotion]
        case .promoting: gates = []
        }
        if let waiting = view.waitingOn?.gate, waiting != .rollback {
            let toOpen = canary.gateToOpen(waitingAt: waiting, checksum: canary.gate(waiting).lastVerdictChecksum)
            gates.removeAll { $0 == toOpen }
            gates.insert(toOpen, at: 0)
        }
        approvals =
            mayOpen
            ? gates.map { gate in
                switch gate {
                case .rollout:
                    Approval(
                        gate: "rollout", title: "Start the rollout", button: "Approve this rollout", isTraffic: false)
                case .traffic:
                    Approval(gate: "traffic", title: "Approve traffic increases", button: "", isTraffic: true)
                case .promotion:
                    Approval(
                        gate: "promotion", title: "Approve promotion", button: "Approve promotion", isTraffic: false)
                default:
                    Approval(
                        gate: gate.rawValue, title: "Open the \(gate.rawValue) gate", button: "Approve",
                        isTraffic: false)
                }
            } : []
        closable =
            mayClose
            ? GateKind.allCases.filter { canary.gate($0).isEffectivelyOpen(at: now) }.map {
                Closable(gate: $0.rawValue)
            }
            : []
        canRollback = mayRollBack && rollout.canRollBack
    }
}

/// The rollback confirmation page.
struct RollbackPage {
    var page: PageFrame
    var canary: CanaryModel
    var checksum: String
    var consequence: String
}

/// The freezes page.
struct FreezesPage {
    var page: PageFrame
    var freezes: [FreezeRow]
    var emptyText: String
    var toggleHref: String
    var toggleLabel: String
    var canFreeze: Bool
}

/// One freeze.
struct FreezeRow {
    var id: Int64
    var covers: String
    var reason: String
    var actor: String
    var since: Moment
    /// How it ends ("lifted by alice", "ends", "ended", "until lifted"), and when.
    var ends: String
    var endsAt: Moment?
    var active: Bool
    var canLift: Bool

    init(_ freeze: Freeze, canLift: Bool, now: Date) {
        id = freeze.id
        covers = freeze.area == .everywhere ? "everything" : freeze.area.description
        reason = freeze.reason
        actor = freeze.actor
        since = Moment(freeze.createdAt, now: now)
        active = freeze.isActive(at: now)
        if let liftedAt = freeze.liftedAt {
            ends = "lifted by \(freeze.liftedBy ?? "someone")"
            endsAt = Moment(liftedAt, now: now)
        } else if let endsAt = freeze.endsAt {
            ends = active ? "ends" : "ended"
            self.endsAt = Moment(endsAt, now: now)
        } else {
            ends = "until lifted"
        }
        self.canLift = canLift && active
    }
}

/// The audit page.
struct AuditPageModel {
    var page: PageFrame
    var filter: AuditFilterModel
    var entries: [EntryRow]
    var olderHref: String?
}

/// The audit page's search, as given.
struct AuditFilterModel {
    var canary: String
    var namespace: String
    var actor: String
    var actions: [Choice]
    var since: String
    var until: String
}

/// The sign-in page.
struct SignInPage {
    var page: PageFrame
    var next: String
    var problem: String?
    /// Where single sign-on starts, when it is configured.
    var singleSignOn: String?
}
