import Foundation

/// How a canary's analysis moves traffic, as its webhook metadata repeats it from the Canary's
/// `analysis` (`maxWeight`, and `stepWeight` or `stepWeights`): Flagger's calls carry no weights,
/// and Gatehouse never reads the Canary itself. The arithmetic is Flagger's own (v1.44,
/// pkg/controller/scheduler.go: `maxWeight` lines 41-51, `nextStepWeight` 58-90, the step in
/// `runCanary` 570-612), so that "the weight this step reaches" means what Flagger will do.
public struct TrafficPlan: Sendable, Equatable {
    /// `analysis.stepWeight`, when given.
    public var stepWeight: Int?
    /// `analysis.stepWeights`, when given (ascending).
    public var stepWeights: [Int]
    /// `analysis.maxWeight`, when given.
    public var maxWeight: Int?

    /// Flagger's total weight.
    public static let total = 100

    /// Creates one; nil unless a step is known (`stepWeight` or `stepWeights`).
    public init?(stepWeight: Int?, stepWeights: [Int]?, maxWeight: Int?) {
        guard stepWeight != nil || !(stepWeights ?? []).isEmpty else { return nil }
        self.stepWeight = stepWeight
        self.stepWeights = stepWeights ?? []
        self.maxWeight = maxWeight
    }

    /// The weight at which Flagger stops adding traffic and asks for promotion: the last of
    /// `stepWeights`, else `maxWeight`, else 100 (scheduler.go:41-51).
    public var maximum: Int {
        if let last = stepWeights.last { return min(Self.total, last) }
        if let maxWeight, maxWeight > 0 { return maxWeight }
        return Self.total
    }

    /// The weight Flagger adds in the step from `weight` (scheduler.go:58-90).
    func increment(from weight: Int) -> Int {
        if let stepWeight, stepWeight > 0 || stepWeights.isEmpty { return stepWeight }
        let room = Self.total - weight
        if room == 0 { return 1 }
        guard weight > 0 else { return min(room, stepWeights[0]) }
        for (index, step) in stepWeights.dropLast().enumerated() where step == weight {
            return min(room, stepWeights[index + 1] - weight)
        }
        return room
    }

    /// The canary weight after the traffic step Flagger asks `confirm-traffic-increase` for at
    /// `weight`: one step more below the maximum; at or above it the same weight (Flagger asks once
    /// more at the maximum, then promotes without adding traffic: scheduler.go:570, 617).
    public func weight(after weight: Int) -> Int {
        guard weight < maximum else { return weight }
        return min(weight + increment(from: weight), Self.total)
    }

    /// How many traffic steps are left from `weight` before the maximum (nil if a step adds nothing).
    public func stepsLeft(from weight: Int) -> Int? {
        var current = weight
        var count = 0
        while current < maximum {
            let next = self.weight(after: current)
            guard next > current, count < Self.total else { return nil }
            current = next
            count += 1
        }
        return count
    }

    /// In words: "steps of 10% up to 30%".
    public var description: String {
        let steps =
            stepWeights.isEmpty
            ? "steps of \(stepWeight ?? 0)%" : "steps to " + stepWeights.map { "\($0)%" }.joined(separator: ", ")
        return "\(steps) up to \(maximum)%"
    }
}
