import ArgumentParser
import Foundation
import Synchronization
import Training
import Workflows

/// All of fleet's terminal output goes through here (libraries never print).
enum Console {
    static func out(_ line: String) { outBytes(Array(line.utf8)) }

    /// Raw bytes (generated text need not be valid UTF-8), then a newline.
    static func outBytes(_ bytes: [UInt8]) {
        // Not FileHandle.write, which traps when the output's disk is full; say so once instead.
        let failure = (bytes + [UInt8(ascii: "\n")]).withUnsafeBytes { FileOutput.write($0, to: STDOUT_FILENO) }
        if let failure, failure != EPIPE, !stdoutFailed.exchange() {
            err("fleet: warning: standard output: \(String(cString: strerror(failure))); what fleet prints from here on is lost")
        }
    }

    /// A transient status line on a terminal (overwritten by the next); nothing when piped.
    static func progress(_ line: String) {
        guard isatty(STDERR_FILENO) != 0 else { return }
        raw("\r\u{1B}[K" + line, to: STDERR_FILENO)
    }

    static func err(_ line: String) { raw(line + "\n", to: STDERR_FILENO) }

    private static func raw(_ text: String, to fd: Int32) {
        _ = Array(text.utf8).withUnsafeBytes { FileOutput.write($0, to: fd) }
    }

    private static let stdoutFailed = OnceFlag()

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

/// A flag set once; `exchange()` sets it and says whether it was already set.
final class OnceFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func exchange() -> Bool { value.exchange(true, ordering: .relaxed) }
}
