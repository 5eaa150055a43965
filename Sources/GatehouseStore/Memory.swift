import Foundation
import GatehouseCore
import Synchronization

/// The copy in memory that checks are answered from, on every engine.
///
/// Each canary and freeze is kept with the version of the change that last wrote its row
/// (`storeVersion` counts changes, one number for the whole store): a row is taken into memory only
/// if it is newer than the one held, so this store's own commits and what it catches up with from
/// others (`Changes`) can arrive in any order and memory still only moves forward.
///
/// What checks observe (last seen, phase, checksum) is kept apart in `observed` until it is saved:
/// `canaries` then changes only with durable changes and saves, a few times a minute, so a reader
/// may hold it (it is copied on write) without making the next check copy every canary.
struct Memory: Sendable {
    /// Every canary as last written (or read from the database), each stamped with the version of
    /// the change that last wrote its row.
    var canaries = CanaryTable()
    /// The canaries checks (or other replicas) observed something of since: each whole, as
    /// `canaries` holds it with the observations laid over.
    var observed: [CanaryID: Canary] = [:]
    var freezes: [Int64: Freeze] = [:]
    /// Canaries whose observed fields (last seen, phase, checksum) memory holds but the database not yet.
    var unsaved: Set<CanaryID> = []
    /// The version of the change that forgot each canary memory no longer holds (the others keep
    /// theirs in `canaries`): a write older than that does not bring it back.
    var forgottenVersions: [CanaryID: Int64] = [:]
    /// The version of the change that last wrote each freeze's row, as memory holds it.
    var freezeVersions: [Int64: Int64] = [:]
    /// The canaries with an open gate that expires, and those nobody acted on: what upkeep looks
    /// at (`expireDueGates`, `forgetUntouchedCanaries`) without going through every canary.
    var expiring: Set<CanaryID> = []
    var untouched: Set<CanaryID> = []
    /// Every canary's id in order, for pages that cost their own length (`OrderedIDs`).
    var order = OrderedIDs()
    /// How many canaries each namespace holds (for the lists people pick a namespace from).
    var namespaces: [String: Int] = [:]
    /// The canaries waiting on a gate or rolling out: what an overview shows first, without
    /// looking at the idle rest.
    var active: Set<CanaryID> = []
    /// The canaries with a gate open (for metrics, which describe only these and the active).
    var open: Set<CanaryID> = []
    /// Every change up to this version is in memory (this store's own may reach further).
    var caughtUp: Int64 = 0
    /// The saves of observations up to this number are in memory.
    var observedCaughtUp: Int64 = 0

    /// Puts a canary as the change `version` left it, keeping what checks observed meanwhile;
    /// ignored when memory holds a newer one.
    mutating func replace(_ canary: consuming Canary, version: Int64) {
        guard version >= self.version(of: canary.id) else { return }
        if let current = self.canary(canary.id) {
            canary.adoptObservations(from: current)
        } else {
            order.insert(canary.id)
            namespaces[canary.id.namespace, default: 0] += 1
            if !forgottenVersions.isEmpty { forgottenVersions[canary.id] = nil }
        }
        if !observed.isEmpty, observed[canary.id] != nil { observed[canary.id] = canary }
        index(canary)
        canaries.put(canary, stamp: version)
    }

    /// The version of the change that last wrote (or forgot) the canary `id`; 0 if none did.
    func version(of id: CanaryID) -> Int64 {
        canaries.stamp(of: id) ?? (forgottenVersions.isEmpty ? nil : forgottenVersions[id]) ?? 0
    }

    /// Keeps `expiring` and `untouched` in step with a canary as written (or gone, when nil).
    private mutating func index(_ canary: Canary?, id: CanaryID? = nil) {
        guard let id = canary?.id ?? id else { return }
        Self.keep(
            id, in: &expiring, if: canary?.gates.values.contains(where: { $0.isOpen && $0.expiresAt != nil }) == true)
        Self.keep(id, in: &untouched, if: canary?.isUntouched == true)
        Self.keep(id, in: &open, if: canary?.gates.values.contains(where: \.isOpen) == true)
        noteActivity(of: canary, id: id)
    }

    /// Puts `id` in `set` if `condition` holds, else takes it out (without hashing it for an empty
    /// set: a load takes 100,000 canaries in, most of them in none of these sets).
    private static func keep(_ id: CanaryID, in set: inout Set<CanaryID>, if condition: Bool) {
        if condition {
            set.insert(id)
        } else if !set.isEmpty {
            set.remove(id)
        }
    }

    /// Keeps `active` in step with a canary as memory now holds it (or gone, when nil).
    private mutating func noteActivity(of canary: Canary?, id: CanaryID) {
        Self.keep(id, in: &active, if: canary.map { $0.waitingOn != nil || $0.isRollingOut } == true)
    }

    /// A canary with what was observed of it since it was written.
    func canary(_ id: CanaryID) -> Canary? {
        (observed.isEmpty ? nil : observed[id]) ?? canaries[id]
    }

    /// Notes what a check or report observed of a known canary, to be saved (`unsaved`).
    mutating func observe(_ id: CanaryID, _ observe: (inout Canary) -> Void) {
        guard var canary = canary(id) else { return }
        observe(&canary)
        observed[id] = canary
        unsaved.insert(id)
        noteActivity(of: canary, id: id)
    }

    /// Lays what was observed since over `canaries`, once it is saved.
    mutating func settleObservations() {
        for canary in observed.values { canaries.update(canary) }
        observed.removeAll()
    }

    /// Drops a canary the change `version` forgot, unless memory holds a newer one.
    mutating func forget(_ id: CanaryID, version: Int64) {
        guard version >= self.version(of: id) else { return }
        if canaries[id] != nil {
            order.remove(id)
            namespaces[id.namespace]! -= 1
            if namespaces[id.namespace] == 0 { namespaces[id.namespace] = nil }
        }
        canaries.remove(id)
        observed[id] = nil
        unsaved.remove(id)
        forgottenVersions[id] = version
        index(nil, id: id)
    }

    /// Puts a freeze as the change `version` left it (kept only while it may be in force).
    mutating func put(_ freeze: Freeze, version: Int64) {
        guard version >= freezeVersions[freeze.id] ?? 0 else { return }
        freezes[freeze.id] = freeze.liftedAt == nil ? freeze : nil
        freezeVersions[freeze.id] = version
    }

    /// Takes in what other stores observed of canaries memory holds (where it is later than what
    /// memory holds), saved up to `observed`.
    mutating func adoptObservations(_ saved: [Canary], through number: Int64) {
        for saved in saved {
            guard var canary = canary(saved.id) else { continue }
            canary.adoptObservations(from: saved)
            observed[saved.id] = canary
            noteActivity(of: canary, id: saved.id)
        }
        observedCaughtUp = max(observedCaughtUp, number)
    }

    /// Takes in this store's own commit of `version` through `remember`: when memory held every
    /// change before it, it now holds every change up to it (versions are taken in commit order).
    mutating func commit(_ version: Int64, remember: (inout Memory, Int64) -> Void) {
        remember(&self, version)
        if version == caughtUp + 1 { caughtUp = version }
    }

    /// Takes in what changed since `caughtUp` (or everything, when `changes.isWhole`).
    mutating func apply(_ changes: Changes) {
        if changes.isWhole {
            // What memory holds from before the snapshot and the snapshot lacks was forgotten or lifted.
            let held = Set(changes.canaries.map(\.canary.id))
            for id in Array(canaries.ids) where !held.contains(id) && version(of: id) <= changes.version {
                forget(id, version: changes.version)
            }
            let inForce = Set(changes.freezes.map(\.freeze.id))
            for id in freezes.keys where !inForce.contains(id) && freezeVersions[id] ?? 0 <= changes.version {
                freezes[id] = nil
            }
        }
        for (canary, version) in changes.canaries { replace(canary, version: version) }
        for (id, version) in changes.forgotten { forget(id, version: version) }
        for (freeze, version) in changes.freezes { put(freeze, version: version) }
        caughtUp = max(caughtUp, changes.version)
    }
}

/// What changed in the store after a version, read in one snapshot: the rows written since (each
/// with its version) and the canaries forgotten since; or, when `isWhole`, everything in force.
struct Changes: Sendable {
    /// The store's version when the snapshot was read: every change up to it is in these rows.
    var version: Int64
    var canaries: [(canary: Canary, version: Int64)] = []
    var freezes: [(freeze: Freeze, version: Int64)] = []
    var forgotten: [(id: CanaryID, version: Int64)] = []
    var isWhole = false
}

/// The copy in memory, shared by the store and its engine (which applies commits to it).
final class SharedMemory: Sendable {
    private let mutex: Mutex<Memory>

    init(_ memory: Memory = Memory()) {
        mutex = Mutex(memory)
    }

    /// Runs `body` with the memory locked; keep it short: every check takes this lock.
    func withLock<Result: Sendable>(_ body: (inout Memory) -> Result) -> Result {
        mutex.withLock { body(&$0) }
    }
}
