import Dispatch

/// Wall-clock laps, for the step's time split and the console's rates.
struct Clock {
    private var last = DispatchTime.now().uptimeNanoseconds

    /// Seconds since the clock started or since the previous lap.
    mutating func lap() -> Double {
        let now = DispatchTime.now().uptimeNanoseconds
        defer { last = now }
        return Double(now - last) * 1e-9
    }

    /// "42s", "3m07s", "2h05m"; "?" for a duration not yet known.
    static func format(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return "\(s / 3600)h\(pad(s % 3600 / 60))m" }
        if s >= 60 { return "\(s / 60)m\(pad(s % 60))s" }
        return "\(s)s"
    }

    private static func pad(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
