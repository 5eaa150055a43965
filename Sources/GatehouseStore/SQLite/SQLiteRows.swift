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

/// A row SQLite returned: its values, and where each column is among them (shared by every row of
/// one query). GRDB's own rows find a column by a case-insensitive comparison of names, which took
/// a fifth of the time of loading 100,000 canaries.
struct SQLiteRow: StoredRow {
    final class Columns: Sendable {
        let index: [String: Int]

        init(_ names: [String]) {
            index = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    let values: [DatabaseValue]
    let columns: Columns

    func value(_ column: String, as type: StoredType) throws -> StoredValue {
        try value(at: columns.index[column], column: column, as: type)
    }

    func positions(of names: [String]) -> [Int?] {
        names.map { columns.index[$0] }
    }

    func value(at position: Int?, column: String, as type: StoredType) throws -> StoredValue {
        guard let position else { return .null }
        let value = values[position]
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
    func rows(_ sql: SQL) throws -> [SQLiteRow] {
        let statement = try cachedStatement(sql: sql.text)
        let columns = SQLiteRow.Columns(statement.columnNames)
        let cursor = try Row.fetchCursor(statement, arguments: StatementArguments(sql.arguments.map(\.sqliteValue)))
        let count = CInt(statement.columnCount)
        var rows: [SQLiteRow] = []
        // Each value read from the statement where it stands: copying GRDB's row (a lazy view of
        // the statement) was a sixth of loading 100,000 canaries.
        while try cursor.next() != nil {
            var values: [DatabaseValue] = []
            values.reserveCapacity(Int(count))
            for index in 0..<count {
                values.append(DatabaseValue(sqliteStatement: statement.sqliteStatement, index: index))
            }
            rows.append(SQLiteRow(values: values, columns: columns))
        }
        return rows
    }
}
