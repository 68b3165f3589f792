import ArgumentParser
import Foundation

@main
struct Fleet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "A distributed-training lab: real multi-process GPT training over MPI or ZeroMQ with fleet's own collectives.",
        subcommands: [Train.self, Generate.self, Plan.self, Simulate.self, Calibrate.self, Compare.self, LabCommand.self, Diff.self, CheckpointCommand.self, Supervise.self, Chaos.self, Bench.self, BLASCommand.self, Runs.self, SelfTest.self, Worker.self])

    /// Chooses the BLAS kernel (which may restart the process) before anything else runs.
    static func main() {
        BLASStartup.prepare()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            finish(error)
        }
    }

    /// Exits for `error`; a usage error (a flag the parser or a command's check refused)
    /// exits with `ExitStatus.input`, not ArgumentParser's 64.
    static func finish(_ error: Error) -> Never {
        if exitCode(for: error) == .validationFailure {
            Console.err(fullMessage(for: error))
            Foundation.exit(ExitStatus.input)
        }
        exit(withError: error)
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure fleet's building blocks.",
        subcommands: [BenchCollectives.self, BenchTrain.self, BenchCheckpoint.self, BenchSimulate.self])
}
