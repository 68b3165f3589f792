import ArgumentParser
import Collectives
import Foundation

/// Hidden worker command for the test suite: runs the collective conformance checks on
/// a real transport, or provokes one failure (a silent, dead or disagreeing rank).
struct SelfTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest", abstract: "Conformance and failure checks used by fleet's tests.", shouldDisplay: false)

    enum Fault: String, ExpressibleByArgument { case none, silent, crash, mismatch }

    @OptionGroup var workers: WorkerOptions

    @Option(help: "Failure to provoke: none (run the conformance suite), silent, crash, mismatch.")
    var fault: Fault = .none

    @Option(help: "The rank that misbehaves.")
    var faultyRank: Int = 1

    @Option(help: "All-reduce algorithm used in the failure scenarios.")
    var algo: String = "naive"

    func run() throws {
        try Console.reportingErrors {
            guard let transport = try workers.workerTransport() else { return }
            defer { shutDown(transport) }
            try Console.reportingErrors(rank: transport.rank) {
                let world = Communicator(world: transport)
                world.chunkBytes = 4096
                if fault == .none {
                    var suite = CollectiveConformance(communicator: world)
                    let failures = try suite.run()
                    failures.prefix(20).forEach { Console.err($0) }
                    if !failures.isEmpty { throw ExitCode(1) }
                    Console.out("rank \(transport.rank): \(suite.checks) collective checks passed over \(transport.backendName) on \(transport.worldSize) ranks")
                    return
                }
                try provoke(world, transport: transport)
            }
        }
    }

    private func provoke(_ world: Communicator, transport: Transport) throws {
        let algorithm = AllReduceAlgorithm(name: algo) ?? .naive
        var values = [Float](repeating: 1, count: 1000)
        try world.barrier()
        if transport.rank == faultyRank {
            switch fault {
            case .silent:
                Thread.sleep(forTimeInterval: workers.timeout * 4)
                return
            case .crash:
                kill(getpid(), SIGKILL)
            case .mismatch:
                values.append(1)
            case .none:
                break
            }
        }
        try world.allReduce(&values, algorithm: algorithm)
        Console.out("rank \(transport.rank): all-reduce finished")
    }
}
