import RealModule

public enum ScheduleKind: String, Codable, CaseIterable, Sendable {
    /// The base rate throughout (warm-up ignored).
    case constant
    /// Linear warm-up from 0 over `warmup` steps, then constant.
    case warmup
    /// Linear warm-up, then cosine decay to a tenth of the base rate at the last step.
    case cosine
}

public struct Schedule: Codable, Equatable, Sendable {
    public var kind: ScheduleKind
    public var baseRate: Double
    public var warmupSteps: Int
    public var totalSteps: Int

    /// The rate of step `step` (1-based).
    public func rate(at step: Int) -> Double {
        let warm = kind != .constant && warmupSteps > 0 && step <= warmupSteps
        if warm { return baseRate * Double(step) / Double(warmupSteps) }
        switch kind {
        case .constant, .warmup:
            return baseRate
        case .cosine:
            let span = Swift.max(totalSteps - warmupSteps, 1)
            let progress = Swift.min(Double(step - warmupSteps) / Double(span), 1)
            let minimum = baseRate / 10
            return minimum + (baseRate - minimum) * 0.5 * (1 + Double.cos(Double.pi * progress))
        }
    }
}
