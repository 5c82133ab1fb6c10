import Foundation

/// Where a run stands, beyond its tensors.
public struct TrainingState: Codable, Equatable, Sendable {
    /// Optimizer steps completed; the next batch is that of step + 1.
    public var step = 0
    public var tokensSeen = 0
    public var bestValidBpb: Double?
    public var worldSize = 1
    /// The divergence test's reference, the loss of the run's first step, and how many steps in a
    /// row have ended above it: kept across resumes, so that a resumed run is judged as if it had
    /// never stopped.
    public var initialLoss: Double?
    public var stepsAboveInitialLoss = 0
    public init() {}

    /// Throws a usage error naming the first field out of range.
    func validate() throws(RezeroError) {
        try require(step >= 0, "state.step", step, "must be non-negative")
        try require(tokensSeen >= 0, "state.tokens_seen", tokensSeen, "must be non-negative")
        try require(worldSize >= 1, "state.world_size", worldSize, "must be at least 1")
        try require(bestValidBpb.map { $0.isFinite && $0 >= 0 } ?? true, "state.best_valid_bpb", bestValidBpb ?? 0,
                    "must be a non-negative number")
        try require(initialLoss?.isFinite ?? true, "state.initial_loss", initialLoss ?? 0, "must be finite")
        try require(stepsAboveInitialLoss >= 0 && stepsAboveInitialLoss <= step, "state.steps_above_initial_loss",
                    stepsAboveInitialLoss, "must be between 0 and the step")
    }
}

/// A full training checkpoint in the safetensors layout: the parameters under their layout names,
/// the optimizer moments as `optim.m.<name>` / `optim.v.<name>`, and metadata strings. Two
/// checksums seal it: `header_checksum` over the header (every metadata value but itself, every
/// tensor's name, shape and offsets) and `data_checksum` over the tensors' bytes.
public enum Checkpoint {
    public static let format = "rezero-checkpoint"
    public static let formatVersion = "3"
    /// The version before the header checksum and the corpus identity: read with every other check.
    static let unsealedVersion = "2"
    static let headerChecksumKey = "header_checksum"
    static let prefixes = ["", "optim.m.", "optim.v."]

    public struct Loaded {
        public let path: String
        public let config: TrainingConfig
        public let state: TrainingState
        public let optimizerUpdates: Int
        /// The corpus the run was trained on (nil in a version 2 file, which does not record it).
        public let corpus: CorpusIdentity?
        public let file: SafeTensors.File

        /// Copies parameters (and moments, when given an optimizer) into place; `decode` has
        /// checked every tensor's shape against the layout.
        public func restore(parameters: UnsafeMutablePointer<Float>, layout: ParameterLayout,
                            optimizer: Optimizer?) throws {
            for spec in layout.tensors {
                try file.copy(spec.name, shape: spec.shape, into: parameters + spec.offset)
                if let optimizer {
                    try file.copy("optim.m." + spec.name, shape: spec.shape, into: optimizer.firstMoment + spec.offset)
                    try file.copy("optim.v." + spec.name, shape: spec.shape, into: optimizer.secondMoment + spec.offset)
                }
            }
            optimizer?.updates = optimizerUpdates
        }

        /// A model with this checkpoint's architecture and parameters (for eval and sample), once
        /// it is clear that it and its activations for `batch` windows fit in memory.
        public func model(batch: Int) throws -> Model<Float> {
            try MemoryBudget.require(config.model, batch: batch, sequence: config.model.seqLen, training: false)
            let model = Model<Float>(config: config.model, seed: config.seed)
            try restore(parameters: model.parameters, layout: model.layout, optimizer: nil)
            return model
        }
    }

    public static func encode(config: TrainingConfig, state: TrainingState, corpus: CorpusIdentity, layout: ParameterLayout,
                              parameters: UnsafePointer<Float>, optimizer: Optimizer) -> Data {
        var tensors: [SafeTensors.Tensor] = []
        for (prefix, base) in zip(prefixes, [parameters, UnsafePointer(optimizer.firstMoment), UnsafePointer(optimizer.secondMoment)]) {
            for spec in layout.tensors {
                tensors.append(.init(name: prefix + spec.name, shape: spec.shape,
                                     values: UnsafeBufferPointer(start: base + spec.offset, count: spec.count)))
            }
        }
        let checksum = tensors.reduce(fnv1a64(UnsafeRawBufferPointer(start: nil, count: 0))) {
            fnv1a64(UnsafeRawBufferPointer($1.values), seed: $0)
        }
        var metadata = [
            "format": format,
            "format_version": formatVersion,
            "config": config.json(),
            "state": JSONCoding.string(state),
            "corpus": JSONCoding.string(corpus),
            "step": String(state.step),
            "tokens_seen": String(state.tokensSeen),
            "seed": String(config.seed),
            "rng": "counter-based: the batch of step s is a function of (seed, s); next step \(state.step + 1)",
            "data_position": String(state.step + 1),
            "world_size": String(state.worldSize),
            "optimizer_updates": String(optimizer.updates),
            "data_checksum": String(checksum, radix: 16),
        ]
        if let best = state.bestValidBpb { metadata["best_valid_bpb"] = String(best) }
        metadata[headerChecksumKey] = headerChecksum(metadata: metadata, entries: SafeTensors.entries(tensors))
        return SafeTensors.encode(tensors, metadata: metadata)
    }

    public static func save(path: String, config: TrainingConfig, state: TrainingState, corpus: CorpusIdentity,
                            layout: ParameterLayout, parameters: UnsafePointer<Float>, optimizer: Optimizer) throws {
        try AtomicFile.write(encode(config: config, state: state, corpus: corpus, layout: layout, parameters: parameters,
                                    optimizer: optimizer), to: path)
    }

    /// The first non-finite value among parameters and moments, as "tensor[index] = value": a
    /// checkpoint must never hold one.
    static func firstNonFinite(layout: ParameterLayout, parameters: UnsafePointer<Float>, optimizer: Optimizer) -> String? {
        for (prefix, base) in zip(prefixes, [parameters, UnsafePointer(optimizer.firstMoment), UnsafePointer(optimizer.secondMoment)]) {
            for spec in layout.tensors {
                if let i = (0..<spec.count).first(where: { !base[spec.offset + $0].isFinite }) {
                    return "\(prefix + spec.name)[\(i)] = \(base[spec.offset + i])"
                }
            }
        }
        return nil
    }

    public static func load(path: String) throws -> Loaded {
        try decode(SafeTensors.readBytes(path: path), path: path)
    }

    /// Reads and validates a checkpoint: its structure, both checksums, the configuration and
    /// state (by the same rules as the command-line flags), exactly the layout's tensors with
    /// their shapes, and finite values. Anything else is a `SafeTensors.FormatError` naming the file.
    public static func decode(_ bytes: Data, path: String) throws -> Loaded {
        let file = try SafeTensors.decode(bytes, path: path)
        func fail(_ problem: String) -> SafeTensors.FormatError { .init(path: path, problem: problem) }
        guard file.metadata["format"] == format else {
            throw fail("not a rezero checkpoint (metadata format is \(file.metadata["format"].map { "\"\($0)\"" } ?? "absent"))")
        }
        let version = file.metadata["format_version"]
        guard version == formatVersion || version == unsealedVersion else {
            throw fail("checkpoint format version \(version ?? "?") is not supported (expected \(formatVersion) or \(unsealedVersion))")
        }
        let sealed = version == formatVersion
        if sealed {
            let computed = headerChecksum(metadata: file.metadata, entries: file.entries)
            guard file.metadata[headerChecksumKey] == computed else {
                throw fail("header checksum mismatch (stored \(file.metadata[headerChecksumKey] ?? "none"), computed \(computed)): the header is corrupted")
            }
        } else if file.metadata[headerChecksumKey] != nil || file.metadata["corpus"] != nil {
            // A version 3 file whose version was damaged into 2: it must not skip the header check.
            throw fail("format version \(unsealedVersion) with a header checksum or a corpus: the header is corrupted")
        }
        // Keys from after a file was written take their defaults, as in config.json.
        func decoded<T: Codable>(_ type: T.Type, _ key: String, defaults: T? = nil) throws -> T {
            guard let json = file.metadata[key] else { throw fail("metadata \(key) is missing") }
            do {
                return try defaults.map { try JSONCoding.decode(type, from: json, defaults: $0) } ?? JSONCoding.decode(type, from: json)
            } catch {
                throw fail("metadata \(key) is malformed: \(MetricsLog.describe(error))")
            }
        }
        let config = try decoded(TrainingConfig.self, "config", defaults: TrainingConfig())
        let state = try decoded(TrainingState.self, "state", defaults: TrainingState())
        let corpus = sealed ? try decoded(CorpusIdentity.self, "corpus") : nil
        do {
            try config.validate()
            try state.validate()
            try corpus?.validate()
        } catch {
            throw fail("metadata out of range: \(error)")
        }
        guard let updates = file.metadata["optimizer_updates"].flatMap(Int.init), updates >= 0 else {
            throw fail("metadata optimizer_updates is missing or not a non-negative integer")
        }
        let layout = ParameterLayout(config.model)
        let expected = prefixes.flatMap { prefix in layout.tensors.map { (prefix + $0.name, $0.shape) } }
        for (name, shape) in expected {
            guard let entry = file.entry(name) else { throw fail("tensor \(name) is missing") }
            guard entry.shape == shape else { throw fail("tensor \(name) has shape \(entry.shape), expected \(shape)") }
        }
        let names = Set(expected.map(\.0))
        if let extra = file.names.first(where: { !names.contains($0) }) {
            throw fail("tensor \(extra) does not belong to a \(config.model.variant.rawValue) model")
        }
        let checksum = file.data.withUnsafeBytes { raw in
            expected.reduce(fnv1a64(UnsafeRawBufferPointer(start: nil, count: 0))) { hash, tensor in
                let range = file.entry(tensor.0)!.range
                return fnv1a64(UnsafeRawBufferPointer(rebasing: raw[range]), seed: hash)
            }
        }
        guard String(checksum, radix: 16) == file.metadata["data_checksum"] else {
            throw fail("data checksum mismatch (stored \(file.metadata["data_checksum"] ?? "none"), computed \(String(checksum, radix: 16))): the file is corrupted")
        }
        let nonFinite = file.data.withUnsafeBytes { raw in
            stride(from: 0, to: raw.count, by: 4).first { !raw.loadUnaligned(fromByteOffset: $0, as: Float.self).isFinite }
        }
        if let offset = nonFinite, let entry = file.entries.first(where: { $0.range.contains(offset) }) {
            throw fail("tensor \(entry.name) holds a non-finite value at element \((offset - entry.range.lowerBound) / 4)")
        }
        return Loaded(path: path, config: config, state: state, optimizerUpdates: updates, corpus: corpus, file: file)
    }

    /// A hash of everything in the header but itself: each tensor's name, shape and offsets, and
    /// every metadata key and value, in sorted order (so JSON spacing and key order do not matter).
    static func headerChecksum(metadata: [String: String], entries: [SafeTensors.Entry]) -> String {
        var text = ""
        for e in entries.sorted(by: { $0.name < $1.name }) {
            text += "\(e.name)\0F32\0\(e.shape.map(String.init).joined(separator: ","))\0\(e.range.lowerBound),\(e.range.upperBound)\0"
        }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) where key != headerChecksumKey {
            text += "\(key)\0\(value)\0"
        }
        return String(Array(text.utf8).withUnsafeBytes { fnv1a64($0) }, radix: 16)
    }
}
