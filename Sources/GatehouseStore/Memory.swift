import Foundation
import GRDB
import GatehouseCore
import Synchronization

/// The in-memory copy of the database that checks are answered from.
struct Memory: Sendable {
    var canaries: [CanaryID: Canary] = [:]
    var freezes: [Int64: Freeze] = [:]
    /// Canaries whose observed fields (last seen, phase, checksum) memory holds but the database not yet.
    var unsaved: Set<CanaryID> = []

    /// Puts a canary as a commit left it, keeping what checks observed meanwhile.
    mutating func replace(_ canary: Canary) {
        var canary = canary
        if let current = canaries[canary.id] { canary.adoptObservations(from: current) }
        canaries[canary.id] = canary
    }

    static func load(_ db: Database) throws -> Memory {
        var memory = Memory()
        let rows = try Records.everyCanary.map(db.rows)
        for canary in try Records.canaries(rows[0], gates: rows[1]) { memory.canaries[canary.id] = canary }
        let now = Date()
        for freeze in try db.rows(Records.freezesInForce(at: now)).map(Tables.freeze.read) {
            memory.freezes[freeze.id] = freeze
        }
        return memory
    }
}

/// The in-memory copy, shared by the store and its write queue (which applies commits to it).
final class SharedMemory: Sendable {
    private let mutex: Mutex<Memory>

    init(_ memory: Memory) {
        mutex = Mutex(memory)
    }

    /// Runs `body` with the memory locked; keep it short: every check takes this lock.
    func withLock<Result: Sendable>(_ body: (inout Memory) -> Result) -> Result {
        mutex.withLock { body(&$0) }
    }
}
