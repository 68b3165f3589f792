import ArgumentParser
import Foundation
import Training
import Workflows

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

    static func jsonLine(_ fields: [(String, Any)]) -> String { JSONLine.encode(fields) }

    /// Runs `body`; an error is printed with its hint (and the rank, in a multi-rank run) and
    /// becomes its exit status (`ExitStatus.of`).
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
            throw ExitCode(ExitStatus.of(error))
        }
    }
}


extension ByteSize: ExpressibleByArgument {}
extension SizeList: ExpressibleByArgument {}
