import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import ReZero
import ReZeroCharts
import TestSupport

/// The pieces of `rezero plot`: run directories in, SVG charts a person can read out.
final class PlotTests: XCTestCase {
    func testNiceTicksStepByOneTwoOrFiveTimesAPowerOfTen() {
        for (lo, hi, count) in [(0.0, 2000.0, 8), (1.43, 8.5, 7), (-0.05, 0.27, 6), (0.6, 1.0, 4), (1e-5, 3e-4, 5),
                                (5.0, 5.0, 5), (-3e6, 1e7, 5), (0.0, 120_000.0, 7), (1.0, 1.0 + 1e-9, 6), (-2.5, -2.5, 4)] {
            let ticks = LineChart.niceTicks(from: lo, to: hi, count: count)
            assertNice(ticks, "\(lo)…\(hi)")
            XCTAssertLessThanOrEqual(ticks.first!, lo, "\(lo)…\(hi)")
            XCTAssertGreaterThanOrEqual(ticks.last!, hi, "\(lo)…\(hi)")
            XCTAssert((2...2 * count + 1).contains(ticks.count - 1), "\(ticks.count - 1) intervals for \(count) wanted: \(ticks)")
        }
        let tenths = LineChart.niceTicks(from: 0.6, to: 1.0, count: 4)
        XCTAssertEqual(tenths.count, 5)
        XCTAssertEqual(tenths, [0.6, 0.7, 0.8, 0.9, 1.0], "decimal ticks are the Doubles their labels name")
        XCTAssertEqual(LineChart.niceTicks(from: 0, to: 2000, count: 8).count, 11)
    }

    /// A run of a compare grid is named by its row and setting, not by `seed-2` alone.
    func testRunOfACompareGridIsNamedWithItsSetting() throws {
        let (fastDir, _) = try RunFixtures.writeRuns("grid-label")
        let rowDir = URL(fileURLWithPath: fastDir).deletingLastPathComponent().path + "/prenorm+warmup"
        for setting in ["lr-0.01", "lr-0.01/warmup-500/seed-2"] {
            try FileManager.default.createDirectory(atPath: rowDir + "/" + setting, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: rowDir + "/" + setting)
            try FileManager.default.copyItem(atPath: fastDir, toPath: rowDir + "/" + setting)
        }
        XCTAssertEqual(try RunMetrics(directory: rowDir + "/lr-0.01").label, "prenorm+warmup, lr 0.01")
        XCTAssertEqual(try RunMetrics(directory: rowDir + "/lr-0.01/warmup-500/seed-2").label, "prenorm+warmup, lr 0.01, warm-up 500, seed 2")
    }

    /// compare's charts: a row's seeds as their mean line over a band from their minimum to their
    /// maximum; depth on a log axis labeled with the layer counts, a row's missing depth a gap.
    func testStudyChartsDrawSeedBandsAndDepthTicks() throws {
        typealias T = ComparisonTests
        func row(_ run: String, _ layers: Int, _ curves: [[(Int, Double)]]) -> Comparison.RowResult {
            let trials = curves.enumerated().map { T.trial(run, seed: UInt64($0.offset + 1), curve: $0.element) }
            return Comparison.RowResult(run: run, layers: layers, tuning: [trials[0]], missing: [], seeds: trials, target: 3.0)
        }
        let shallow = Comparison.DepthResult(layers: 6, rows: [row("rezero", 6, [[(100, 3.5), (200, 2.9)], [(100, 3.3), (200, 3.1)]]),
                                                               row("postnorm+warmup", 6, [[(100, 3.6), (200, 3.4)]]),
                                                               row("gpt2norm+warmup", 6, [[(100, 3.1), (200, 2.9)]])])
        let deep = Comparison.DepthResult(layers: 96, rows: [row("rezero", 96, [[(100, 3.2), (200, 2.8)], [(100, 3.0), (200, 2.9)]]),
                                                             row("postnorm+warmup", 96, [[(100, 4.7), (200, 4.7)]])])
        let validation = StudyCharts.validation(shallow)
        XCTAssertEqual(validation.series[0].points.map(\.y), [3.4, 3.0])
        XCTAssertEqual(validation.series[0].band.map(\.low), [3.3, 2.9])
        XCTAssertEqual(validation.series[0].band.map(\.high), [3.5, 3.1])
        XCTAssertTrue(validation.series[1].band.isEmpty, "one seed has no band")
        let svg = validation.svg()
        XCTAssertEqual(svg.components(separatedBy: #"class="band""#).count - 1, 1, svg)
        _ = try SVGElements(svg)

        let depth = StudyCharts.stepsToTarget([shallow, deep], target: 3.0)
        let rezero = depth.series[0]
        XCTAssertEqual(rezero.points.map(\.x), [log2(6), log2(96)])
        XCTAssertEqual(rezero.points.map(\.y), [200, 150])
        XCTAssertEqual(rezero.band.map(\.low), [200, 100])
        XCTAssertTrue(depth.series[1].points.allSatisfy { !$0.y.isFinite }, "Post-LN never reaches 3.0")
        XCTAssertEqual(depth.series[1].label, "postnorm+warmup (not reached at 6, 96 layers)")
        // A row trained at one depth only has one point there, not a gap at the others.
        XCTAssertEqual(depth.series[2].label, "gpt2norm+warmup")
        XCTAssertEqual(depth.series[2].points.map(\.y), [200])
        let depthSVG = depth.svg()
        XCTAssertTrue(depthSVG.contains(#"class="xtick" text-anchor="middle">6</text>"#) && depthSVG.contains(">96</text>"), depthSVG)
        _ = try SVGElements(depthSVG)
    }

    func testChartsOfTwoRunsSkipNonFiniteValuesAndKeepTheSpikeOffTheScale() throws {
        let (fastDir, slowDir) = try RunFixtures.writeRuns("charts")
        let runs = try RunMetrics.load([fastDir, slowDir])
        let (fast, slow) = (runs[0], runs[1])
        XCTAssertEqual(fast.label, "fast")
        XCTAssertEqual(fast.variant, "rezero")
        XCTAssertEqual(fast.steps.count, 20)
        XCTAssertEqual(fast.valid.count, 7)
        XCTAssertEqual(fast.alphaByLayer.count, 3)
        XCTAssertTrue(fast.alphaByLayer[1][9].value.isNaN)
        XCTAssertNil(fast.divergedAt)
        XCTAssertEqual(slow.divergedAt, 505)
        XCTAssertTrue(slow.alphaByLayer.isEmpty)

        let valid = try SVGElements(RunMetrics.validationChart(runs).svg())
        XCTAssertEqual(valid.series.count, 2, "one path per run")
        XCTAssertEqual(valid.text(group: "legend"), ["fast", "slow (train) (diverged at 505)"])
        XCTAssertEqual(valid.title, "validation bits/byte")
        // fast's finite evaluations are at 50, 100, 150, 175 (1e30) and 200: the spike's marker is off the plot.
        XCTAssertEqual(valid.markers(color: LineChart.categorical[0]), 4)
        XCTAssertEqual(valid.markers(color: LineChart.categorical[1]), 0, "100 points get no markers")
        let yTicks = valid.text(class: "ytick").compactMap(Double.init)
        assertNice(yTicks, "y ticks")
        XCTAssertLessThanOrEqual(yTicks.last!, 9, "the 1e30 spike must not set the scale")
        XCTAssertGreaterThanOrEqual(yTicks.last!, slow.bpb[0])
        XCTAssertLessThanOrEqual(yTicks.first!, slow.bpb.filter(\.isFinite).min()!)
        assertNice(valid.text(class: "xtick").compactMap(Double.init), "x ticks")
        valid.assertLinesInsidePlot()
        valid.assertCoordinatesRounded()

        let alphaPanels = RunMetrics.alphaCharts(runs)
        XCTAssertEqual(alphaPanels.count, 1, "postnorm has no α")
        let alpha = try SVGElements(LineChart.svg(stacking: alphaPanels, title: "α per layer"))
        XCTAssertEqual(alpha.series.count, 3, "one path per layer")
        XCTAssertEqual(alpha.text(group: "legend"), ["layer 0", "layer 1", "layer 2"])
        XCTAssertTrue(alpha.elements.contains { $0.name == "text" && $0.text == "fast (rezero, 3 layers)" })
        XCTAssertEqual(alpha.series[1].attributes["d"]!.filter { $0 == "M" }.count, 2, "the NaN at step 100 breaks layer 1's line")
        XCTAssertEqual(Set(alpha.series.map { $0.attributes["stroke"]! }).count, 3)
        alpha.assertLinesInsidePlot()
        alpha.assertCoordinatesRounded()
        XCTAssertTrue(RunMetrics.alphaCharts([slow]).isEmpty)
    }

    func testManyLayersGetAColorScaleAndLongRunsStaySmall() throws {
        let points = (0...100_000).map { (x: Double($0), y: sin(Double($0) / 5000) + 0.1 * sin(Double($0))) }
        let layers = LineChart.sequential(24).enumerated().map { LineChart.Series(label: "layer \($0)", color: $1, points: points) }
        let svg = LineChart(title: "α", xLabel: "step", yLabel: "α", series: layers, legend: .colorScale).svg()
        let chart = try SVGElements(svg)
        XCTAssertEqual(chart.series.count, 24)
        XCTAssertEqual(chart.text(group: "legend"), ["layer 0", "layer 23"])
        XCTAssertEqual(chart.text(class: "xtick").last, "100k")
        XCTAssertLessThan(svg.utf8.count, 24 * 40_000, "100k points per series thinned to the plot's pixels")
        chart.assertLinesInsidePlot()
    }

    func testResumedRunsLaterLinesSupersedeAndAnUnfinishedLastLineIsIgnored() throws {
        let dir = Paths.temporaryDirectory("resumed") + "/run"
        try RunFixtures.writeRun(dir, variant: "prenorm", layers: 1, lines: [
            #"{"step": 10, "bpb": 5.0}"#, #"{"step": 20, "bpb": 4.0}"#, #"{"step": 20, "valid_bpb": 4.5}"#, #"{"step": 30, "bpb": 3.0}"#,
            #"{"step": 20, "bpb": 4.2}"#, #"{"step": 20, "valid_bpb": 4.4}"#, #"{"step": 30, "bpb": 3.1}"#, #"{"step": 40, "loss": 2.0}"#,
        ])
        let handle = FileHandle(forWritingAtPath: dir + "/metrics.jsonl")!
        handle.seekToEndOfFile()
        handle.write(Data(#"{"step": 50, "bp"#.utf8))
        handle.closeFile()
        let run = try RunMetrics(directory: dir)
        XCTAssertEqual(run.steps, [10, 20, 30, 40])
        XCTAssertEqual(Array(run.bpb.prefix(3)), [5.0, 4.2, 3.1])
        XCTAssertEqual(run.bpb[3], 2.0 / M_LN2, accuracy: 1e-12)
        XCTAssertEqual(run.valid.map(\.step), [20])
        XCTAssertEqual(run.valid.map(\.bpb), [4.4])
    }

    func testMissingOrMalformedFilesAreNamedWithTheProblem() throws {
        let root = Paths.temporaryDirectory("malformed")
        func failure(_ directory: String) -> String {
            do { _ = try RunMetrics(directory: directory) } catch { return "\(error)" }
            return "no error"
        }
        XCTAssertEqual(failure(root + "/absent"), "\(root)/absent: no such directory")
        try RunFixtures.writeRun(root + "/run", variant: "rezero", layers: 1, lines: [#"{"step": 1, "bpb": 8.0}"#])
        try FileManager.default.removeItem(atPath: root + "/run/metrics.jsonl")
        XCTAssertEqual(failure(root + "/run"), "\(root)/run/metrics.jsonl: no such file")
        try RunFixtures.writeRun(root + "/run", variant: "rezero", layers: 1, lines: [#"{"step": 1, "bpb": 8.0}"#, #"{"step": 2, "bpb": "high"}"#, "{}"])
        XCTAssertEqual(failure(root + "/run"), "\(root)/run/metrics.jsonl:2: bpb: expected a number")
        try RunFixtures.writeRun(root + "/run", variant: "rezero", layers: 1, lines: [#"{"bpb": 8.0}"#])
        XCTAssertEqual(failure(root + "/run"), "\(root)/run/metrics.jsonl:1: missing step")
        try RunFixtures.writeRun(root + "/run", variant: "rezero", layers: 1, lines: ["step 1 bpb 8", "{}"])
        XCTAssertEqual(failure(root + "/run"), "\(root)/run/metrics.jsonl:1: not valid JSON")
        try #"{"model": {"layers": 1}}"#.write(toFile: root + "/run/config.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(failure(root + "/run"), "\(root)/run/config.json: missing model.variant")
        try FileManager.default.removeItem(atPath: root + "/run/config.json")
        XCTAssertEqual(failure(root + "/run"), "\(root)/run/config.json: no such file")
    }

    /// Ticks equally spaced by 1, 2 or 5 × 10^k, each a multiple of the step.
    func assertNice(_ ticks: [Double], _ context: String, file: StaticString = #filePath, line: UInt = #line) {
        guard ticks.count >= 2 else { return XCTFail("\(context): \(ticks)", file: file, line: line) }
        let step = ticks[1] - ticks[0]
        let mantissa = step / pow(10, (log10(step) + 1e-9).rounded(.down))
        XCTAssert([1.0, 2, 5].contains { abs(mantissa - $0) < 1e-6 }, "\(context): step \(step)", file: file, line: line)
        for (a, b) in zip(ticks, ticks.dropFirst()) {
            XCTAssertEqual(b - a, step, accuracy: step * 1e-6, "\(context): \(ticks)", file: file, line: line)
        }
        for t in ticks {
            XCTAssertEqual(t / step, (t / step).rounded(), accuracy: 1e-6, "\(context): \(t)", file: file, line: line)
        }
    }
}

/// The elements of an SVG document, parsed as XML, with the class and fill of their group.
final class SVGElements: NSObject, XMLParserDelegate {
    struct Element {
        var name: String
        var attributes: [String: String]
        var group: [String: String]
        var text = ""
    }

    private(set) var elements: [Element] = []
    private var groups: [[String: String]] = []
    private var open: [Int] = []

    init(_ svg: String) throws {
        super.init()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = self
        guard parser.parse() else { throw parser.parserError ?? CocoaError(.coderReadCorrupt) }
        XCTAssertEqual(elements.first?.name, "svg")
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        elements.append(Element(name: name, attributes: attributes, group: groups.last ?? [:]))
        open.append(elements.count - 1)
        if name == "g" { groups.append(attributes) }
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        open.removeLast()
        if name == "g" { groups.removeLast() }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if let i = open.last { elements[i].text += string }
    }

    var title: String? { elements.first { $0.name == "title" }?.text }
    var series: [Element] { elements.filter { $0.name == "path" && $0.attributes["class"] == "series" } }
    func text(class name: String) -> [String] { elements.filter { $0.name == "text" && $0.attributes["class"] == name }.map(\.text) }
    func text(group name: String) -> [String] { elements.filter { $0.name == "text" && $0.group["class"] == name }.map(\.text) }
    func markers(color: String) -> Int {
        elements.filter { $0.name == "circle" && $0.group["class"] == "markers" && $0.group["fill"] == color }.count
    }

    /// Every vertex of every series path (absolute M, relative l) lies within the plot frame
    /// drawn by the axis path "Mleft,topVbottomHright".
    func assertLinesInsidePlot(file: StaticString = #filePath, line: UInt = #line) {
        let frames = elements.filter { $0.name == "path" && $0.attributes["class"] == nil }.map { axis -> (Double, Double, Double, Double) in
            let v = numbers(axis.attributes["d"]!)
            return (v[0], v[1], v[3], v[2])
        }
        var frameIndex = -1, vertices = 0
        for element in elements where element.name == "path" {
            guard element.attributes["class"] == "series" else {
                if element.attributes["class"] == nil { frameIndex += 1 }
                continue
            }
            let (left, top, right, bottom) = frames[frameIndex]
            var pen = (0.0, 0.0)
            let d = element.attributes["d"]!
            let commands = try! NSRegularExpression(pattern: #"([Ml])(-?[0-9.]+),?(-?[0-9.]+)"#)
            for match in commands.matches(in: d, range: NSRange(d.startIndex..., in: d)) {
                let part = { (i: Int) in String(d[Range(match.range(at: i), in: d)!]) }
                let (x, y) = (Double(part(2))!, Double(part(3))!)
                pen = part(1) == "M" ? (x, y) : (pen.0 + x, pen.1 + y)
                vertices += 1
                XCTAssert(pen.0 >= left - 0.2 && pen.0 <= right + 0.2 && pen.1 >= top - 0.2 && pen.1 <= bottom + 0.2,
                          "vertex \(pen) outside the plot \((left, top, right, bottom))", file: file, line: line)
            }
        }
        XCTAssertGreaterThan(vertices, 2 * series.count, file: file, line: line)
    }

    /// Coordinates are finite and written with at most one decimal.
    func assertCoordinatesRounded(file: StaticString = #filePath, line: UInt = #line) {
        for element in elements {
            for key in ["x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "d"] {
                guard let value = element.attributes[key] else { continue }
                for token in value.split(whereSeparator: { "MlVH, ".contains($0) }) {
                    let text = token.hasPrefix("-") ? token.dropFirst() : token[...]
                    for number in text.split(separator: "-") {
                        XCTAssertNotNil(Double(number), "\(key)=\(value)", file: file, line: line)
                        XCTAssertLessThanOrEqual(number.split(separator: ".").dropFirst().first?.count ?? 0, 1,
                                                 "\(key)=\(value)", file: file, line: line)
                    }
                }
            }
        }
    }

    private func numbers(_ d: String) -> [Double] {
        d.split(whereSeparator: { "MVH,".contains($0) }).map { Double($0)! }
    }
}
