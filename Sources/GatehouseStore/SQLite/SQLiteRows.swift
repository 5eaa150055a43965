import Foundation
import GRDB
import GatehouseCore

// How SQLite (through GRDB) runs the store's statements and hands back its rows.

extension StoredValue {
    /// The value as SQLite holds it: dates as `Date.storedText`, booleans as 0 or 1.
    var sqliteValue: DatabaseValue {
        switch self {
        case .null: .null
        case .text(let text): text.databaseValue
        case .integer(let value): value.databaseValue
        case .boolean(let value): value.databaseValue
        case .date(let date): date.storedText.databaseValue
        case .blob(let data): data.databaseValue
        case .changeVersion: .null  // never run unstamped (`SQL.stamped`); NULL breaks NOT NULL if it were
        }
    }
}

extension Row: StoredRow {
    func value(_ column: String, as type: StoredType) throws -> StoredValue {
        guard let value: DatabaseValue = self[column] else { return .null }
        // Matched on the storage itself: the optimizer of Swift 6.3 crashes (release builds) on the
        // same reads made through GRDB's `fromDatabaseValue` conversions here.
        switch (type, value.storage) {
        case (_, .null): return .null
        case (.text, .string(let text)): return .text(text)
        case (.integer, .int64(let integer)): return .integer(integer)
        case (.boolean, .int64(let integer)): return .boolean(integer != 0)
        case (.blob, .blob(let data)): return .blob(data)
        case (.date, _):
            if let date = Date(stored: value) { return .date(date) }
        default: break
        }
        throw UnreadableRow(description: "column \(column) holds \(value), not \(type)")
    }
}

extension Database {
    /// Runs a statement (cached: the same few run inside every write).
    func run(_ sql: SQL) throws {
        try cachedStatement(sql: sql.text).execute(arguments: StatementArguments(sql.arguments.map(\.sqliteValue)))
    }

    /// The rows a query returns.
    func rows(_ sql: SQL) throws -> [Row] {
        try Row.fetchAll(
            cachedStatement(sql: sql.text), arguments: StatementArguments(sql.arguments.map(\.sqliteValue)))
    }
}
