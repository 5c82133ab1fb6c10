import Foundation

/// What a comparison measures, as plain data computed from finished runs: each run's validation
/// curve, each row's choice among its grid, and the spread of its seeds. Nothing here trains, so
/// every number can be rebuilt from the run directories alone (and tested on made-up curves).
extension Comparison {
    /// One validation bits/byte measurement.
    public struct Evaluation: Codable, Sendable, Equatable {
        public var step: Int
        public var bpb: Double

        public init(step: Int, bpb: Double) {
            self.step = step
            self.bpb = bpb
        }
    }

    /// One finished run of a row: its setting, how it ended, its curve and its final numbers.
    public struct Trial: Codable, Sendable {
        public var run: String
        public var layers: Int
        public var setting: Setting
        public var status: TrainingSummary.Status
        /// Steps taken (a diverged run's last).
        public var steps: Int
        /// Training wall time, evaluations included.
        public var seconds: Double
        public var validation: [Evaluation]
        public var finalValidBpb: Double?
        public var testBpb: Double?
        public var directory: String

        public init(run: String, layers: Int, setting: Setting, status: TrainingSummary.Status, steps: Int, seconds: Double,
                    validation: [Evaluation], finalValidBpb: Double?, testBpb: Double?, directory: String) {
            self.run = run
            self.layers = layers
            self.setting = setting
            self.status = status
            self.steps = steps
            self.seconds = seconds
            self.validation = validation
            self.finalValidBpb = finalValidBpb
            self.testBpb = testBpb
            self.directory = directory
        }

        /// The first evaluated step at or below `level` bits/byte.
        public func steps(toReach level: Double) -> Int? {
            validation.first { $0.bpb <= level }?.step
        }

        /// The lowest finite validation bits/byte and the first step that measured it.
        public var best: Evaluation? {
            validation.filter { $0.bpb.isFinite }.min { ($0.bpb, $0.step) < ($1.bpb, $1.step) }
        }

        /// The grid's order of merit: fewer steps to `target`; then a lower final validation
        /// bits/byte; a diverged run only beats another diverged run, by lasting longer.
        public func isBetter(than other: Trial, target: Double) -> Bool {
            switch (steps(toReach: target), other.steps(toReach: target)) {
            case let (x?, y?) where x != y: return x < y
            case (_?, nil): return true
            case (nil, _?): return false
            default: break
            }
            switch (finalValidBpb, other.finalValidBpb) {
            case let (x?, y?): return x < y
            case (_?, nil): return true
            case (nil, _?): return false
            case (nil, nil): return steps > other.steps
            }
        }
    }

    /// Mean, standard deviation (n − 1; 0 for one value) and range of a few numbers.
    public struct Spread: Codable, Sendable, Equatable {
        public var mean: Double, sd: Double, min: Double, max: Double, count: Int

        public init?(_ values: [Double]) {
            guard !values.isEmpty else { return nil }
            count = values.count
            mean = values.reduce(0, +) / Double(count)
            let m = mean
            sd = count > 1 ? (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(count - 1)).squareRoot() : 0
            min = values.min()!
            max = values.max()!
        }
    }

    /// How much sooner a run reaches the best validation bits/byte of a reference run than the
    /// reference itself does: the paper's "X% faster", read at the level the reference reaches, so
    /// that it is defined whether or not either run meets a fixed target.
    public enum Speedup: Codable, Sendable, Equatable {
        /// The reference first measured its best, `level`, at `referenceSteps`; the run first
        /// measured `level` or lower at `runSteps`.
        case reached(level: Double, referenceSteps: Int, runSteps: Int)
        /// The run never measured `level` or lower; its own best was `best` (nil: no evaluation).
        case neverReached(level: Double, best: Double?)

        /// nil when the reference has no finite evaluation, so no level to read at.
        public init?(reference: Trial, run: Trial) {
            guard let level = reference.best else { return nil }
            if let steps = run.steps(toReach: level.bpb) {
                self = .reached(level: level.bpb, referenceSteps: level.step, runSteps: steps)
            } else {
                self = .neverReached(level: level.bpb, best: run.best?.bpb)
            }
        }

        /// referenceSteps / runSteps, when the run reached the level.
        public var ratio: Double? {
            guard case let .reached(_, reference, run) = self else { return nil }
            return Double(reference) / Double(Swift.max(run, 1))
        }
    }

    /// A row's speed-up against one reference row over the seeds both have.
    public struct SpeedupSummary: Codable, Sendable, Equatable {
        public var reference: String
        /// Per paired seed, in seed order.
        public var seeds: [UInt64]
        public var speedups: [Speedup]
        /// Over the seeds whose run reached the reference's level.
        public var ratio: Spread? { Spread(speedups.compactMap(\.ratio)) }
        public var reached: Int { speedups.filter { $0.ratio != nil }.count }
    }

    /// One row of the table at one depth: the grid it was tuned on, its choice, and its seeds.
    public struct RowResult: Codable, Sendable {
        public var run: String
        public var layers: Int
        /// Every setting of the tuning grid that has a finished run, on the tuning seed.
        public var tuning: [Trial]
        /// Settings of the grid or seeds that have no finished run (`compare --no-train`).
        public var missing: [Setting]
        /// The best of `tuning`; every seed then trains at its learning rate and warm-up.
        public var chosen: Setting?
        /// The chosen setting's runs, one per seed that has finished, in seed order.
        public var seeds: [Trial]
        public var target: Double
        public var speedups: [SpeedupSummary] = []

        public init(run: String, layers: Int, tuning: [Trial], missing: [Setting], seeds: [Trial], target: Double) {
            self.run = run
            self.layers = layers
            self.tuning = tuning
            self.missing = missing
            self.seeds = seeds
            self.target = target
            chosen = Self.choose(tuning, target: target)?.setting
        }

        /// The best trial of a grid by `Trial.isBetter`; the first listed of equals.
        public static func choose(_ trials: [Trial], target: Double) -> Trial? {
            trials.reduce(nil) { best, trial in best.map { trial.isBetter(than: $0, target: target) ? trial : $0 } ?? trial }
        }

        /// Steps to the target, over the seeds that reached it.
        public var stepsToTarget: Spread? { Spread(seeds.compactMap { $0.steps(toReach: target).map(Double.init) }) }
        public var reachedTarget: Int { seeds.filter { $0.steps(toReach: target) != nil }.count }
        public var finalValid: Spread? { Spread(seeds.compactMap(\.finalValidBpb)) }
        public var test: Spread? { Spread(seeds.compactMap(\.testBpb)) }
        public var diverged: [Trial] { seeds.filter { $0.status == .diverged } }

        /// Pairs this row's seeds with `reference`'s and reads the speed-up at its level.
        mutating func compare(against reference: RowResult) {
            var pairs: [(UInt64, Speedup)] = []
            for trial in seeds {
                guard let theirs = reference.seeds.first(where: { $0.setting.seed == trial.setting.seed }),
                      let speedup = Speedup(reference: theirs, run: trial) else { continue }
                pairs.append((trial.setting.seed, speedup))
            }
            speedups.append(SpeedupSummary(reference: reference.run, seeds: pairs.map(\.0), speedups: pairs.map(\.1)))
        }
    }

    /// Every row of one depth, each with its speed-ups against the reference rows present.
    public struct DepthResult: Codable, Sendable {
        public var layers: Int
        public var rows: [RowResult]

        public init(layers: Int, rows: [RowResult]) {
            self.layers = layers
            self.rows = rows
            for reference in Comparison.references {
                guard let theirs = rows.first(where: { $0.run == reference.name }) else { continue }
                for i in self.rows.indices { self.rows[i].compare(against: theirs) }
            }
        }

        /// Training seconds of every run at this depth, tuning and seeds.
        public var seconds: Double {
            var seen = Set<String>(), total = 0.0
            for trial in rows.flatMap({ $0.tuning + $0.seeds }) where seen.insert(trial.directory).inserted { total += trial.seconds }
            return total
        }

        public var runCount: Int { Set(rows.flatMap { ($0.tuning + $0.seeds).map(\.directory) }).count }
    }
}
