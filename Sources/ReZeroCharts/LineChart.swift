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
        /// A shaded range around the line (the spread of several seeds), drawn under it.
        public var band: [(x: Double, low: Double, high: Double)]

        public init(label: String, color: String? = nil, points: [(x: Double, y: Double)], markers: Bool = false,
                    band: [(x: Double, low: Double, high: Double)] = []) {
            self.label = label
            self.color = color
            self.points = points
            self.markers = markers
            self.band = band
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
    /// Ticks to put on the x axis instead of round numbers: for an axis whose x is a transform
    /// of what the labels say (log₂ of the depth, labeled with the depth).
    public var xTicks: [(value: Double, label: String)]?

    public init(title: String, xLabel: String, yLabel: String, series: [Series], legend: Legend = .entries,
                yCeiling: Double? = nil, xTicks: [(value: Double, label: String)]? = nil) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.legend = legend
        self.yCeiling = yCeiling
        self.xTicks = xTicks
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
