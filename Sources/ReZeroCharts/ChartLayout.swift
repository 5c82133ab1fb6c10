import Foundation

/// Where everything of a chart goes: margins, ticks, the plot frame, the legend, and the SVG they make.

enum Style {
    static let font = "'Helvetica Neue', Helvetica, Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"
    static let titleSize = 16.0, panelTitleSize = 13.0, textSize = 12.0
    static let documentTitle = 36.0, titleBlock = 34.0, bottomMargin = 46.0
    static let legendGap = 18.0, swatch = 22.0, rowHeight = 18.0
    static let maxLabelCharacters = 48
    static let grid = "#e6e6e6", axis = "#666", ink = "#333"

    /// Glyph metrics are the viewer's; 0.6 em per character errs wide for sans-serif text.
    static func width(_ text: String, size: Double = textSize) -> Double { Double(text.count) * size * 0.6 }
}

extension LineChart {
    func titleHeight(panel: Bool) -> Double { panel ? 28 : Style.titleBlock }

    var xExtent: ClosedRange<Double>? {
        let xs = series.flatMap { $0.points.filter { $0.x.isFinite && $0.y.isFinite }.map(\.x) } + (xTicks ?? []).map(\.value)
        guard let lo = xs.min(), let hi = xs.max() else { return nil }
        return lo...hi
    }

    /// Every finite y the chart shows: the lines' points and their bands' edges.
    var yValues: [Double] {
        series.flatMap { s in
            s.points.filter { $0.x.isFinite && $0.y.isFinite }.map(\.y)
                + s.band.filter(\.x.isFinite).flatMap { [$0.low, $0.high] }.filter(\.isFinite)
        }
    }

    /// The finite data's range with both ends pulled in to the 2nd/98th percentile plus a tenth
    /// of the spread between them: a handful of diverged points must not decide the scale.
    var yExtent: (Double, Double) {
        let ys = yValues.sorted()
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
        let given = self.xTicks.flatMap { $0.count > 1 ? $0 : nil }
        var xTicks = given.map { $0.map(\.value).sorted() } ?? []
        for count in stride(from: max(2, Int(plot.width / 80)), through: 1, by: -1) where given == nil {
            xTicks = Self.niceTicks(from: xDomain.lowerBound, to: xDomain.upperBound, count: count)
            let widest = xTicks.map { Style.width(Self.tickLabel($0, ticks: xTicks)) }.max()!
            if widest + 12 <= plot.width / Double(xTicks.count - 1) { break }
        }
        func xTickLabel(_ t: Double) -> String {
            given?.first { $0.value == t }?.label ?? Self.tickLabel(t, ticks: xTicks)
        }
        let (x0, x1, y0, y1) = (xTicks.first!, xTicks.last!, yTicks.first!, yTicks.last!)
        // Pixels clamped far outside the plot: finite for any finite data, and clipping moves
        // the visible part of a segment by a negligible fraction of a pixel.
        func project(_ p: (x: Double, y: Double)) -> Point {
            Point(x: min(max(plot.minX + (p.x - x0) / (x1 - x0) * plot.width, -1e7), 1e7),
                  y: min(max(plot.maxY - (p.y - y0) / (y1 - y0) * plot.height, -1e7), 1e7))
        }

        // Centered over the plot, but never starting left of the chart's edge.
        let titleSize = panel ? Style.panelTitleSize : Style.titleSize
        let titleX = max((plot.minX + plot.maxX) / 2, Style.width(title, size: titleSize) / 2 + 8)
        var s = Self.text(title, x: titleX, y: top + (panel ? 18 : 22), size: titleSize,
                          attributes: #"font-weight="bold" text-anchor="middle""#)
        s += #"<g stroke="\#(Style.grid)" shape-rendering="crispEdges">"#
        for t in xTicks { let x = n(project((t, y0)).x); s += #"<line x1="\#(x)" y1="\#(n(plot.minY))" x2="\#(x)" y2="\#(n(plot.maxY))"/>"# }
        for t in yTicks { let y = n(project((x0, t)).y); s += #"<line x1="\#(n(plot.minX))" y1="\#(y)" x2="\#(n(plot.maxX))" y2="\#(y)"/>"# }
        s += "</g>\n"
        s += #"<path d="M\#(n(plot.minX)),\#(n(plot.minY))V\#(n(plot.maxY))H\#(n(plot.maxX))" fill="none" stroke="\#(Style.axis)" shape-rendering="crispEdges"/>"# + "\n"
        for t in xTicks {
            s += Self.text(xTickLabel(t), x: project((t, y0)).x, y: plot.maxY + 17,
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

        if series.contains(where: { !$0.band.isEmpty }) {
            let clip = "plot-\(Int(top))"
            s += #"<clipPath id="\#(clip)"><rect x="\#(n(plot.minX))" y="\#(n(plot.minY))" width="\#(n(plot.width))" height="\#(n(plot.height))"/></clipPath>"# + "\n"
            for (i, series) in series.enumerated() {
                // A non-finite entry breaks the band, as one breaks the line.
                let pieces = series.band.split { !($0.x.isFinite && $0.low.isFinite && $0.high.isFinite) }
                for edge in pieces where edge.count > 1 {
                    let outline = edge.map { project(($0.x, $0.high)) } + edge.reversed().map { project(($0.x, $0.low)) }
                    let d = "M" + outline.map { "\(n($0.x)),\(n($0.y))" }.joined(separator: "L") + "Z"
                    s += #"<path class="band" d="\#(d)" fill="\#(color(i))" fill-opacity="0.18" stroke="none" clip-path="url(#\#(clip))"/>"# + "\n"
                }
            }
        }
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
