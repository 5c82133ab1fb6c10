import Foundation

/// A line chart as a self-contained SVG document, drawn for people to read: round 1-2-5 ticks, a
/// light grid, the legend right of the plot area where it cannot hide a line, and a y range that
/// a diverged run cannot flatten (its spike leaves the plot area instead).
public struct LineChart: Sendable {
    public struct Series: Sendable {
        public var label: String
        /// Any CSS color; nil takes `LineChart.categorical` by the series' position.
        public var color: String?
        /// Non-finite coordinates are skipped and break the line.
        public var points: [(x: Double, y: Double)]
        /// Circles on the points, for sparse series such as periodic evaluations.
        public var markers: Bool

        public init(label: String, color: String? = nil, points: [(x: Double, y: Double)], markers: Bool = false) {
            self.label = label
            self.color = color
            self.points = points
            self.markers = markers
        }
    }

    public enum Legend: Sendable {
        /// A swatch and label per series.
        case entries
        /// A bar of the series' colors labeled with the first and last series: for many series on
        /// a sequential palette, where a row each would run off the chart.
        case colorScale
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var legend: Legend
    /// Upper bound of the automatic y range (e.g. 8.5 bits/byte, a little above a uniform guess),
    /// for when diverged points are too many for the percentile cap.
    public var yCeiling: Double?

    public init(title: String, xLabel: String, yLabel: String, series: [Series], legend: Legend = .entries,
                yCeiling: Double? = nil) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.legend = legend
        self.yCeiling = yCeiling
    }

    /// Tableau 10: distinct hues of similar weight, legible on white.
    public static let categorical = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                     "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]

    /// `count` colors from light to dark (ColorBrewer YlGnBu without its palest third, which
    /// vanishes on white); hue changes along the way keep neighbours apart.
    public static func sequential(_ count: Int) -> [String] {
        let stops: [(Double, Double, Double)] = [(255, 255, 217), (237, 248, 177), (199, 233, 180), (127, 205, 187),
                                                 (65, 182, 196), (29, 145, 192), (34, 94, 168), (37, 52, 148), (8, 29, 88)]
        return (0..<count).map { i in
            let t = 0.3 + 0.7 * (count == 1 ? 1 : Double(i) / Double(count - 1))
            let position = t * Double(stops.count - 1)
            let k = min(Int(position), stops.count - 2), f = position - Double(k)
            let (a, b) = (stops[k], stops[k + 1])
            func mix(_ u: Double, _ v: Double) -> Int { Int((u + (v - u) * f).rounded()) }
            return String(format: "#%02x%02x%02x", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
        }
    }

    /// Ticks at multiples of 1, 2 or 5 × 10^k covering [lower, upper], about `count` intervals
    /// apart; the first is ≤ lower and the last ≥ upper, so they can serve as the axis ends.
    public static func niceTicks(from lower: Double, to upper: Double, count: Int) -> [Double] {
        var lo = min(lower, upper), hi = max(lower, upper)
        // A flat series still needs an axis; variations below a millionth would need unreadable labels.
        if hi - lo <= max(abs(lo), abs(hi)) * 1e-6 {
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            lo -= pad
            hi += pad
        }
        let intervals = Double(max(count, 1))
        let exponent = Int(log10((hi - lo) / intervals).rounded(.down))
        let multiplier = [1, 2, 5, 10].min { a, b in
            abs((hi - lo) / (Double(a) * pow(10, Double(exponent))) - intervals)
                < abs((hi - lo) / (Double(b) * pow(10, Double(exponent))) - intervals)
        }!
        // Dividing by a power of ten rounds correctly where multiplying by its inverse does not:
        // 6 / 10 is 0.6, 6 × 0.1 is 0.6000000000000001.
        func tick(_ k: Int) -> Double {
            exponent >= 0 ? Double(k * multiplier) * pow(10, Double(exponent)) : Double(k * multiplier) / pow(10, Double(-exponent))
        }
        let step = tick(1)
        // The slack keeps 0.6 / 0.1 = 5.999… from adding a tick below an exact multiple.
        let first = Int((lo / step + 1e-9).rounded(.down)), last = Int((hi / step - 1e-9).rounded(.up))
        return (first...last).map(tick)
    }

    /// One chart; taller than `height` when its legend needs the room.
    public func svg(width: Double = 800, height: Double = 420) -> String {
        let height = max(height, minimumHeight(panel: false))
        let left = leftMargin(height: height, panel: false)
        let body = render(top: 0, width: width, height: height, panel: false, xDomain: xExtent ?? 0...1,
                          left: left, legendWidth: legendWidth)
        return Self.document(width: width, height: height, title: title, body: body)
    }

    /// Charts stacked as small multiples under a common title. The panels share the x range and
    /// the margins, so a step lines up across all of them; each keeps its own y range.
    public static func svg(stacking panels: [LineChart], title: String, width: Double = 800,
                           panelHeight: Double = 260) -> String {
        let extents = panels.compactMap(\.xExtent)
        let xDomain = extents.isEmpty ? 0...1 : extents.map(\.lowerBound).min()!...extents.map(\.upperBound).max()!
        let heights = panels.map { max(panelHeight, $0.minimumHeight(panel: true)) }
        let left = zip(panels, heights).map { $0.leftMargin(height: $1, panel: true) }.max() ?? 0
        let legendWidth = panels.map(\.legendWidth).max() ?? 0
        var body = text(title, x: width / 2, y: 24, size: Style.titleSize, attributes: #"font-weight="bold" text-anchor="middle""#)
        var top = Style.documentTitle
        for (panel, height) in zip(panels, heights) {
            body += panel.render(top: top, width: width, height: height, panel: true, xDomain: xDomain,
                                 left: left, legendWidth: legendWidth)
            top += height
        }
        return document(width: width, height: top, title: title, body: body)
    }
}

// MARK: Layout

private enum Style {
    static let font = "'Helvetica Neue', Helvetica, Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"
    static let titleSize = 16.0, panelTitleSize = 13.0, textSize = 12.0
    static let documentTitle = 36.0, titleBlock = 34.0, bottomMargin = 46.0
    static let legendGap = 18.0, swatch = 22.0, rowHeight = 18.0
    static let maxLabelCharacters = 48
    static let grid = "#e6e6e6", axis = "#666", ink = "#333"

    /// Glyph metrics are the viewer's; 0.6 em per character errs wide for sans-serif text.
    static func width(_ text: String, size: Double = textSize) -> Double { Double(text.count) * size * 0.6 }
}

private extension LineChart {
    func titleHeight(panel: Bool) -> Double { panel ? 28 : Style.titleBlock }

    var xExtent: ClosedRange<Double>? {
        let xs = series.flatMap { $0.points.filter { $0.x.isFinite && $0.y.isFinite }.map(\.x) }
        guard let lo = xs.min(), let hi = xs.max() else { return nil }
        return lo...hi
    }

    /// The finite data's range with both ends pulled in to the 2nd/98th percentile plus a tenth
    /// of the spread between them: a handful of diverged points must not decide the scale.
    var yExtent: (Double, Double) {
        let ys = series.flatMap { $0.points.filter { $0.x.isFinite && $0.y.isFinite }.map(\.y) }.sorted()
        guard let lo = ys.first, let hi = ys.last else { return (0, 1) }
        func quantile(_ q: Double) -> Double {
            let position = q * Double(ys.count - 1), k = Int(position)
            return k + 1 < ys.count ? ys[k] + (ys[k + 1] - ys[k]) * (position - Double(k)) : ys[k]
        }
        let (q02, q98) = (quantile(0.02), quantile(0.98))
        let bottom = max(lo, q02 - 0.1 * (q98 - q02))
        var top = min(hi, q98 + 0.1 * (q98 - q02))
        if let yCeiling, yCeiling > bottom { top = min(top, yCeiling) }
        return (bottom, top)
    }

    func plotHeight(height: Double, panel: Bool) -> Double { height - titleHeight(panel: panel) - Style.bottomMargin }

    func yTicks(height: Double, panel: Bool) -> [Double] {
        let (lo, hi) = yExtent
        return Self.niceTicks(from: lo, to: hi, count: max(2, Int(plotHeight(height: height, panel: panel) / 45)))
    }

    func leftMargin(height: Double, panel: Bool) -> Double {
        let ticks = yTicks(height: height, panel: panel)
        let widest = ticks.map { Style.width(Self.tickLabel($0, ticks: ticks)) }.max() ?? 0
        return 30 + widest + 8
    }

    /// Long labels lose their middle: run names that share a prefix tend to differ at the end.
    var legendLabels: [String] {
        series.map { series in
            let label = series.label.count > Style.maxLabelCharacters
                ? String(series.label.prefix(Style.maxLabelCharacters / 2 - 1)) + "…" + String(series.label.suffix(Style.maxLabelCharacters / 2))
                : series.label
            return series.points.contains { $0.x.isFinite && $0.y.isFinite } ? label : label + " (no data)"
        }
    }

    var legendWidth: Double {
        switch legend {
        case .entries:
            return Style.legendGap + Style.swatch + 6 + (legendLabels.map { Style.width($0) }.max() ?? 0) + 10
        case .colorScale:
            let ends = [legendLabels.first, legendLabels.last].compactMap { $0 }
            return Style.legendGap + 14 + 6 + (ends.map { Style.width($0) }.max() ?? 0) + 10
        }
    }

    func minimumHeight(panel: Bool) -> Double {
        let rows = legend == .entries ? Double(series.count) : 0
        return titleHeight(panel: panel) + rows * Style.rowHeight + 8 + Style.bottomMargin
    }

    func color(_ index: Int) -> String { series[index].color ?? Self.categorical[index % Self.categorical.count] }

    /// Beyond the palette colors repeat, so the repeats are dashed to stay distinguishable.
    func dash(_ index: Int) -> String {
        series[index].color == nil && index >= Self.categorical.count ? #" stroke-dasharray="6 3""# : ""
    }

    /// Tick labels with as many decimals as the step needs, and k/M/G for long round numbers.
    static func tickLabel(_ value: Double, ticks: [Double]) -> String {
        let step = ticks.count > 1 ? ticks[1] - ticks[0] : 1
        let largest = ticks.map(abs).max() ?? 0
        let (scale, suffix) = [(1e9, "G"), (1e6, "M"), (1e3, "k")].first { step >= $0.0 && largest >= 10 * $0.0 } ?? (1, "")
        let decimals = max(0, Int((-log10(step / scale) - 1e-9).rounded(.up)))
        if abs(value) < step * 1e-6 { return "0" }
        return String(format: "%.\(decimals)f", value / scale) + suffix
    }

    func render(top: Double, width: Double, height: Double, panel: Bool, xDomain: ClosedRange<Double>,
                left: Double, legendWidth: Double) -> String {
        let plot = Rect(minX: left, minY: top + titleHeight(panel: panel), maxX: width - legendWidth,
                        maxY: top + height - Style.bottomMargin)
        let yTicks = yTicks(height: height, panel: panel)
        // Fewer x ticks until the widest label fits its slot.
        var xTicks: [Double] = []
        for count in stride(from: max(2, Int(plot.width / 80)), through: 1, by: -1) {
            xTicks = Self.niceTicks(from: xDomain.lowerBound, to: xDomain.upperBound, count: count)
            let widest = xTicks.map { Style.width(Self.tickLabel($0, ticks: xTicks)) }.max()!
            if widest + 12 <= plot.width / Double(xTicks.count - 1) { break }
        }
        let (x0, x1, y0, y1) = (xTicks.first!, xTicks.last!, yTicks.first!, yTicks.last!)
        // Pixels clamped far outside the plot: finite for any finite data, and clipping moves
        // the visible part of a segment by a negligible fraction of a pixel.
        func project(_ p: (x: Double, y: Double)) -> Point {
            Point(x: min(max(plot.minX + (p.x - x0) / (x1 - x0) * plot.width, -1e7), 1e7),
                  y: min(max(plot.maxY - (p.y - y0) / (y1 - y0) * plot.height, -1e7), 1e7))
        }

        var s = Self.text(title, x: (plot.minX + plot.maxX) / 2, y: top + (panel ? 18 : 22),
                          size: panel ? Style.panelTitleSize : Style.titleSize, attributes: #"font-weight="bold" text-anchor="middle""#)
        s += #"<g stroke="\#(Style.grid)" shape-rendering="crispEdges">"#
        for t in xTicks { let x = n(project((t, y0)).x); s += #"<line x1="\#(x)" y1="\#(n(plot.minY))" x2="\#(x)" y2="\#(n(plot.maxY))"/>"# }
        for t in yTicks { let y = n(project((x0, t)).y); s += #"<line x1="\#(n(plot.minX))" y1="\#(y)" x2="\#(n(plot.maxX))" y2="\#(y)"/>"# }
        s += "</g>\n"
        s += #"<path d="M\#(n(plot.minX)),\#(n(plot.minY))V\#(n(plot.maxY))H\#(n(plot.maxX))" fill="none" stroke="\#(Style.axis)" shape-rendering="crispEdges"/>"# + "\n"
        for t in xTicks {
            s += Self.text(Self.tickLabel(t, ticks: xTicks), x: project((t, y0)).x, y: plot.maxY + 17,
                           attributes: #"class="xtick" text-anchor="middle""#)
        }
        for t in yTicks {
            s += Self.text(Self.tickLabel(t, ticks: yTicks), x: plot.minX - 6, y: project((x0, t)).y + 4,
                           attributes: #"class="ytick" text-anchor="end""#)
        }
        s += Self.text(xLabel, x: (plot.minX + plot.maxX) / 2, y: plot.maxY + 36, attributes: #"text-anchor="middle""#)
        let yMid = n((plot.minY + plot.maxY) / 2)
        s += Self.text(yLabel, x: 16, y: (plot.minY + plot.maxY) / 2,
                       attributes: #"text-anchor="middle" transform="rotate(-90 16 \#(yMid))""#)

        for (i, series) in series.enumerated() {
            let (path, lone) = trace(series.points.map(project), in: plot)
            if !path.isEmpty {
                s += #"<path class="series" d="\#(path)" fill="none" stroke="\#(color(i))" stroke-width="1.8" stroke-linejoin="round" stroke-linecap="round"\#(dash(i))/>"# + "\n"
            }
            let dots = series.markers ? series.points.map(project).filter(plot.contains) : lone
            if !dots.isEmpty {
                s += #"<g class="markers" fill="\#(color(i))" stroke="white" stroke-width="0.8">"#
                for p in dots { s += #"<circle cx="\#(n(p.x))" cy="\#(n(p.y))" r="3"/>"# }
                s += "</g>\n"
            }
        }

        let lx = plot.maxX + Style.legendGap
        s += #"<g class="legend">"#
        switch legend {
        case .entries:
            for (i, label) in legendLabels.enumerated() {
                let y = plot.minY + 10 + Double(i) * Style.rowHeight
                s += #"<line x1="\#(n(lx))" y1="\#(n(y))" x2="\#(n(lx + Style.swatch))" y2="\#(n(y))" stroke="\#(color(i))" stroke-width="2.5"\#(dash(i))/>"#
                if series[i].markers {
                    s += #"<circle cx="\#(n(lx + Style.swatch / 2))" cy="\#(n(y))" r="3" fill="\#(color(i))" stroke="white" stroke-width="0.8"/>"#
                }
                s += Self.text(label, x: lx + Style.swatch + 6, y: y + 4)
            }
        case .colorScale:
            let barHeight = min(plot.height, 160), row = barHeight / Double(max(series.count, 1))
            for i in series.indices {
                s += #"<rect x="\#(n(lx))" y="\#(n(plot.minY + Double(i) * row))" width="14" height="\#(n(row + 0.5))" fill="\#(color(i))"/>"#
            }
            if let first = legendLabels.first, let last = legendLabels.last {
                s += Self.text(first, x: lx + 20, y: plot.minY + 9)
                s += Self.text(last, x: lx + 20, y: plot.minY + barHeight)
            }
        }
        s += "</g>\n"
        return s
    }

    /// Path data of a series: non-finite points break the line, segments are clipped to the
    /// plot, and a long run is thinned (`thin`, `simplify`) and written in relative steps, so a
    /// 100k-step log costs a few kilobytes. Also returns the visible points with no neighbour to
    /// draw a line to, which only a marker can show.
    func trace(_ points: [Point], in plot: Rect) -> (path: String, lone: [Point]) {
        var runs: [[Point]] = [[]]
        for p in points {
            if p.x.isFinite && p.y.isFinite { runs[runs.count - 1].append(p) } else if !runs[runs.count - 1].isEmpty { runs.append([]) }
        }
        var path = "", pen: Tenths?, lone: [Point] = []
        for run in runs.map({ simplify(thin($0)) }) {
            if run.count == 1, plot.contains(run[0]) { lone.append(run[0]) }
            for (a, b) in zip(run, run.dropFirst()) {
                guard let (ca, cb) = plot.clip(a, b) else { continue }
                let (ta, tb) = (Tenths(ca), Tenths(cb))
                if ta != pen {
                    path += "M\(tenths(ta.x)),\(tenths(ta.y))"
                    pen = ta
                }
                if let from = pen, tb != from {
                    // A minus sign separates the numbers by itself.
                    path += "l\(tenths(tb.x - from.x))\(tb.y < from.y ? "" : ",")\(tenths(tb.y - from.y))"
                    pen = tb
                }
            }
        }
        return (path, lone)
    }

    /// Points sharing a pixel column reduced to the column's first, lowest, highest and last:
    /// the envelope of a noisy run survives at a size bounded by the plot's width.
    func thin(_ run: [Point]) -> [Point] {
        var out: [Point] = []
        var i = 0
        while i < run.count {
            let column = run[i].x.rounded(.down)
            var j = i
            while j + 1 < run.count && run[j + 1].x.rounded(.down) == column { j += 1 }
            if j - i < 4 {
                out += run[i...j]
            } else {
                let low = (i...j).min { run[$0].y < run[$1].y }!, high = (i...j).max { run[$0].y < run[$1].y }!
                out += Set([i, low, high, j]).sorted().map { run[$0] }
            }
            i = j + 1
        }
        return out
    }

    /// Ramer–Douglas–Peucker: drops the points within a quarter pixel of the line through the
    /// points kept around them, which no one can see but which make up most of a smooth curve.
    func simplify(_ run: [Point]) -> [Point] {
        guard run.count > 2 else { return run }
        var keep = [Bool](repeating: false, count: run.count)
        keep[0] = true
        keep[run.count - 1] = true
        var pending = [(0, run.count - 1)]
        while let (i, j) = pending.popLast() {
            let (a, b) = (run[i], run[j])
            let dx = b.x - a.x, dy = b.y - a.y, length = (dx * dx + dy * dy).squareRoot()
            var farthest = (distance: 0.0, index: i)
            for k in i + 1..<j {
                let p = run[k]
                let distance = length == 0 ? ((p.x - a.x) * (p.x - a.x) + (p.y - a.y) * (p.y - a.y)).squareRoot()
                                           : abs(dy * (p.x - a.x) - dx * (p.y - a.y)) / length
                if distance > farthest.distance { farthest = (distance, k) }
            }
            guard farthest.distance > 0.25 else { continue }
            keep[farthest.index] = true
            if farthest.index - i > 1 { pending.append((i, farthest.index)) }
            if j - farthest.index > 1 { pending.append((farthest.index, j)) }
        }
        return run.indices.filter { keep[$0] }.map { run[$0] }
    }

    static func text(_ content: String, x: Double, y: Double, size: Double = Style.textSize, attributes: String = "") -> String {
        let sizeAttribute = size == Style.textSize ? "" : #" font-size="\#(n(size))""#
        return #"<text x="\#(n(x))" y="\#(n(y))"\#(sizeAttribute)\#(attributes.isEmpty ? "" : " " + attributes)>\#(escape(content))</text>"# + "\n"
    }

    static func document(width: Double, height: Double, title: String, body: String) -> String {
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(n(width))" height="\(n(height))" viewBox="0 0 \(n(width)) \(n(height))" font-family="\(Style.font)" font-size="\(n(Style.textSize))" fill="\(Style.ink)">
        <title>\(escape(title))</title>
        <rect width="100%" height="100%" fill="#fff"/>
        \(body)</svg>

        """
    }
}

private struct Point {
    var x: Double
    var y: Double
}

/// A point rounded to tenths of a pixel, the resolution the file is written at.
private struct Tenths: Equatable {
    var x: Int, y: Int
    init(_ p: Point) { (x, y) = (Int((p.x * 10).rounded()), Int((p.y * 10).rounded())) }
}

private struct Rect {
    var minX: Double, minY: Double, maxX: Double, maxY: Double
    var width: Double { maxX - minX }
    var height: Double { maxY - minY }

    func contains(_ p: Point) -> Bool { p.x >= minX && p.x <= maxX && p.y >= minY && p.y <= maxY }

    /// The part of segment ab inside the rectangle (Liang–Barsky), nil when none is.
    func clip(_ a: Point, _ b: Point) -> (Point, Point)? {
        let dx = b.x - a.x, dy = b.y - a.y
        var t0 = 0.0, t1 = 1.0
        for (p, q) in [(-dx, a.x - minX), (dx, maxX - a.x), (-dy, a.y - minY), (dy, maxY - a.y)] {
            if p == 0 {
                if q < 0 { return nil }
                continue
            }
            let r = q / p
            if p < 0 {
                if r > t1 { return nil }
                t0 = max(t0, r)
            } else {
                if r < t0 { return nil }
                t1 = min(t1, r)
            }
        }
        return (Point(x: a.x + t0 * dx, y: a.y + t0 * dy), Point(x: a.x + t1 * dx, y: a.y + t1 * dy))
    }
}

/// Coordinates to one decimal, without a trailing ".0" or a "-0": a tenth of a pixel is below
/// what a screen shows, and it keeps the files small.
private func n(_ v: Double) -> String { tenths(Int((v * 10).rounded())) }

private func tenths(_ t: Int) -> String {
    t % 10 == 0 ? String(t / 10) : (t < 0 ? "-" : "") + "\(abs(t) / 10).\(abs(t) % 10)"
}

private func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}
