import Foundation

/// Turning a series into SVG path data: clipping, thinning and simplifying long runs.
extension LineChart {
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
}

struct Point {
    var x: Double
    var y: Double
}

/// A point rounded to tenths of a pixel, the resolution the file is written at.
struct Tenths: Equatable {
    var x: Int, y: Int
    init(_ p: Point) { (x, y) = (Int((p.x * 10).rounded()), Int((p.y * 10).rounded())) }
}

struct Rect {
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
func n(_ v: Double) -> String { tenths(Int((v * 10).rounded())) }

func tenths(_ t: Int) -> String {
    t % 10 == 0 ? String(t / 10) : (t < 0 ? "-" : "") + "\(abs(t) / 10).\(abs(t) % 10)"
}

func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}
