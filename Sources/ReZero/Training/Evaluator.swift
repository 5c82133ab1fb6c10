import RealModule

/// Bits per byte of a model over a split, with the windows shared out over the ranks.
public final class Evaluator {
    let model: Model<Float>
    let corpus: Corpus
    let collective: Collective
    let batch: Int
    /// Bytes by which consecutive windows overlap, read as context only (`Corpus.evaluationWindows`).
    public let context: Int
    /// One workspace per (batch, sequence) shape met: the full windows, the last partial batch
    /// and the split's shorter final window.
    private var workspaces: [[Int]: Workspace<Float>] = [:]

    public init(model: Model<Float>, corpus: Corpus, collective: Collective, batch: Int, context: Int = 0) {
        self.model = model
        self.corpus = corpus
        self.collective = collective
        self.batch = batch
        self.context = context
    }

    public func windows(_ split: Split, limit: Int? = nil) -> [EvaluationWindow] {
        corpus.evaluationWindows(split, sequence: model.config.seqLen, context: context, limit: limit)
    }

    /// Mean bits per scored byte over the split (its first `limit` bytes when given).
    public func bitsPerByte(_ split: Split, limit: Int? = nil) throws -> Double {
        let all = windows(split, limit: limit)
        let mine = stride(from: collective.rank, to: all.count, by: collective.size).map { all[$0] }
        var totals = [0.0, 0.0]  // nats, bytes
        // Windows of equal length go through the model together.
        let groups = Dictionary(grouping: mine, by: \.inputs.count)
        for (length, group) in groups.sorted(by: { $0.key > $1.key }) {
            for start in stride(from: 0, to: group.count, by: batch) {
                let chunk = group[start..<Swift.min(start + batch, group.count)]
                let ws = workspace(batch: chunk.count, sequence: length)
                corpus.bytes.withUnsafeBufferPointer { bytes in
                    for (j, window) in chunk.enumerated() {
                        let first = bytes.baseAddress! + window.inputs.lowerBound
                        (ws.tokens + j * length).update(from: first, count: length)
                        (ws.targets + j * length).update(from: first + 1, count: length)
                    }
                }
                try model.forward(ws)
                // The loss of the scored positions only.
                for (j, window) in chunk.enumerated() {
                    for row in (j * length + window.firstScored)..<((j + 1) * length) {
                        totals[0] += CrossEntropy.loss(ws.nextByteProbabilities + row * ModelConfig.vocabulary,
                                                       target: ws.targets[row])
                    }
                    totals[1] += Double(window.scored)
                }
            }
        }
        try collective.allReduce(&totals, .sum)
        return totals[0] / totals[1] / Double.log(2)
    }

    private func workspace(batch: Int, sequence: Int) -> Workspace<Float> {
        if let ws = workspaces[[batch, sequence]] { return ws }
        let ws = Workspace<Float>(config: model.config, batch: batch, sequence: sequence, attentionWorkers: BLAS.threads)
        workspaces[[batch, sequence]] = ws
        return ws
    }
}
