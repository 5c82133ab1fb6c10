import RealModule

/// Bits per byte of a model over a split: the windows are shared out over the ranks, and within
/// a rank over the threads, each thread running whole batches of windows on single-threaded BLAS.
public final class Evaluator {
    let model: Model<Float>
    let corpus: Corpus
    let collective: Collective
    let batch: Int
    /// Bytes by which consecutive windows overlap, read as context only (`Corpus.evaluationWindows`).
    public let context: Int
    let team: ThreadTeam?
    /// Per thread, one workspace per (batch, sequence) shape met: the full windows, the last
    /// partial batch and the split's shorter final window.
    private var workspaces: [[[Int]: Workspace<Float>]]

    /// - Parameter threads: threads to share the windows among (in-process data parallelism).
    public convenience init(model: Model<Float>, corpus: Corpus, collective: Collective, batch: Int,
                            context: Int = 0, threads: Int = 1) {
        self.init(model: model, corpus: corpus, collective: collective, batch: batch, context: context,
                  team: threads > 1 ? ThreadTeam(size: threads) : nil)
    }

    init(model: Model<Float>, corpus: Corpus, collective: Collective, batch: Int, context: Int, team: ThreadTeam?) {
        self.model = model
        self.corpus = corpus
        self.collective = collective
        self.batch = batch
        self.context = context
        self.team = team
        workspaces = Array(repeating: [:], count: team?.size ?? 1)
    }

    public func windows(_ split: Split, limit: Int? = nil) -> [EvaluationWindow] {
        corpus.evaluationWindows(split, sequence: model.config.seqLen, context: context, limit: limit)
    }

    /// Mean bits per scored byte over the split (its first `limit` bytes when given).
    public func bitsPerByte(_ split: Split, limit: Int? = nil) throws -> Double {
        let all = windows(split, limit: limit)
        let mine = stride(from: collective.rank, to: all.count, by: collective.size).map { all[$0] }
        // Windows of equal length go through the model together, `batch` at a time.
        var batches: [ArraySlice<EvaluationWindow>] = []
        for (_, group) in Dictionary(grouping: mine, by: \.inputs.count).sorted(by: { $0.key > $1.key }) {
            for start in stride(from: 0, to: group.count, by: batch) { batches.append(group[start..<Swift.min(start + batch, group.count)]) }
        }
        let threads = team?.size ?? 1
        for (i, windows) in batches.enumerated() {
            prepareWorkspace(thread: i % threads, batch: windows.count, sequence: windows.first!.inputs.count)
        }
        // Each batch's nats, added up in batch order: the result does not depend on threads.
        let nats = UnsafeMutableBufferPointer<Double>.allocate(capacity: batches.count)
        defer { nats.deallocate() }
        let failures = UnsafeMutableBufferPointer<NonFiniteValue?>.allocate(capacity: threads)
        failures.initialize(repeating: nil)
        defer {
            failures.deinitialize()
            failures.deallocate()
        }
        let run = { (thread: Int) in
            for i in stride(from: thread, to: batches.count, by: threads) {
                do throws(NonFiniteValue) { nats[i] = try self.scoredNats(batches[i], thread: thread) } catch { failures[thread] = error }
            }
        }
        if let team {
            let saved = BLAS.threads
            BLAS.threads = 1
            team.run(run)
            BLAS.threads = saved
        } else {
            run(0)
        }
        if let failure = failures.lazy.compactMap({ $0 }).first { throw failure }
        var totals = [nats.reduce(0, +), Double(mine.reduce(0) { $0 + $1.scored })]
        try collective.allReduce(&totals, .sum)
        return totals[0] / totals[1] / Double.log(2)
    }

    /// The summed loss of the scored positions of a batch of equal-length windows.
    private func scoredNats(_ windows: ArraySlice<EvaluationWindow>, thread: Int) throws(NonFiniteValue) -> Double {
        let length = windows.first!.inputs.count
        let ws = workspaces[thread][[windows.count, length]]!
        corpus.bytes.withUnsafeBufferPointer { bytes in
            for (j, window) in windows.enumerated() {
                let first = bytes.baseAddress! + window.inputs.lowerBound
                (ws.tokens + j * length).update(from: first, count: length)
                (ws.targets + j * length).update(from: first + 1, count: length)
            }
        }
        try model.forward(ws)
        let losses = ws[.tokenLoss]
        var nats = 0.0
        for (j, window) in windows.enumerated() {
            for row in (j * length + window.firstScored)..<((j + 1) * length) { nats += Double(losses[row]) }
        }
        return nats
    }

    private func prepareWorkspace(thread: Int, batch: Int, sequence: Int) {
        guard workspaces[thread][[batch, sequence]] == nil else { return }
        workspaces[thread][[batch, sequence]] = Workspace<Float>(config: model.config, batch: batch, sequence: sequence)
    }
}
