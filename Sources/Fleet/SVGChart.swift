import Foundation

/// Small self-contained SVG charts (no dependencies), for plots a user opens in a browser.
enum SVGChart {
    /// A vertical bar per labelled value, with the value above it.
    static func bars(title: String, unit: String, _ bars: [(label: String, value: Double)]) -> String {
        let width = max(480, 70 * bars.count + 120), height = 360, left = 80, bottom = 300, top = 50
        let largest = max(bars.map(\.value).max() ?? 1, 1e-12)
        let slot = Double(width - left - 20) / Double(max(bars.count, 1))
        func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"11\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"\(width / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(bottom)\" x2=\"\(width - 10)\" y2=\"\(bottom)\" stroke=\"black\"/>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(bottom)\" stroke=\"black\"/>\n"
        for tick in 0...4 {
            let value = largest * Double(tick) / 4, y = Double(bottom) - Double(bottom - top) * Double(tick) / 4
            svg += String(format: "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", left - 6, y + 4, compact(value))
        }
        svg += "<text x=\"16\" y=\"\((top + bottom) / 2)\" transform=\"rotate(-90 16 \((top + bottom) / 2))\" text-anchor=\"middle\">\(escape(unit))</text>\n"
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

    private static func compact(_ value: Double) -> String {
        if value >= 1e6 { return String(format: "%.2fM", value / 1e6) }
        if value >= 1e3 { return String(format: "%.1fk", value / 1e3) }
        return String(format: "%.2f", value)
    }
}
