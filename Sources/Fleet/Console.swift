import Foundation
import Training
import ArgumentParser

/// All of fleet's terminal output goes through here (libraries never print).
enum Console {
    static func out(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// Raw bytes (generated text need not be valid UTF-8), then a newline.
    static func outBytes(_ bytes: [UInt8]) {
        FileHandle.standardOutput.write(Data(bytes + [UInt8(ascii: "\n")]))
    }

    /// A transient status line on a terminal (overwritten by the next); nothing when piped.
    static func progress(_ line: String) {
        guard isatty(STDERR_FILENO) != 0 else { return }
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
    }

    static func err(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// One JSON object per line, keys in a stable order.
    static func json(_ fields: KeyValuePairs<String, Any>) {
        json(fields.map { ($0.key, $0.value) })
    }

    static func json(_ fields: [(String, Any)]) {
        out(jsonLine(fields))
    }

    static func jsonLine(_ fields: [(String, Any)]) -> String {
        "{" + fields.map { key, value in "\"\(key)\":\(encode(value))" }.joined(separator: ",") + "}"
    }

    private static func encode(_ value: Any) -> String {
        switch value {
        case let s as String:
            let escaped = s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
            return "\"\(escaped)\""
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return "\(i)"
        case let d as Double: return d.isFinite ? "\(d)" : "null"
        case let f as Float: return f.isFinite ? "\(f)" : "null"
        case let a as [Double]: return "[" + a.map { encode($0) }.joined(separator: ",") + "]"
        case let a as [String]: return "[" + a.map { encode($0) }.joined(separator: ",") + "]"
        case let objects as [[(String, Any)]]: return "[" + objects.map { jsonLine($0) }.joined(separator: ",") + "]"
        default: return "\"\(value)\""
        }
    }

    /// Runs `body`; an error is printed with its hint (and the rank, in a multi-rank run) and becomes exit code 1.
    static func reportingErrors(rank: Int? = nil, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as ExitCode {
            throw error
        } catch let error as CleanExit {
            throw error
        } catch let error as ValidationError where rank == nil {
            throw error
        } catch {
            // In a worker, every message goes out as one write: ranks share the terminal.
            // A file system error is one line (path and cause), never Foundation's dump.
            err("fleet: error\(rank.map { " on rank \($0)" } ?? ""): \(FileProblem.describe(error) ?? "\(error)")")
            throw ExitCode(1)
        }
    }
}

/// Fixed-width table rows for terminal output.
struct Table {
    let columns: [(title: String, width: Int)]

    func header() -> String { row(columns.map(\.title)) }

    func row(_ cells: [String]) -> String {
        zip(columns, cells).map { column, cell in
            String(repeating: " ", count: max(0, column.width - cell.count)) + cell
        }.joined(separator: "  ")
    }
}

/// A user-facing failure: the message says what is wrong and what to do.
struct FleetError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
