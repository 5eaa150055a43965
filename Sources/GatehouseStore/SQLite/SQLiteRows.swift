import Foundation
import GRDB
import GRDBSQLite
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

/// The rows one statement returned, every value packed into one buffer as SQLite holds it: a page
/// of 1,000 canaries is a few allocations, not an array for each row and a value (a string, for
/// each date) for each column. A value takes its type when it is read: a date is read from its
/// bytes, and only a text read as text becomes a string. Loading 100,000 canaries spent a fifth of
/// its time building and freeing GRDB's values.
final class SQLiteRows: Sendable {
    /// One value: SQLite's storage class, and the integer, the bits of the real, or where its bytes are.
    struct Cell {
        var storage: CInt
        var count: Int32
        var value: Int64
    }

    /// Where each column is among a row's values, by name. GRDB's own rows find a column by a
    /// case-insensitive comparison of names, which took a fifth of the time of loading 100,000 canaries.
    let index: [String: Int]
    let width: Int
    let cells: [Cell]
    let bytes: [UInt8]

    /// Reads every row `statement` returns.
    init(_ statement: Statement, arguments: StatementArguments) throws {
        index = Dictionary(statement.columnNames.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        width = statement.columnCount
        let cursor = try Row.fetchCursor(statement, arguments: arguments)
        let handle = statement.sqliteStatement
        var cells: [Cell] = []
        var bytes: [UInt8] = []
        while try cursor.next() != nil {
            for column in 0..<CInt(width) {
                let storage = sqlite3_column_type(handle, column)
                switch storage {
                case SQLITE_INTEGER:
                    cells.append(Cell(storage: storage, count: 0, value: sqlite3_column_int64(handle, column)))
                case SQLITE_FLOAT:
                    let real = sqlite3_column_double(handle, column)
                    cells.append(Cell(storage: storage, count: 0, value: Int64(bitPattern: real.bitPattern)))
                case SQLITE_TEXT, SQLITE_BLOB:
                    // The pointer first, then the count (SQLite's order: the count is of that form).
                    let start =
                        storage == SQLITE_TEXT
                        ? UnsafeRawPointer(sqlite3_column_text(handle, column)) : sqlite3_column_blob(handle, column)
                    let count = Int(sqlite3_column_bytes(handle, column))
                    cells.append(Cell(storage: storage, count: Int32(count), value: Int64(bytes.count)))
                    if let start, count > 0 {
                        bytes.append(contentsOf: UnsafeRawBufferPointer(start: start, count: count))
                    }
                default:
                    cells.append(Cell(storage: SQLITE_NULL, count: 0, value: 0))
                }
            }
        }
        self.cells = cells
        self.bytes = bytes
    }

    var count: Int { width == 0 ? 0 : cells.count / width }

    /// The value of row `row` at `position`, read as `type`.
    func value(row: Int, at position: Int, column: String, as type: StoredType) throws -> StoredValue {
        let cell = cells[row * width + position]
        switch (type, cell.storage) {
        case (_, SQLITE_NULL): return .null
        case (.integer, SQLITE_INTEGER): return .integer(cell.value)
        case (.boolean, SQLITE_INTEGER): return .boolean(cell.value != 0)
        case (.text, SQLITE_TEXT): return .text(withBytes(of: cell) { String(decoding: $0, as: UTF8.self) })
        case (.blob, SQLITE_BLOB): return .blob(withBytes(of: cell) { Data($0) })
        case (.date, SQLITE_TEXT):
            if let date = withBytes(of: cell, Date.init(storedText:)) { return .date(date) }
        default: break
        }
        // Anything else GRDB would read as that type (a date as a number of seconds, say).
        let value = databaseValue(cell)
        if type == .date, let date = Date(stored: value) { return .date(date) }
        throw UnreadableRow(description: "column \(column) holds \(value), not \(type)")
    }

    private func withBytes<Result>(of cell: Cell, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        bytes.withUnsafeBufferPointer {
            body(UnsafeBufferPointer(rebasing: $0[Int(cell.value)..<Int(cell.value) + Int(cell.count)]))
        }
    }

    private func databaseValue(_ cell: Cell) -> DatabaseValue {
        switch cell.storage {
        case SQLITE_INTEGER: cell.value.databaseValue
        case SQLITE_FLOAT: Double(bitPattern: UInt64(bitPattern: cell.value)).databaseValue
        case SQLITE_TEXT: withBytes(of: cell) { String(decoding: $0, as: UTF8.self) }.databaseValue
        case SQLITE_BLOB: withBytes(of: cell) { Data($0) }.databaseValue
        default: .null
        }
    }
}

/// A row SQLite returned: one of `rows`.
struct SQLiteRow: StoredRow {
    let rows: SQLiteRows
    let row: Int

    func value(_ column: String, as type: StoredType) throws -> StoredValue {
        try value(at: rows.index[column], column: column, as: type)
    }

    func positions(of names: [String]) -> [Int?] {
        names.map { rows.index[$0] }
    }

    func value(at position: Int?, column: String, as type: StoredType) throws -> StoredValue {
        guard let position else { return .null }
        return try rows.value(row: row, at: position, column: column, as: type)
    }
}

extension Database {
    /// Runs a statement.
    func run(_ sql: SQL) throws {
        try statement(sql).execute(arguments: StatementArguments(sql.arguments.map(\.sqliteValue)))
    }

    /// The rows a query returns.
    func rows(_ sql: SQL) throws -> [SQLiteRow] {
        let rows = try SQLiteRows(try statement(sql), arguments: StatementArguments(sql.arguments.map(\.sqliteValue)))
        return (0..<rows.count).map { SQLiteRow(rows: rows, row: $0) }
    }

    /// The statement for `sql`: cached when it has few arguments (the same few run inside every
    /// write), made anew otherwise. A statement of many rows at once (saving 200 canaries'
    /// observations) has a text of its own for each count of rows, and a cached one keeps its
    /// program and its last arguments: under a mixed load at 100,000 canaries the cache grew by
    /// over 20 MB.
    private func statement(_ sql: SQL) throws -> Statement {
        sql.arguments.count > Self.cachedArguments
            ? try makeStatement(sql: sql.text) : try cachedStatement(sql: sql.text)
    }

    /// The most arguments a cached statement has: one row of the widest table, and some.
    private static let cachedArguments = 64
}
