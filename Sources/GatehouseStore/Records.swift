import Foundation
import GatehouseCore

/// The statements that read and write canaries, gates and the audit trail, the same for SQLite and
/// PostgreSQL; made from the column lists in `Tables`.
enum Records {
    /// The condition that picks a canary's rows, and its arguments.
    static func key(_ id: CanaryID) -> (condition: String, arguments: [StoredValue]) {
        ("cluster = ? AND namespace = ? AND name = ?", [.text(id.cluster), .text(id.namespace), .text(id.name)])
    }

    static func canary(_ id: CanaryID, locked: Bool = false) -> SQL {
        SQL("SELECT * FROM canary WHERE \(key(id).condition)", key(id).arguments, locksRows: locked)
    }

    static func gates(of id: CanaryID) -> SQL {
        SQL("SELECT * FROM gate WHERE \(key(id).condition)", key(id).arguments)
    }

    /// What a change to a canary is decided from, in this order: its row, its gates' rows and the
    /// freezes in force. (Whether a new canary is taken on is counted in memory: `untouched`.)
    static func loading(_ id: CanaryID, at now: Date) -> [SQL] {
        [canary(id), gates(of: id), freezesInForce(at: now)]
    }

    /// What the rows of `loading` hold.
    static func loaded(_ rows: [[any StoredRow]]) throws -> (canary: Canary?, freezes: [Freeze]) {
        (try canaries(rows[0], gates: rows[1]).first, try rows[2].map(Tables.freeze.read))
    }

    /// The advisory lock changes that may take a rollout slot hold (PostgreSQL; SQLite has one writer).
    static let rolloutSlotsLock = "gatehouse: rollout slots"

    /// The other canaries a decision looks at (their rows, without gates), read after `loading`'s.
    static func peerReads(_ needs: PeerNeeds) -> [SQL] {
        var reads: [SQL] = []
        if needs.rollouts {
            reads.append(
                SQL(
                    "SELECT * FROM canary WHERE rolloutStage IN ('waiting', 'admitted', 'progressing', 'promoting')"))
        }
        if !needs.canaries.isEmpty {
            let condition = Array(repeating: "(\(key(needs.canaries[0]).condition))", count: needs.canaries.count)
            reads.append(
                SQL(
                    "SELECT * FROM canary WHERE " + condition.joined(separator: " OR "),
                    needs.canaries.flatMap { key($0).arguments }))
        }
        return reads
    }

    /// The canaries `peerReads` read, by identity.
    static func peers(_ needs: PeerNeeds, in rows: [[any StoredRow]]) throws -> CanaryTable {
        let count = (needs.rollouts ? 1 : 0) + (needs.canaries.isEmpty ? 0 : 1)
        return CanaryTable(try rows.dropFirst(loadingReads).prefix(count).joined().map(Tables.canary.read))
    }

    /// How many statements `loading` runs.
    static let loadingReads = 3

    /// Every canary and every gate, for `canaries(from:gates:)`.
    static let everyCanary = [SQL("SELECT * FROM canary"), SQL("SELECT * FROM gate")]

    /// The canaries the rows hold, each with its gates among the gate rows.
    static func canaries(_ rows: [any StoredRow], gates gateRows: [any StoredRow], pool: TextPool? = nil) throws
        -> [Canary]
    {
        var gates: [CanaryID: GateSet] = [:]
        for stored in try Tables.gate.read(gateRows, pool: pool) {
            gates[stored.canary, default: GateSet()][stored.gate.kind] = stored.gate
        }
        var canaries = try Tables.canary.read(rows, pool: pool)
        for index in canaries.indices {
            canaries[index].gates = gates.removeValue(forKey: canaries[index].id) ?? GateSet()
        }
        return canaries
    }

    /// Inserts or replaces the canary's row (not its gates).
    static func save(_ canary: Canary) -> SQL {
        Tables.canary.upsert(canary)
    }

    /// Writes only what checks observe over stored rows, whose gates and rollout may be newer than
    /// these copies, unless a row holds a later observation (another replica's), as the save of
    /// observations numbered `observed` (not a change checks wait for: `observations(since:)`);
    /// inserts a missing row whole. A few hundred rows a statement.
    static func saveObservations(_ canaries: [Canary], observed: Int64) -> [SQL] {
        stride(from: 0, to: canaries.count, by: 200).map { start in
            Tables.canary.upsert(
                Array(canaries[start..<min(start + 200, canaries.count)]), updating: Tables.observedCanaryColumns,
                where: "canary.lastSeen IS NULL OR canary.lastSeen < excluded.lastSeen",
                extra: [("observedVersion", .integer(observed))], changing: false)
        }
    }

    /// Takes the next number of a save of observations (see `observations(since:)`).
    static let nextObservedVersion = SQL(
        "UPDATE storeVersion SET observed = observed + 1 WHERE id = 1 RETURNING observed")

    /// The observations saved after `observed`: the latest save's number, then the rows saved since.
    static func observations(since observed: Int64) -> [SQL] {
        [
            SQL("SELECT observed FROM storeVersion WHERE id = 1"),
            SQL(
                "SELECT cluster, namespace, name, \(Tables.observedCanaryColumns.joined(separator: ", ")) FROM canary WHERE observedVersion > ?",
                [.integer(observed)]),
        ]
    }

    /// Inserts or replaces one gate's row; deletes it when the gate is just closed, as if never
    /// touched (memory keeps no such gate either: `GateSet`).
    static func save(_ gate: Gate, of canary: CanaryID) -> SQL {
        let stored = StoredGate(canary: canary, gate: gate)
        return gate == .closed(gate.kind) ? Tables.gate.delete(stored) : Tables.gate.upsert(stored)
    }

    /// Appends an entry about a canary to the audit trail.
    static func audit(at now: Date, of id: CanaryID, gate: GateKind?, fact: GateFact, phase: CanaryPhase?) -> SQL {
        audit(
            AuditEntry(
                id: 0, at: now, cluster: id.cluster.isEmpty ? nil : id.cluster, namespace: id.namespace, name: id.name,
                gate: gate, action: fact.action, actor: fact.actor, reason: fact.reason,
                checksum: fact.checksum, phase: phase))
    }

    /// Appends an entry about an area (a freeze's), or about nothing in particular, to the audit trail.
    static func audit(at now: Date, in area: Area?, fact: GateFact) -> SQL {
        audit(
            AuditEntry(
                id: 0, at: now, cluster: area?.cluster.flatMap { $0.isEmpty ? nil : $0 }, namespace: area?.namespace,
                name: nil, gate: nil, action: fact.action, actor: fact.actor, reason: fact.reason, checksum: nil,
                phase: nil))
    }

    private static func audit(_ entry: AuditEntry) -> SQL {
        var insert = Tables.audit.insertReturningID(entry)
        insert.auditEntry = entry
        return insert
    }

    /// The condition that picks a canary's audit entries (whose cluster is NULL when it is unnamed).
    private static func auditKey(_ id: CanaryID) -> (condition: String, arguments: [StoredValue]) {
        id.cluster.isEmpty
            ? ("cluster IS NULL AND namespace = ? AND name = ?", [.text(id.namespace), .text(id.name)])
            : key(id)
    }

    /// Forgets a canary: its audit entries, gates and row; other replicas' copies learn of it from `forgotten`.
    static func forget(_ id: CanaryID, at now: Date) -> [SQL] {
        [SQL("DELETE FROM audit WHERE \(auditKey(id).condition)", auditKey(id).arguments)]
            + ["gate", "canary"].map { SQL("DELETE FROM \($0) WHERE \(key(id).condition)", key(id).arguments) }
            + [
                SQL(
                    "INSERT INTO forgotten (version, at, cluster, namespace, name) VALUES (?, ?, ?, ?, ?)",
                    [.changeVersion, .date(now)] + key(id).arguments)
            ]
    }

    // MARK: Change versions

    /// Takes the next change version (the row stays locked until the transaction ends, so versions
    /// are taken in the order their changes commit).
    static let nextVersion = SQL("UPDATE storeVersion SET version = version + 1 WHERE id = 1 RETURNING version")

    /// The latest change version, and up to which version forgotten canaries are no longer listed.
    static let latestVersion = SQL("SELECT version, forgottenThrough FROM storeVersion WHERE id = 1")

    /// What memory is loaded from, in one snapshot: the latest version, every canary and gate, the
    /// freezes in force.
    static func everything(at now: Date) -> [SQL] {
        [latestVersion] + everyCanary + [freezesInForce(at: now)]
    }

    /// What changed after `version`, in one snapshot: the latest version, the canaries written since
    /// and their gates, the freezes written since, the canaries forgotten since.
    static func changes(since version: Int64) -> [SQL] {
        [
            latestVersion,
            SQL("SELECT * FROM canary WHERE version > ?", [.integer(version)]),
            SQL(
                """
                SELECT gate.* FROM gate JOIN canary ON gate.cluster = canary.cluster
                AND gate.namespace = canary.namespace AND gate.name = canary.name WHERE canary.version > ?
                """, [.integer(version)]),
            SQL(#"SELECT * FROM "freeze" WHERE version > ?"#, [.integer(version)]),
            SQL("SELECT * FROM forgotten WHERE version > ?", [.integer(version)]),
        ]
    }

    /// The rows of `everything` (`whole`) or `changes`.
    static func changed(_ rows: [[any StoredRow]], whole: Bool) throws -> Changes {
        var changes = Changes(version: try rows[0].first?.integer("version") ?? 0, isWhole: whole)
        let canaries = try Records.canaries(rows[1], gates: rows[2])
        changes.canaries = try zip(canaries, rows[1]).map { ($0, try $1.integer("version")) }
        changes.freezes = try rows[3].map { (try Tables.freeze.read($0), try $0.integer("version")) }
        if !whole {
            changes.forgotten = try rows[4].map { (try Tables.canaryID($0), try $0.integer("version")) }
        }
        return changes
    }

    /// Drops the list of canaries forgotten before `cutoff`; a copy behind the versions dropped then
    /// loads everything anew (`forgottenThrough`).
    static func pruneForgotten(olderThan cutoff: Date) -> [SQL] {
        let dropped = "(SELECT COALESCE(MAX(version), 0) FROM forgotten WHERE at < ?)"
        return [
            SQL(
                """
                UPDATE storeVersion SET forgottenThrough = CASE WHEN \(dropped) > forgottenThrough
                THEN \(dropped) ELSE forgottenThrough END WHERE id = 1
                """, [.date(cutoff), .date(cutoff)]),
            SQL("DELETE FROM forgotten WHERE at < ?", [.date(cutoff)]),
        ]
    }

    /// Records a single-use token's use (after dropping the expired ones): the last statement
    /// returns a row if the token was unused.
    static func use(_ token: SingleUse, at now: Date) -> [SQL] {
        [
            SQL("DELETE FROM usedLink WHERE expiresAt < ?", [.date(now)]),
            SQL(
                """
                INSERT INTO usedLink (nonce, usedAt, expiresAt) VALUES (?, ?, ?) ON CONFLICT (nonce) DO NOTHING
                RETURNING nonce
                """,
                [.text(token.nonce), .date(now), .date(token.expiresAt)]),
        ]
    }

    static func heartbeat(at now: Date) -> SQL {
        SQL(
            "INSERT INTO heartbeat (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at", [.date(now)]
        )
    }

    // MARK: Freezes

    static func freeze(id: Int64, locked: Bool = false) -> SQL {
        SQL("SELECT * FROM \"freeze\" WHERE id = ?", [.integer(id)], locksRows: locked)
    }

    /// Every freeze ever set, newest first.
    static let allFreezes = SQL("SELECT * FROM \"freeze\" ORDER BY id DESC")

    /// The freezes in force at `now`, newest first.
    static func freezesInForce(at now: Date) -> SQL {
        SQL(
            "SELECT * FROM \"freeze\" WHERE liftedAt IS NULL AND (endsAt IS NULL OR endsAt > ?) ORDER BY id DESC",
            [.date(now)])
    }

    // MARK: The audit trail

    /// Audit entries, newest first: of one canary, of an area, or of everything; `before` pages back by id.
    static func events(of canary: CanaryID?, in area: Area, matching filter: AuditFilter, limit: Int, before: Int64?)
        -> SQL
    {
        var conditions: [String] = []
        var arguments: [StoredValue] = []
        if let actor = filter.actor {
            conditions.append("actor = ?")
            arguments.append(.text(actor))
        }
        if let action = filter.action {
            conditions.append("action = ?")
            arguments.append(.text(action.rawValue))
        }
        // A time bound is also turned into a bound on ids, found by one look in the index of times:
        // entries are numbered as they are written, so the search reads only the entries of that
        // time, however far back it is (an entry written while the clock stood behind an earlier
        // one's time could fall outside; the time itself is still checked).
        if let since = filter.since {
            conditions.append(
                "at >= ? AND id >= coalesce((SELECT id FROM audit WHERE at >= ? ORDER BY at, id LIMIT 1), 9223372036854775807)"
            )
            arguments += [.date(since), .date(since)]
        }
        if let until = filter.until {
            conditions.append(
                "at < ? AND id < coalesce((SELECT id FROM audit WHERE at >= ? ORDER BY at, id LIMIT 1), 9223372036854775807)"
            )
            arguments += [.date(until), .date(until)]
        }
        if let canary {
            conditions.append(auditKey(canary).condition)
            arguments += auditKey(canary).arguments
        } else {
            if let cluster = area.cluster {
                conditions.append(cluster.isEmpty ? "cluster IS NULL" : "cluster = ?")
                if !cluster.isEmpty { arguments.append(.text(cluster)) }
            }
            if let namespace = area.namespace {
                conditions.append("namespace = ?")
                arguments.append(.text(namespace))
            }
        }
        if let before {
            conditions.append("id < ?")
            arguments.append(.integer(before))
        }
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        return SQL("SELECT * FROM audit\(filter) ORDER BY id DESC LIMIT ?", arguments + [.integer(Int64(limit))])
    }

    /// Deletes the oldest `batch` audit entries older than `cutoff` (found through the index of times).
    static func pruneAudit(olderThan cutoff: Date, batch: Int) -> SQL {
        SQL(
            "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? ORDER BY at LIMIT ?) RETURNING id",
            [.date(cutoff), .integer(Int64(batch))])
    }
}
