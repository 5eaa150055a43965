import Foundation
import GatehouseCore

// The stored tables, each column declared once: its name, its type and the field it holds. The
// statements that write a record and the code that reads one back are made from these lists, for
// SQLite and PostgreSQL alike. A new column is a migration (in `Schema`) and one line here.

/// A value as it goes to or comes from a column, whichever database holds it.
enum StoredValue: Sendable, Equatable {
    case null
    case text(String)
    case integer(Int64)
    case boolean(Bool)
    case date(Date)
    case blob(Data)
    /// The version of the change the statement is part of: the engine puts the transaction's
    /// version here (see `ChangeVersion`) before the statement runs.
    case changeVersion
}

/// The type of a column, which tells a database's row how to read it.
enum StoredType: Sendable {
    case text, integer, boolean, date, blob
}

/// A row read back from either database.
protocol StoredRow {
    /// The column's value, read as `type`; `.null` when it holds none.
    func value(_ column: String, as type: StoredType) throws -> StoredValue
    /// Where the row holds each column named (nil where it holds none): the same for every row one
    /// statement returns, so that many rows are read with one look-up of each name.
    func positions(of columns: [String]) -> [Int?]
    /// The value at `position` (from `positions(of:)`; nil reads as `.null`), read as `type`;
    /// `column` names it in errors.
    func value(at position: Int?, column: String, as type: StoredType) throws -> StoredValue
}

/// A row whose column holds something its field cannot take.
struct UnreadableRow: Error, CustomStringConvertible {
    var description: String
}

extension StoredRow {
    func text(_ column: String) throws -> String {
        guard case .text(let text) = try value(column, as: .text) else {
            throw UnreadableRow(description: "column \(column) holds no text")
        }
        return text
    }

    func integer(_ column: String) throws -> Int64 {
        guard case .integer(let value) = try value(column, as: .integer) else {
            throw UnreadableRow(description: "column \(column) holds no integer")
        }
        return value
    }
}

/// One statement with `?` placeholders, in the SQL both databases understand.
struct SQL: Sendable {
    var text: String
    var arguments: [StoredValue]
    /// Whether the rows a query reads stay locked until its transaction ends (`FOR UPDATE` on
    /// PostgreSQL; SQLite's single writer needs nothing).
    var locksRows = false
    /// The audit entry this statement appends, logged once its transaction commits.
    var auditEntry: AuditEntry?

    init(_ text: String, _ arguments: [StoredValue] = [], locksRows: Bool = false) {
        self.text = text
        self.arguments = arguments
        self.locksRows = locksRows
    }

    /// Whether the statement records a change that replicas' copies must catch up with.
    var isVersioned: Bool { arguments.contains(.changeVersion) }

    /// The statement with the transaction's change version in place of `.changeVersion`.
    func stamped(_ version: Int64) -> SQL {
        guard isVersioned else { return self }
        var stamped = self
        stamped.arguments = arguments.map { $0 == .changeVersion ? .integer(version) : $0 }
        return stamped
    }
}

/// A Swift value that a column holds.
protocol Storable: Sendable {
    static var storedType: StoredType { get }
    var stored: StoredValue { get }
    init(stored: StoredValue) throws
}

extension String: Storable {
    static var storedType: StoredType { .text }
    var stored: StoredValue { .text(self) }
    init(stored: StoredValue) throws {
        guard case .text(let text) = stored else { throw UnreadableRow(description: "expected text, read \(stored)") }
        self = text
    }
}

extension Int: Storable {
    static var storedType: StoredType { .integer }
    var stored: StoredValue { .integer(Int64(self)) }
    init(stored: StoredValue) throws {
        guard case .integer(let value) = stored, let int = Int(exactly: value) else {
            throw UnreadableRow(description: "expected an integer, read \(stored)")
        }
        self = int
    }
}

extension Int64: Storable {
    static var storedType: StoredType { .integer }
    var stored: StoredValue { .integer(self) }
    init(stored: StoredValue) throws {
        guard case .integer(let value) = stored else {
            throw UnreadableRow(description: "expected an integer, read \(stored)")
        }
        self = value
    }
}

extension Bool: Storable {
    static var storedType: StoredType { .boolean }
    var stored: StoredValue { .boolean(self) }
    init(stored: StoredValue) throws {
        guard case .boolean(let value) = stored else {
            throw UnreadableRow(description: "expected a boolean, read \(stored)")
        }
        self = value
    }
}

extension Date: Storable {
    static var storedType: StoredType { .date }
    var stored: StoredValue { .date(self) }
    init(stored: StoredValue) throws {
        guard case .date(let date) = stored else { throw UnreadableRow(description: "expected a date, read \(stored)") }
        self = date
    }
}

extension Data: Storable {
    static var storedType: StoredType { .blob }
    var stored: StoredValue { .blob(self) }
    init(stored: StoredValue) throws {
        guard case .blob(let data) = stored else { throw UnreadableRow(description: "expected bytes, read \(stored)") }
        self = data
    }
}

extension Revision: Storable {
    static var storedType: StoredType { .text }
    var stored: StoredValue { .text(text) }
    init(stored: StoredValue) throws {
        guard let revision = Revision(try String(stored: stored)) else {
            throw UnreadableRow(description: "an empty revision (none is NULL)")
        }
        self = revision
    }
}

/// A once-gate's binding: the revision's text, or an empty string for a call that named none.
extension Revision.Binding: Storable {
    static var storedType: StoredType { .text }
    var stored: StoredValue { .text(revision?.text ?? "") }
    init(stored: StoredValue) throws {
        self.init(Revision(try String(stored: stored)))
    }
}

extension Optional: Storable where Wrapped: Storable {
    static var storedType: StoredType { Wrapped.storedType }
    var stored: StoredValue { self?.stored ?? .null }
    init(stored: StoredValue) throws {
        self = stored == .null ? nil : try Wrapped(stored: stored)
    }
}

/// Values stored as JSON text (NULL when empty): a canary's labels and overrides, a gate's approvals.
protocol StorableJSON: Storable, Codable {
    var isEmpty: Bool { get }
    static var empty: Self { get }
}

extension StorableJSON {
    static var storedType: StoredType { .text }
    var stored: StoredValue {
        guard !isEmpty, let data = try? JSONEncoder().encode(self) else { return .null }
        return .text(String(decoding: data, as: UTF8.self))
    }
    init(stored: StoredValue) throws {
        self = try Self.decodingJSON(stored)
    }

    /// The value a column's JSON text holds (`empty` for NULL), through a JSON decoder.
    static func decodingJSON(_ stored: StoredValue) throws -> Self {
        if stored == .null { return .empty }
        return try JSONDecoder().decode(Self.self, from: Data(try String(stored: stored).utf8))
    }
}

/// What a list stored as JSON may hold.
protocol StorableElement: Codable, Sendable {
    /// The element a JSON string holding `text` (no escapes in it) stands for; nil for elements
    /// that are not strings in JSON.
    static func fromPlainString(_ text: Substring) -> Self?
}

extension StorableElement {
    static func fromPlainString(_ text: Substring) -> Self? { nil }
}

extension String: StorableElement {
    static func fromPlainString(_ text: Substring) -> String? { String(text) }
}

extension Override: StorableElement {}

extension DryRun: StorableElement {}

extension GateKind: StorableElement {
    static func fromPlainString(_ text: Substring) -> GateKind? { GateKind(rawValue: String(text)) }
}

extension Array: Storable, StorableJSON where Element: StorableElement {
    static var empty: Self { [] }

    /// A list of strings as JSON writes it (`["rollout","promotion"]`, nothing escaped) is split
    /// where it stands: a JSON decoder for each row's lists was most of reading 100,000 canaries
    /// at start-up. Anything else (an escape, an object, other spacing) goes to the decoder.
    init(stored: StoredValue) throws {
        if case .text(let text) = stored, let plain = Self.plainStrings(text) {
            self = plain
            return
        }
        self = try Self.decodingJSON(stored)
    }

    private static func plainStrings(_ text: String) -> Self? {
        guard text.hasPrefix("[\""), text.hasSuffix("\"]"), text.utf8.count >= 4, !text.contains("\\") else {
            return text == "[]" ? [] : nil
        }
        // No escape, so no quote inside a string: `","` can only be where one string ends and the next starts.
        let inner = text.dropFirst(2).dropLast(2)
        var elements: Self = []
        for part in inner.split(separator: "\",\"", omittingEmptySubsequences: false) {
            guard !part.contains("\""), let element = Element.fromPlainString(part) else { return nil }
            elements.append(element)
        }
        return elements
    }
}

/// Stored as the list of their names, as JSON writes it.
extension GateKinds: Storable {
    static var storedType: StoredType { .text }
    var stored: StoredValue { Array(self).stored }
    init(stored: StoredValue) throws {
        self.init(try [GateKind](stored: stored))
    }
}

extension CanaryLabels: StorableJSON {
    static var empty: Self { CanaryLabels() }
}

/// Enumerations are stored by their raw text (which the schema's CHECK constraints list).
protocol StorableText: Storable, RawRepresentable where RawValue == String {}

extension StorableText {
    static var storedType: StoredType { .text }
    var stored: StoredValue { .text(rawValue) }
    init(stored: StoredValue) throws {
        let text = try String(stored: stored)
        guard let value = Self(rawValue: text) else {
            throw UnreadableRow(description: "'\(text)' is not a \(Self.self)")
        }
        self = value
    }
}

extension GateKind: StorableText {}
extension GateMode: StorableText {}
extension Verdict: StorableText {}
extension Rollout.Stage: StorableText {}
extension AuditAction: StorableText {}
extension CanaryPhase: StorableText {}

/// A column of a table and the field of `Record` it holds.
struct Field<Record>: Sendable {
    let name: String
    let type: StoredType
    let get: @Sendable (Record) -> StoredValue
    /// Sets the field from a stored value; nil for the key columns, which make the record.
    let set: (@Sendable (inout Record, StoredValue) throws -> Void)?

    /// A column holding a field that rows are read into.
    static func column<Value: Storable>(_ name: String, _ path: any WritableKeyPath<Record, Value> & Sendable) -> Self {
        Field(
            name: name, type: Value.storedType, get: { $0[keyPath: path].stored },
            set: { record, value in record[keyPath: path] = try Value(stored: value) })
    }

    /// A key column: written from the record, read by the table's `make`.
    static func key<Value: Storable>(_ name: String, _ path: any KeyPath<Record, Value> & Sendable) -> Self {
        Field(name: name, type: Value.storedType, get: { $0[keyPath: path].stored }, set: nil)
    }
}

/// A table: its key, its other columns, and how a record is made from a row's key.
struct Table<Record>: Sendable {
    let name: String
    let key: [Field<Record>]
    let columns: [Field<Record>]
    /// Makes a record from the values of the key columns (in `key`'s order), setting nothing else:
    /// every other field holds what a new record starts with, the same whatever the key.
    let make: @Sendable ([StoredValue]) throws -> Record
    /// Whether each row holds the version of the change that last wrote it (`version`): the rows
    /// memory keeps a copy of, so that a replica's copy can catch up with other replicas' changes.
    var versioned = false

    /// The columns a write sets beyond the record's: its change version, when the table keeps one.
    private var stamp: (names: [String], values: [StoredValue]) {
        versioned ? (["version"], [.changeVersion]) : ([], [])
    }

    /// The record a row holds.
    func read(_ row: any StoredRow) throws -> Record {
        try read(row, only: nil)
    }

    /// The record a row holds; only the columns named in `only`, when given, besides the key.
    func read(_ row: any StoredRow, only: [String]?) throws -> Record {
        var record = try make(try key.map { try row.value($0.name, as: $0.type) })
        for column in columns where only?.contains(column.name) ?? true {
            try column.set?(&record, try row.value(column.name, as: column.type))
        }
        return record
    }

    /// The records that rows of one statement hold, each column found once for them all; texts
    /// that `pool` holds are shared rather than copied. A NULL where a new record already holds
    /// none is not set again (most of a canary's columns, most of the time: loading 100,000 of them
    /// set each field through its key path).
    func read(_ rows: [any StoredRow], pool: TextPool? = nil) throws -> [Record] {
        guard let first = rows.first else { return [] }
        let keyPositions = first.positions(of: key.map(\.name))
        let positions = first.positions(of: columns.map(\.name))
        // Each column's parts apart, looked up by index: going through the fields themselves
        // copied each one (its name and two closures) for every value of every row.
        let (keyNames, keyTypes) = (key.map(\.name), key.map(\.type))
        let (names, types, setters) = (columns.map(\.name), columns.map(\.type), columns.map(\.set))
        var startsNull: [Bool]?
        var keyValues: [StoredValue] = []
        keyValues.reserveCapacity(key.count)
        return try rows.map { row in
            keyValues.removeAll(keepingCapacity: true)
            for index in keyPositions.indices {
                keyValues.append(try row.value(at: keyPositions[index], column: keyNames[index], as: keyTypes[index]))
            }
            var record = try make(keyValues)
            let isNull = startsNull ?? columns.map { $0.get(record) == .null }
            startsNull = isNull
            for index in positions.indices {
                var value = try row.value(at: positions[index], column: names[index], as: types[index])
                if case .null = value, isNull[index] { continue }
                if let pool, case .text(let text) = value { value = .text(pool.shared(text)) }
                try setters[index]?(&record, value)
            }
            return record
        }
    }

    /// Inserts `records`, or, where a key is taken, sets the columns named in `updating` (all when
    /// nil), only where the stored row meets `condition` (over `\(name)` and `excluded`), if given.
    /// `extra` columns are written beside each record's, and set too. Unless `changing` is false,
    /// a versioned table's rows are written as the transaction's change (`version`).
    func upsert(
        _ records: [Record], updating: [String]? = nil, where condition: String? = nil,
        extra: [(name: String, value: StoredValue)] = [], changing: Bool = true
    ) -> SQL {
        let stamp = changing ? self.stamp : (names: [], values: [])
        let all = key + columns
        let names = all.map(\.name) + stamp.names + extra.map(\.name)
        let row = "(" + Array(repeating: "?", count: names.count).joined(separator: ", ") + ")"
        let updated = ((updating ?? columns.map(\.name)) + stamp.names + extra.map(\.name))
            .map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
        return SQL(
            """
            INSERT INTO \(name) (\(names.joined(separator: ", "))) VALUES \(Array(repeating: row, count: records.count).joined(separator: ", "))
            ON CONFLICT (\(key.map(\.name).joined(separator: ", "))) DO UPDATE SET \(updated)\(condition.map { " WHERE \($0)" } ?? "")
            """,
            records.flatMap { record in all.map { $0.get(record) } + stamp.values + extra.map(\.value) })
    }

    /// Inserts `record`, or, when its key is taken, sets every column.
    func upsert(_ record: Record) -> SQL {
        upsert([record])
    }

    /// Inserts `record` under a key the database picks (an auto-incremented `id`), returning it.
    func insertReturningID(_ record: Record) -> SQL {
        let names = (columns.map(\.name) + stamp.names).joined(separator: ", ")
        let placeholders = Array(repeating: "?", count: columns.count + stamp.names.count).joined(separator: ", ")
        return SQL(
            "INSERT INTO \(name) (\(names)) VALUES (\(placeholders)) RETURNING id",
            columns.map { $0.get(record) } + stamp.values)
    }

    /// Deletes the row whose key `record` has.
    func delete(_ record: Record) -> SQL {
        SQL(
            "DELETE FROM \(name) WHERE " + key.map { "\($0.name) = ?" }.joined(separator: " AND "),
            key.map { $0.get(record) })
    }

    /// Sets every column of the row whose key `record` has.
    func update(_ record: Record) -> SQL {
        SQL(
            "UPDATE \(name) SET \((columns.map(\.name) + stamp.names).map { "\($0) = ?" }.joined(separator: ", ")) WHERE "
                + key.map { "\($0.name) = ?" }.joined(separator: " AND "),
            (columns.map { $0.get(record) } + stamp.values) + key.map { $0.get(record) })
    }
}

/// A gate as its row holds it: the gate and whose it is.
struct StoredGate: Sendable {
    var canary: CanaryID
    var gate: Gate
}

enum Tables {
    /// The canary a row of `canary` or `gate` belongs to.
    static func canaryID(_ row: any StoredRow) throws -> CanaryID {
        try canaryID(["cluster", "namespace", "name"].map { try row.value($0, as: .text) })
    }

    /// The canary that the values of `cluster`, `namespace` and `name` (the first three given) name.
    static func canaryID(_ key: [StoredValue]) throws -> CanaryID {
        try CanaryID(cluster: String(stored: key[0]), namespace: String(stored: key[1]), name: String(stored: key[2]))
    }

    static let canary = Table<Canary>(
        name: "canary",
        key: [.key("cluster", \.id.cluster), .key("namespace", \.id.namespace), .key("name", \.id.name)],
        columns: [
            .column("lastPhase", \.lastPhase),
            .column("lastChecksum", \.lastChecksum),
            .column("lastSeen", \.lastSeen),
            .column("lastMessage", \.lastMessage),
            .column("lastEventType", \.lastEventType),
            .column("lastMessageChecksum", \.lastMessageChecksum),
            .column("rolloutStage", \.rollout.stage),
            .column("rolloutRevision", \.rollout.revision),
            .column("unapprovedRevision", \.rollout.unapprovedRevision),
            .column("lastProgressCheckAt", \.rollout.lastProgressCheckAt),
            .column("usesRolloutGate", \.rollout.usesRolloutGate),
            .column("rolloutSince", \.rollout.since),
            .column("rolloutStartedAt", \.rollout.startedAt),
            .column("rolloutOutcome", \.rollout.outcome),
            .column("promotionPassedAt", \.rollout.promotionPassedAt),
            .column("rolloutAsked", \.rollout.asked),
            .column("admittedPhase", \.rollout.admittedPhase),
            .column("admittedChecksum", \.rollout.admittedChecksum),
            .column("approvalsSeenAt", \.rollout.approvalsSeenAt),
            .column("labels", \.labels),
            .column("requestedBy", \.requestedBy),
            .column("requestedAt", \.requestedAt),
            .column("queuedAt", \.queuedAt),
            .column("overrides", \.overrides),
            .column("trafficWeight", \.trafficWeight),
            .column("succeededAt", \.succeededAt),
            .column("dryRuns", \.dryRuns),
        ],
        make: { key in Canary(id: try Tables.canaryID(key)) }, versioned: true)

    /// What checks observe of a canary, saved over a stored row without touching its gates or rollout.
    static let observedCanaryColumns = ["lastPhase", "lastChecksum", "lastSeen", "lastProgressCheckAt"]

    static let gate = Table<StoredGate>(
        name: "gate",
        key: [
            .key("cluster", \.canary.cluster), .key("namespace", \.canary.namespace), .key("name", \.canary.name),
            .key("kind", \.gate.kind),
        ],
        columns: [
            .column("isOpen", \.gate.isOpen),
            .column("mode", \.gate.mode),
            .column("boundChecksum", \.gate.boundChecksum),
            .column("expiresAt", \.gate.expiresAt),
            .column("remainingSteps", \.gate.remainingSteps),
            .column("actor", \.gate.actor),
            .column("reason", \.gate.reason),
            .column("changedAt", \.gate.changedAt),
            .column("openedAt", \.gate.openedAt),
            .column("lastVerdict", \.gate.lastVerdict),
            .column("lastVerdictChecksum", \.gate.lastVerdictChecksum),
            .column("lastVerdictAt", \.gate.lastVerdictAt),
            .column("approvals", \.gate.approvals),
        ],
        make: { key in StoredGate(canary: try Tables.canaryID(key), gate: .closed(try GateKind(stored: key[3]))) })

    static let freeze = Table<Freeze>(
        name: #""freeze""#,  // quoted: FREEZE is a keyword in PostgreSQL
        key: [.key("id", \.id)],
        columns: [
            .column("cluster", \.cluster),
            .column("namespace", \.namespace),
            .column("reason", \.reason),
            .column("actor", \.actor),
            .column("createdAt", \.createdAt),
            .column("endsAt", \.endsAt),
            .column("liftedAt", \.liftedAt),
            .column("liftedBy", \.liftedBy),
        ],
        make: { key in
            Freeze(id: try Int64(stored: key[0]), namespace: nil, reason: "", actor: "", createdAt: .distantPast)
        }, versioned: true)

    static let audit = Table<AuditEntry>(
        name: "audit",
        key: [.key("id", \.id)],
        columns: [
            .column("at", \.at),
            .column("cluster", \.cluster),
            .column("namespace", \.namespace),
            .column("name", \.name),
            .column("gate", \.gate),
            .column("action", \.action),
            .column("actor", \.actor),
            .column("reason", \.reason),
            .column("checksum", \.checksum),
            .column("phase", \.phase),
        ],
        make: { key in
            AuditEntry(
                id: try Int64(stored: key[0]), at: .distantPast, namespace: nil, name: nil, gate: nil, action: .event,
                actor: "", reason: nil, checksum: nil, phase: nil)
        })
}
