import Foundation

/// Small self-contained SVG charts (no dependencies), for plots a user opens in a browser.
public enum SVGChart {
    /// A vertical bar per labelled value, with the value above it.
    public static func bars(title: String, unit: String, _ bars: [(label: String, value: Double)]) -> String {
        // Labels are rotated 35° and end under their bar: make room below and, for the first
        // bars, to the left, so every label stays inside the canvas.
        let labelWidth = bars.map { textWidth($0.label) }.max() ?? 0
        let slotGuess = 70.0
        let left = max(80, Int(labelWidth * cos(35 * Double.pi / 180) - slotGuess / 2) + 12)
        let drop = Int(labelWidth * sin(35 * Double.pi / 180)) + 24
        let bottom = 300, top = 50, height = bottom + drop
        let width = max(480, 70 * bars.count + left + 40)
        let largest = max(bars.map(\.value).max() ?? 1, 1e-12)
        let slot = Double(width - left - 20) / Double(max(bars.count, 1))
        var svg = frame(width: width, height: height, left: left, top: top, bottom: bottom, title: title, unit: unit, largest: largest, grid: false)
        for (i, bar) in bars.enumerated() {
            let x = Double(left) + slot * Double(i) + slot * 0.15, w = slot * 0.7
            let h = Double(bottom - top) * bar.value / largest
            let color = bar.value > 0 ? "#4878a8" : "#cccccc"
            svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"/>\n", x, Double(bottom) - h, w, max(h, 1), color)
            svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", x + w / 2, Double(bottom) - h - 4,
                          bar.value > 0 ? compact(bar.value) : "does not run")
            svg += String(format: "<text x=\"%.1f\" y=\"%d\" text-anchor=\"end\" transform=\"rotate(-35 %.1f %d)\">%@</text>\n",
                          x + w / 2, bottom + 14, x + w / 2, bottom + 14, escape(bar.label))
        }
        return svg + "</svg>\n"
    }

    /// One line per series over categorical labels (points marked, a legend at the top);
    /// with `logarithmic`, the value axis is in decades (for times spanning orders of magnitude).
    public static func lines(title: String, unit: String, labels: [String], series: [(name: String, color: String, values: [Double])],
                             logarithmic: Bool = false) -> String {
        let legend = series.reduce(20.0) { $0 + textWidth($1.name) + 40 }
        let width = max(520, 80 * labels.count + 120, Int(legend) + 100), height = 380, left = 80, bottom = 310, top = 60
        let finite = series.flatMap(\.values).filter { $0.isFinite && (!logarithmic || $0 > 0) }
        let largest = max(finite.max() ?? 1, 1e-12) * 1.1
        let decades = logarithmic ? (low: floor(log10(finite.min() ?? 1)), high: ceil(log10(finite.max() ?? 10))) : (low: 0, high: 1)
        let span = max(decades.high - decades.low, 1)
        let slot = Double(width - left - 20) / Double(max(labels.count, 1))
        func x(_ i: Int) -> Double { Double(left) + slot * (Double(i) + 0.5) }
        func y(_ v: Double) -> Double {
            logarithmic ? Double(bottom) - Double(bottom - top) * (log10(v) - decades.low) / span : Double(bottom) - Double(bottom - top) * v / largest
        }
        var svg = frame(width: width, height: height, left: left, top: top, bottom: bottom, title: title, unit: unit, largest: largest, grid: true,
                        decades: logarithmic ? (Int(decades.low), Int(decades.low + span)) : nil)
        for (i, label) in labels.enumerated() {
            svg += String(format: "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%@</text>\n", x(i), bottom + 16, escape(label))
        }
        for (k, line) in series.enumerated() {
            let points = line.values.enumerated().filter { $0.element.isFinite && (!logarithmic || $0.element > 0) }.map { String(format: "%.1f,%.1f", x($0.offset), y($0.element)) }
            svg += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"2\" points=\"\(points.joined(separator: " "))\"/>\n"
            for (i, v) in line.values.enumerated() where v.isFinite && (!logarithmic || v > 0) {
                svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%@\"><title>%@ %@: %@</title></circle>\n",
                              x(i), y(v), line.color, escape(line.name), escape(labels[i]), compact(v))
            }
            let lx = left + 10 + Int(series.prefix(k).reduce(0.0) { $0 + textWidth($1.name) + 40 })
            svg += "<rect x=\"\(lx)\" y=\"36\" width=\"14\" height=\"4\" fill=\"\(line.color)\"/>\n"
            svg += "<text x=\"\(lx + 20)\" y=\"42\">\(escape(line.name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// The canvas, title, axes, five value ticks (with grid lines when `grid`) and the unit.
    private static func frame(width: Int, height: Int, left: Int, top: Int, bottom: Int, title: String, unit: String,
                              largest: Double, grid: Bool, decades: (low: Int, high: Int)? = nil) -> String {
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"11\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"\(width / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(bottom)\" x2=\"\(width - 10)\" y2=\"\(bottom)\" stroke=\"black\"/>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(bottom)\" stroke=\"black\"/>\n"
        let ticks = decades.map { $0.high - $0.low } ?? 4
        for tick in 0...ticks {
            let value = decades.map { pow(10, Double($0.low + tick)) } ?? largest * Double(tick) / 4
            let y = Double(bottom) - Double(bottom - top) * Double(tick) / Double(ticks)
            svg += String(format: "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", left - 6, y + 4, compact(value))
            if grid { svg += String(format: "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eeeeee\"/>\n", left + 1, y, width - 10, y) }
        }
        svg += "<text x=\"16\" y=\"\((top + bottom) / 2)\" transform=\"rotate(-90 16 \((top + bottom) / 2))\" text-anchor=\"middle\">\(escape(unit))</text>\n"
        return svg
    }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// Roughly how wide `text` renders at the charts' 11 px sans-serif.
    public static func textWidth(_ text: String) -> Double { Double(text.count) * 6.4 }

    private static func compact(_ value: Double) -> String {
        if value > 0 && value < 0.01 { return String(format: "%.0e", value) }
        if value >= 1e6 { return String(format: "%.2fM", value / 1e6) }
        if value >= 1e3 { return String(format: "%.1fk", value / 1e3) }
        return String(format: "%.2f", value)
    }
}
