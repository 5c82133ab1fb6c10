import Foundation
import TestSupport
import XCTest

/// `rezero plot` as a user runs it.
final class PlotCommandTests: XCTestCase {
    func testPlotCommandWritesTheChartsAndNamesAMissingFile() throws {
        let (fast, slow) = try RunFixtures.writeRuns("command")
        let out = Paths.temporaryDirectory("command-out") + "/charts"
        let result = try rezero(["plot", fast, slow, "--out", out, "--title", "tiny & fast"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("wrote \(out)/valid_bpb.svg"), result.stdout)
        XCTAssertTrue(result.stdout.contains("wrote \(out)/alpha.svg"), result.stdout)
        XCTAssertTrue(result.stdout.contains("note: slow has no α"), result.stdout)
        let valid = try String(contentsOfFile: out + "/valid_bpb.svg", encoding: .utf8)
        XCTAssertTrue(valid.contains("<title>tiny &amp; fast: validation bits/byte</title>"), valid)

        let postnorm = try rezero(["plot", slow])
        XCTAssertEqual(postnorm.status, 0, postnorm.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: slow + "/valid_bpb.svg"), "--out defaults to the first run")
        XCTAssertFalse(FileManager.default.fileExists(atPath: slow + "/alpha.svg"))
        XCTAssertTrue(postnorm.stdout.contains("alpha.svg not written"), postnorm.stdout)

        try FileManager.default.removeItem(atPath: fast + "/metrics.jsonl")
        let missing = try rezero(["plot", slow, fast])
        XCTAssertEqual(missing.status, 2)
        XCTAssertEqual(missing.stderr, "error: \(fast)/metrics.jsonl: no such file\n")

        let help = try rezero(["plot", "--help"]).stdout
        for flag in ["<run-dir>", "--out", "--title"] { XCTAssertTrue(help.contains(flag), flag) }
        XCTAssertEqual(help.components(separatedBy: "(default:").count - 1, 2)
    }
}
