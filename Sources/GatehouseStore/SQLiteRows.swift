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
        }
    }
}

extension Row: StoredRow {
    func value(_ column: String, as type: StoredType) throws -> StoredValue {
        guard let value: DatabaseValue = self[column], !value.isNull else { return .null }
        let read: StoredValue? =
            switch type {
            case .text: String.fromDatabaseValue(value).map(StoredValue.text)
            case .integer: Int64.fromDatabaseValue(value).map(StoredValue.integer)
            case .boolean: Bool.fromDatabaseValue(value).map(StoredValue.boolean)
            case .date: Date(stored: value).map(StoredValue.date)
            case .blob: Data.fromDatabaseValue(value).map(StoredValue.blob)
            }
        guard let read else { throw UnreadableRow(description: "column \(column) holds \(value), not \(type)") }
        return read
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
