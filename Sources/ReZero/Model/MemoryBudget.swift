import Foundation

/// Refuses, as bad input, a model whose buffers cannot fit in this machine's memory, before any is
/// allocated: a failed allocation traps, and a configuration may come from a checkpoint's header.
enum MemoryBudget {
    /// Parameters and gradients (plus both Adam moments and the other workers' gradients when
    /// `training`) and the activations of `batch` sequences of `sequence` bytes must fit in
    /// physical memory.
    static func require(_ config: ModelConfig, batch: Int, sequence: Int, training: Bool, workers: Int = 1) throws(RezeroError) {
        let parameters = ParameterLayout(config).count
        let activations = Workspace<Float>.scalarCount(config, batch: batch, sequence: sequence)
        let buffers = training ? 3 + Swift.max(1, workers) : 2
        let available = Double(ProcessInfo.processInfo.physicalMemory)
        let needed = (Double(parameters * buffers) + Double(activations ?? .max)) * Double(MemoryLayout<Float>.stride)
        guard needed > available else { return }
        func gigabytes(_ bytes: Double) -> String { String(format: "%.1f GB", bytes / 1e9) }
        throw .usage("a \(config.layers)-layer, d=\(config.dModel) model (\(parameters.formatted()) parameters, --seq-len \(config.seqLen)) with a batch of \(batch) needs \(gigabytes(needed)) of memory for its parameters\(training ? ", gradients and optimizer moments" : " and gradients") and activations; this machine has \(gigabytes(available))")
    }
}
