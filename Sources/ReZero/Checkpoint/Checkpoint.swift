import Foundation

/// Where a run stands, beyond its tensors.
public struct TrainingState: Codable, Equatable, Sendable {
    /// Optimizer steps completed; the next batch is that of step + 1.
    public var step = 0
    public var tokensSeen = 0
    public var bestValidBpb: Double?
    public var worldSize = 1
    public init() {}
}

/// A full training checkpoint in the safetensors layout: the parameters under their layout names,
/// the optimizer moments as `optim.m.<name>` / `optim.v.<name>`, and metadata strings.
public enum Checkpoint {
    public static let format = "rezero-checkpoint"
    public static let formatVersion = "2"

    public struct Loaded {
        public let path: String
        public let config: TrainingConfig
        public let state: TrainingState
        public let optimizerUpdates: Int
        public let file: SafeTensors.File

        /// Copies parameters (and moments, when given an optimizer) into place, checking shapes.
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

        /// A model with this checkpoint's architecture and parameters (for eval and sample).
        public func model() throws -> Model<Float> {
            try config.model.validate()
            let model = Model<Float>(config: config.model, seed: config.seed)
            try restore(parameters: model.parameters, layout: model.layout, optimizer: nil)
            return model
        }
    }

    public static func encode(config: TrainingConfig, state: TrainingState, layout: ParameterLayout,
                              parameters: UnsafePointer<Float>, optimizer: Optimizer) -> Data {
        var tensors: [SafeTensors.Tensor] = []
        for (prefix, base) in [("", parameters), ("optim.m.", UnsafePointer(optimizer.firstMoment)),
                               ("optim.v.", UnsafePointer(optimizer.secondMoment))] {
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
        return SafeTensors.encode(tensors, metadata: metadata)
    }

    public static func save(path: String, config: TrainingConfig, state: TrainingState,
                            layout: ParameterLayout, parameters: UnsafePointer<Float>, optimizer: Optimizer) throws {
        try AtomicFile.write(encode(config: config, state: state, layout: layout, parameters: parameters,
                                    optimizer: optimizer), to: path)
    }

    /// Reads and validates a checkpoint: magic, metadata, data checksum.
    public static func load(path: String) throws -> Loaded {
        let file = try SafeTensors.read(path: path)
        func fail(_ problem: String) -> SafeTensors.FormatError { .init(path: path, problem: problem) }
        guard file.metadata["format"] == format else {
            throw fail("not a rezero checkpoint (metadata format is \(file.metadata["format"].map { "\"\($0)\"" } ?? "absent"))")
        }
        guard file.metadata["format_version"] == formatVersion else {
            throw fail("checkpoint format version \(file.metadata["format_version"] ?? "?") is not supported (expected \(formatVersion))")
        }
        guard let configJSON = file.metadata["config"], let config = try? TrainingConfig.decode(json: configJSON) else {
            throw fail("metadata config is missing or malformed")
        }
        guard let stateJSON = file.metadata["state"],
              let state = try? JSONCoding.decode(TrainingState.self, from: stateJSON),
              let updates = file.metadata["optimizer_updates"].flatMap(Int.init) else {
            throw fail("metadata state is missing or malformed")
        }
        let layout = ParameterLayout(config.model)
        var checksum = fnv1a64(UnsafeRawBufferPointer(start: nil, count: 0))
        for prefix in ["", "optim.m.", "optim.v."] {
            for spec in layout.tensors {
                guard let values = file.values(prefix + spec.name) else {
                    throw fail("tensor \(prefix + spec.name) is missing")
                }
                checksum = values.withUnsafeBytes { fnv1a64($0, seed: checksum) }
            }
        }
        guard String(checksum, radix: 16) == file.metadata["data_checksum"] else {
            throw fail("data checksum mismatch (stored \(file.metadata["data_checksum"] ?? "none"), computed \(String(checksum, radix: 16))): the file is corrupted")
        }
        return Loaded(path: path, config: config, state: state, optimizerUpdates: updates, file: file)
    }
}
