import Foundation

/// Small self-contained SVG charts (no dependencies), for plots a user opens in a browser.
public enum SVGChart {
    /// A vertical bar per labelled value, with the value above it.
    public static func bars(title: String, unit: String, _ bars: [(label: String, value: Double)]) -> String {
        let width = max(480, 70 * bars.count + 120), height = 360, left = 80, bottom = 300, top = 50
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

    /// One line per series over categorical labels (points marked, a legend at the top).
    public static func lines(title: String, unit: String, labels: [String], series: [(name: String, color: String, values: [Double])]) -> String {
        let width = max(520, 80 * labels.count + 120), height = 380, left = 80, bottom = 310, top = 60
        let largest = max(series.flatMap(\.values).filter(\.isFinite).max() ?? 1, 1e-12) * 1.1
        let slot = Double(width - left - 20) / Double(max(labels.count, 1))
        func x(_ i: Int) -> Double { Double(left) + slot * (Double(i) + 0.5) }
        func y(_ v: Double) -> Double { Double(bottom) - Double(bottom - top) * v / largest }
        var svg = frame(width: width, height: height, left: left, top: top, bottom: bottom, title: title, unit: unit, largest: largest, grid: true)
        for (i, label) in labels.enumerated() {
            svg += String(format: "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%@</text>\n", x(i), bottom + 16, escape(label))
        }
        for (k, line) in series.enumerated() {
            let points = line.values.enumerated().filter { $0.element.isFinite }.map { String(format: "%.1f,%.1f", x($0.offset), y($0.element)) }
            svg += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"2\" points=\"\(points.joined(separator: " "))\"/>\n"
            for (i, v) in line.values.enumerated() where v.isFinite {
                svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%@\"><title>%@ %@: %@</title></circle>\n",
                              x(i), y(v), line.color, escape(line.name), escape(labels[i]), compact(v))
            }
            let lx = left + 10 + 130 * k
            svg += "<rect x=\"\(lx)\" y=\"36\" width=\"14\" height=\"4\" fill=\"\(line.color)\"/>\n"
            svg += "<text x=\"\(lx + 20)\" y=\"42\">\(escape(line.name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// The canvas, title, axes, five value ticks (with grid lines when `grid`) and the unit.
    private static func frame(width: Int, height: Int, left: Int, top: Int, bottom: Int, title: String, unit: String,
                              largest: Double, grid: Bool) -> String {
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"11\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"\(width / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(bottom)\" x2=\"\(width - 10)\" y2=\"\(bottom)\" stroke=\"black\"/>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(bottom)\" stroke=\"black\"/>\n"
        for tick in 0...4 {
            let value = largest * Double(tick) / 4, y = Double(bottom) - Double(bottom - top) * Double(tick) / 4
            svg += String(format: "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", left - 6, y + 4, compact(value))
            if grid { svg += String(format: "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eeeeee\"/>\n", left + 1, y, width - 10, y) }
        }
        svg += "<text x=\"16\" y=\"\((top + bottom) / 2)\" transform=\"rotate(-90 16 \((top + bottom) / 2))\" text-anchor=\"middle\">\(escape(unit))</text>\n"
        return svg
    }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    private static func compact(_ value: Double) -> String {
        if value >= 1e6 { return String(format: "%.2fM", value / 1e6) }
        if value >= 1e3 { return String(format: "%.1fk", value / 1e3) }
        return String(format: "%.2f", value)
    }
}
