import RealModule

/// Bits per byte of a model over a split, with the windows shared out over the ranks.
public final class Evaluator {
    let model: Model<Float>
    let corpus: Corpus
    let collective: Collective
    let batch: Int
    /// One workspace per (batch, sequence) shape met: the full windows, the last partial batch
    /// and the split's shorter final window.
    private var workspaces: [[Int]: Workspace<Float>] = [:]

    public init(model: Model<Float>, corpus: Corpus, collective: Collective, batch: Int) {
        self.model = model
        self.corpus = corpus
        self.collective = collective
        self.batch = batch
    }

    /// Mean bits per scored byte over the split (its first `limit` bytes when given).
    public func bitsPerByte(_ split: Split, limit: Int? = nil) throws -> Double {
        let windows = corpus.evaluationWindows(split, sequence: model.config.seqLen, limit: limit)
        let mine = stride(from: collective.rank, to: windows.count, by: collective.size).map { windows[$0] }
        var totals = [0.0, 0.0]  // nats, bytes
        // Windows of equal length go through the model together.
        let groups = Dictionary(grouping: mine, by: \.count)
        for (length, group) in groups.sorted(by: { $0.key > $1.key }) {
            for start in stride(from: 0, to: group.count, by: batch) {
                let chunk = group[start..<Swift.min(start + batch, group.count)]
                let ws = workspace(batch: chunk.count, sequence: length)
                corpus.bytes.withUnsafeBufferPointer { all in
                    for (j, window) in chunk.enumerated() {
                        (ws.tokens + j * length).update(from: all.baseAddress! + window.lowerBound, count: length)
                        (ws.targets + j * length).update(from: all.baseAddress! + window.lowerBound + 1, count: length)
                    }
                }
                let meanLoss = try model.forward(ws)
                totals[0] += meanLoss * Double(ws.rows)
                totals[1] += Double(ws.rows)
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
