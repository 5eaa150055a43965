import Foundation
import GatehouseCore

/// Loads memory from the database a page of canaries at a time, in key order: only one page of
/// rows is held at once, so loading 100,000 canaries costs their copies in memory and one page,
/// not every row read at once (which left the heap several times larger than what it holds).
///
/// First the store's version is read, then the pages, then the freezes in force: memory then holds
/// every change up to that version (rows written later are newer, and kept as such), and a catch-up
/// takes in what was changed meanwhile by other replicas.
struct PagedLoad: Sendable {
    static let pageSize = 1000
    private var after: CanaryID?
    private var version: Int64?
    private(set) var isDone = false
    /// Texts the canaries repeat, kept once.
    private let pool = TextPool()

    /// The statements to read next.
    var reads: [SQL] {
        // With the version, how many canaries there are: memory makes room for them at once.
        if version == nil { return [Records.latestVersion, SQL("SELECT COUNT(*) AS count FROM canary")] }
        if isDone { return [] }
        let (condition, arguments): (String, [StoredValue]) =
            after.map {
                (
                    "WHERE (cluster, namespace, name) > (?, ?, ?)",
                    [.text($0.cluster), .text($0.namespace), .text($0.name)]
                )
            } ?? ("", [])
        let page =
            "SELECT cluster, namespace, name FROM canary \(condition) ORDER BY cluster, namespace, name LIMIT \(Self.pageSize)"
        return [
            SQL(
                "SELECT * FROM canary \(condition) ORDER BY cluster, namespace, name LIMIT \(Self.pageSize)", arguments),
            SQL(
                """
                SELECT gate.* FROM gate JOIN (\(page)) page ON gate.cluster = page.cluster
                AND gate.namespace = page.namespace AND gate.name = page.name
                """, arguments),
        ]
    }

    /// Takes in the rows of `reads`; returns what to read next.
    func taking(_ rows: [[any StoredRow]], into memory: SharedMemory) throws -> PagedLoad {
        var next = self
        try next.take(rows, into: memory)
        return next
    }

    private mutating func take(_ rows: [[any StoredRow]], into memory: SharedMemory) throws {
        guard let version else {
            version = try rows[0].first?.integer("version") ?? 0
            let count = try rows[1].first?.integer("count") ?? 0
            memory.withLock { $0.canaries.reserveCapacity(Int(count)) }
            return
        }
        let canaries = try Records.canaries(rows[0], gates: rows[1], pool: pool)
        let versionAt = rows[0].first?.positions(of: ["version"])[0]
        let versions = try rows[0].map { row in
            guard case .integer(let number) = try row.value(at: versionAt, column: "version", as: .integer) else {
                throw UnreadableRow(description: "column version holds no integer")
            }
            return number
        }
        memory.withLock { memory in
            for (canary, version) in zip(canaries, versions) { memory.replace(canary, version: version) }
        }
        after = canaries.last?.id
        isDone = canaries.count < Self.pageSize
        if isDone { memory.withLock { $0.caughtUp = max($0.caughtUp, version) } }
    }

    /// Runs the whole load, each step's statements read by `read`, then the freezes in force.
    static func run(into memory: SharedMemory, read: ([SQL]) throws -> [[any StoredRow]]) throws {
        var load = PagedLoad()
        while !load.isDone { try load.take(try read(load.reads), into: memory) }
        try takeFreezes(try read([Records.freezesInForce(at: Date())])[0], into: memory)
    }

    /// As `run`, each step read in its own snapshot of `engine`.
    static func run(into memory: SharedMemory, from engine: some StoreEngine) async throws {
        var load = PagedLoad()
        while !load.isDone {
            let current = load
            load = try await engine.snapshot(current.reads) { rows in try current.taking(rows, into: memory) }
        }
        try await engine.snapshot([Records.freezesInForce(at: Date())]) { rows in
            try takeFreezes(rows[0], into: memory)
        }
    }

    private static func takeFreezes(_ rows: [any StoredRow], into memory: SharedMemory) throws {
        let freezes = try rows.map { (try Tables.freeze.read($0), try $0.integer("version")) }
        memory.withLock { memory in
            for (freeze, version) in freezes { memory.put(freeze, version: version) }
        }
    }
}
