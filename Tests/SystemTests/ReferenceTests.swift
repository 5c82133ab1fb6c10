import Foundation
import XCTest
import ReZero
import TestSupport

/// `rezero eval` against Tests/Reference/reference_eval.py: a numpy program written from the
/// README's description alone, sharing no code with the Swift model. Agreement checks the
/// checkpoint format, the tensor names, the data split, the evaluation windows and the forward pass.
final class ReferenceTests: XCTestCase {
    static let reference = Paths.packageRoot.appendingPathComponent("Tests/Reference/reference_eval.py").path
    static let contexts = [0, 9, 31]

    /// One trained model's figures: `rezero eval --json` and the reference's output, per eval context.
    struct Figures: Sendable {
        var label: String
        var problems: [String] = []
        var ours: [Int: [String: Double]] = [:], theirs: [Int: [String: Double]] = [:]
    }

    func testEvalAgreesWithTheNumpyReferenceForEveryVariantActivationAndContext() throws {
        // The interpreter itself, not a launcher shim: each start of a shim costs a quarter second.
        let probe = try runProcess("/usr/bin/env", ["python3", "-c", "import sys, numpy; print(sys.executable)"])
        guard probe.status == 0 else {
            throw XCTSkip("python3 with numpy is not available: the numpy reference cannot run (\(probe.stderr))")
        }
        let python = probe.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let dir = Paths.temporaryDirectory("reference")
        // Any real text will do as a corpus: the README (its valid split holds some 2,500 bytes).
        let corpus = dir + "/corpus.txt"
        try FileManager.default.copyItem(atPath: Paths.packageRoot.appendingPathComponent("README.md").path, toPath: corpus)
        let models = Variant.allCases.flatMap { v in ActivationKind.allCases.map { (v, $0) } }
        // Each model's work is mostly waiting for its processes to start (MPI's start-up among it),
        // so the models run side by side, a thread each.
        let results = LockedArray<Figures>()
        let done = DispatchGroup()
        for (variant, activation) in models {
            done.enter()
            Thread.detachNewThread {
                results.append(Self.compare(variant, activation, corpus: corpus, directory: dir, python: python))
                done.leave()
            }
        }
        done.wait()
        XCTAssertEqual(results.values.count, models.count)
        for figures in results.values.sorted(by: { $0.label < $1.label }) {
            XCTAssertEqual(figures.problems, [], figures.label)
            for context in Self.contexts {
                let label = "\(figures.label), eval context \(context)"
                guard let ours = figures.ours[context], let theirs = figures.theirs[context],
                      let x = ours["bits_per_byte"], let y = theirs["bits_per_byte"] else {
                    XCTFail("\(label): no figures")
                    continue
                }
                XCTAssertEqual(ours["bytes_scored"], 299, label)
                XCTAssertEqual(theirs["bytes_scored"], 299, label)
                XCTAssertLessThan(x, 7.9, "\(label): a model that learned something")
                XCTAssertEqual(x, y, accuracy: 1e-5 * y, label)
                print(String(format: "%@: rezero %.6f, numpy reference %.6f bits/byte, relative difference %.1e",
                             label, x, y, abs(x - y) / y))
            }
        }
    }

    /// Trains a small model for a few steps at a high rate (α, biases and norms move off their
    /// initial values), then evaluates its checkpoint both ways.
    static func compare(_ variant: Variant, _ activation: ActivationKind, corpus: String, directory: String,
                        python: String) -> Figures {
        var figures = Figures(label: "\(variant.rawValue) \(activation.rawValue)")
        func json(_ line: Substring) -> [String: Double] {
            ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?
                .compactMapValues { ($0 as? NSNumber)?.doubleValue } ?? [:]
        }
        do {
            let run = directory + "/\(variant.rawValue)-\(activation.rawValue)"
            let train = try rezero(["train", "--data", corpus, "--variant", variant.rawValue, "--activation", activation.rawValue,
                                    "--layers", "2", "--d-model", "16", "--heads", "4", "--ff-mult", "2", "--seq-len", "32",
                                    "--batch-size", "4", "--steps", "30", "--lr", "1e-2", "--warmup", "5",
                                    "--eval-every", "0", "--log-every", "100", "--threads", "1", "--run-dir", run])
            guard train.status == 0 else { figures.problems.append("train: \(train.stderr)"); return figures }
            let checkpoint = run + "/ckpt-00000030.safetensors"
            let data = ["--split", "valid", "--bytes", "300"]
            for context in contexts {
                let out = try rezero(["eval", "--checkpoint", checkpoint, "--json", "--eval-context", String(context)] + data)
                if out.status != 0 { figures.problems.append("eval: \(out.stderr)") }
                figures.ours[context] = json(Substring(out.stdout.replacingOccurrences(of: "\n", with: "")))
            }
            let reference = try runProcess(python, [Self.reference, checkpoint] + data + ["--eval-context"] + contexts.map(String.init))
            if reference.status != 0 { figures.problems.append("reference: \(reference.stderr)") }
            for line in reference.stdout.split(separator: "\n") {
                let values = json(line)
                if let context = values["eval_context"] { figures.theirs[Int(context)] = values }
            }
        } catch {
            figures.problems.append("\(error)")
        }
        return figures
    }
}

/// An array that several threads append to.
final class LockedArray<Element: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Element] = []
    func append(_ element: Element) { lock.withLock { storage.append(element) } }
    var values: [Element] { lock.withLock { storage } }
}
