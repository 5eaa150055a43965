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
        var gates: [CanaryID: [GateKind: Gate]] = [:]
        for record in try GateRecord.fetchAll(db) {
            let id = try CanaryID(namespace: record.namespace, name: record.name)
            gates[id, default: [:]][record.kind] = record.gate
        }
        for record in try CanaryRecord.fetchAll(db) {
            let canary = try record.canary(gates: [:])
            memory.canaries[canary.id] = try record.canary(gates: gates[canary.id] ?? [:])
        }
        let now = Date()
        for record in try FreezeRecord.filter(Column("liftedAt") == nil).fetchAll(db)
        where record.freeze.isActive(at: now) {
            memory.freezes[record.freeze.id] = record.freeze
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
