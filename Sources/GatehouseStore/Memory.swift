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
        for stored in try db.fetch(Tables.gate, SQL("SELECT * FROM gate")) {
            gates[stored.canary, default: [:]][stored.gate.kind] = stored.gate
        }
        for var canary in try db.fetch(Tables.canary, SQL("SELECT * FROM canary")) {
            canary.gates = gates[canary.id] ?? [:]
            memory.canaries[canary.id] = canary
        }
        let now = Date()
        for freeze in try db.fetch(Tables.freeze, Records.freezesInForce(at: now)) {
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
