import Foundation

/// Run directories as the trainer leaves them, for the chart tests.
public enum RunFixtures {
    /// Two runs as the trainer leaves them: "fast" (rezero, 3 layers) with evaluations that
    /// include NaN, Infinity and a 1e30 spike, and α with a NaN; "slow" (postnorm) with training
    /// lines only, ending in a NaN loss.
    public static func writeRuns(_ name: String) throws -> (fast: String, slow: String) {
        let root = Paths.temporaryDirectory(name)
        var fast: [String] = []
        for step in stride(from: 10, through: 200, by: 10) {
            let bpb = 2 + 6 * exp(-Double(step) / 50)
            let alpha = [0.001 * Double(step), step == 100 ? .nan : 0.002 * Double(step), 0.003 * Double(step)]
            fast.append(#"{"step": \#(step), "loss": \#(json(bpb * M_LN2)), "bpb": \#(json(bpb)), "lr": 0.001, "grad_norm": 1.5, "alpha": [\#(alpha.map(json).joined(separator: ", "))], "tokens_per_s": 1000.0, "tokens": \#(step * 512), "elapsed_s": \#(Double(step) / 10)}"#)
            if step % 50 == 0 { fast.append(#"{"step": \#(step), "valid_bpb": \#(json(bpb - 0.1))}"#) }
            if step == 170 { fast.append(#"{"step": 175, "valid_bpb": 1e30}"#) }
        }
        fast += [#"{"step": 250, "valid_bpb": NaN}"#, #"{"step": 300, "valid_bpb": Infinity}"#]
        var slow: [String] = []
        for step in stride(from: 5, through: 500, by: 5) {
            let bpb = 1.5 + 6 * exp(-Double(step) / 150)
            slow.append(#"{"step": \#(step), "loss": \#(json(bpb * M_LN2)), "bpb": \#(json(bpb)), "lr": 0.001, "grad_norm": 1.0, "tokens_per_s": 900.0, "tokens": \#(step * 512), "elapsed_s": \#(Double(step) / 9)}"#)
        }
        slow.append(#"{"step": 505, "loss": NaN, "bpb": NaN, "lr": 0.001, "grad_norm": NaN, "tokens_per_s": 900.0, "tokens": 258560, "elapsed_s": 56.1}"#)
        try writeRun(root + "/fast", variant: "rezero", layers: 3, lines: fast)
        try writeRun(root + "/slow", variant: "postnorm", layers: 2, lines: slow)
        return (root + "/fast", root + "/slow")
    }

    public static func writeRun(_ directory: String, variant: String, layers: Int, lines: [String]) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try #"{"model": {"variant": "\#(variant)", "layers": \#(layers), "d_model": 64}, "warmup": 10, "schedule": "cosine"}"#
            .write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        try (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/metrics.jsonl", atomically: true, encoding: .utf8)
    }

    /// JSON as Python's json module writes it, non-finite numbers included.
    public static func json(_ v: Double) -> String { v.isNaN ? "NaN" : v.isInfinite ? (v > 0 ? "Infinity" : "-Infinity") : "\(v)" }
}
