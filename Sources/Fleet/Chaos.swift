import ArgumentParser
import Collectives
import FaultInjection
import Foundation
import Parallelism
import Workflows

struct Chaos: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A fault campaign: a fault-free reference, then runs with random faults that must all recover bit for bit.",
        discussion: """
        Each run trains in deterministic mode with checkpoints, message checksums, replica comparison and restarts, and
        one random fault (crash, hang, NaN, bit flip, drop, corrupt, failed or torn checkpoint write, straggler, delay).
        A run passes when its final parameters are bitwise the reference's and every complete checkpoint verifies.
        What happened in each run is read from its event channel (run-N/events.jsonl).
        With --layouts and --transports, runs take the layouts and transports in turn; every layout is
        bitwise one process's run in deterministic mode, so one fault-free reference serves them all.
          fleet chaos gpt-tiny --dp 2 --pp 2 --runs 20 --seed 7
          fleet chaos gpt-tiny --layouts dp2,tp2,pp2,dp2pp2 --transports zmq,mpi --runs 100 --steps 10
        Network faults, on test hosts (scripts/test-hosts.sh up 2, then eval "$(scripts/test-hosts.sh env)" and
        FLEET_LAUNCH_AGENT="scripts/test-hosts.sh rsh"): each run spreads its ranks over --hosts and, from a drawn step,
        one host's link is cut for 2–8 s (link), drops 20–50 % of its TCP packets for 3–6 s (loss; needs nft on the
        hosts), is held to 10–50 Mbit/s for 3–6 s (slow-link) or delays every frame by 20 ms–5 s for 3–6 s (delay).
          fleet chaos gpt-tiny --dp 2 --hosts 198.18.0.1:1,198.18.0.2:1 --network-faults --runs 4
          fleet chaos gpt-tiny --dp 2 --hosts 198.18.0.1:1,198.18.0.2:1 --network-faults --network-kinds loss --runs 2
        """)

    @Argument(help: "Model to train.")
    var model: String = "gpt-tiny"

    @OptionGroup var layoutOptions: LayoutOptions

    @Option(help: "Faulty runs.")
    var runs: Int = 10

    @Option(help: "Seed of the fault draws.")
    var seed: UInt64 = 7

    @Option(help: "Steps per run.")
    var steps: Int = 20

    @Option(help: "Fault kinds to draw from, comma-separated.")
    var kinds: String = "crash,hang,nan,bitflip,drop,corrupt,duplicate,checkpoint,slow,delay"

    @Option(help: "Layouts the runs take in turn, comma-separated (e.g. dp2,tp2,pp2,dp2pp2); default: the layout flags.")
    var layouts: String?

    @Option(help: "Transports the runs take in turn: zmq (self-launched workers), mpi (mpirun under fleet supervise).")
    var transports: String = "zmq"

    @Option(help: "Spread each run's ranks over these hosts (A:N,B:N), self-launched through FLEET_LAUNCH_AGENT.")
    var hosts: String?

    @Flag(help: "Break a host's link in every run instead of injecting a fault (test hosts only: FLEET_TEST_HOSTS must list every --hosts address).")
    var networkFaults = false

    @Option(help: "Network fault kinds to draw from with --network-faults: link (cut), loss (dropped packets), slow-link (rate-limited), delay (added latency).")
    var networkKinds: String = "link,loss,slow-link,delay"

    @Option(help: "Directory for the runs (kept for inspection).")
    var dir: String?

    @Flag(help: "One JSON object per run, then a summary object.")
    var json = false

    func validate() throws {
        guard (1...100_000).contains(runs) else { throw ValidationError("--runs must be between 1 and 100,000") }
        for name in layouts?.split(separator: ",") ?? [] {
            do { _ = try LayoutName.parse(String(name)) } catch { throw ValidationError("--layouts: \(error)") }
        }
        guard steps >= 8 else { throw ValidationError("--steps must be at least 8") }
        for name in kinds.split(separator: ",") where Fault.Kind(rawValue: String(name)) == nil {
            throw ValidationError("unknown fault kind '\(name)' in --kinds")
        }
        if let hosts {
            guard transports == "zmq" else { throw ValidationError("--hosts spreads self-launched ZeroMQ workers: use --transports zmq") }
            let list: LaunchHosts
            do { list = try LaunchHosts(list: hosts) } catch { throw ValidationError("--hosts: \(error)") }
            if networkFaults && !LinkFault.allowed(list) {
                throw ValidationError("--network-faults cuts links only between test hosts: FLEET_TEST_HOSTS (from scripts/test-hosts.sh env) must list every --hosts address")
            }
        } else if networkFaults {
            throw ValidationError("--network-faults needs --hosts: the runs' ranks spread over test hosts whose links are cut")
        }
        for name in networkKinds.split(separator: ",") where !ChaosCampaign.networkKinds.contains(String(name)) {
            throw ValidationError("unknown network fault kind '\(name)' in --network-kinds; choose from \(ChaosCampaign.networkKinds.joined(separator: ", "))")
        }
    }

    func run() throws {
        try Console.reportingErrors {
            let chosen = try layouts.map { try $0.split(separator: ",").map { try LayoutName.parse(String($0)) } } ?? [layoutOptions.layout]
            var campaign = try ChaosCampaign(model: model, layouts: chosen, transports: transports.split(separator: ",").map(String.init),
                                             steps: steps, seed: seed, kinds: kinds.split(separator: ",").compactMap { Fault.Kind(rawValue: String($0)) },
                                             directory: try dir ?? RunDirectory.create("chaos"))
            campaign.hosts = try hosts.map(LaunchHosts.init(list:))
            campaign.networkFaults = networkFaults
            campaign.networkKinds = networkKinds.split(separator: ",").map(String.init)
            if networkFaults { try campaign.checkNetworkTools() }
            let say: (String) -> Void = json ? Console.err : Console.out
            say("fleet chaos \(model) over \(chosen.map(\.description).joined(separator: ", ")), \(campaign.transports.joined(separator: " and ")), "
                + "\(runs) runs, seed \(seed); runs in \(campaign.directory)")
            let reference = try campaign.reference()
            if !json { Console.out(ChaosOutcome.table.header()) }
            var outcomes: [ChaosOutcome] = []
            for (index, plan) in campaign.plans(runs).enumerated() {
                let o = try campaign.run(index + 1, plan, reference: reference)
                outcomes.append(o)
                if json { Console.json(o.record) } else { Console.out(ChaosOutcome.table.row(o.cells)) }
                if !o.recovered { Console.err("run \(o.run) (\(o.fault), \(o.layout) over \(o.transport)) did not recover: \(o.stderr)") }
                if !o.faultMade {
                    Console.err("run \(o.run): \(o.fault) could not be made (its commands or relay failed; try them by hand with scripts/test-hosts.sh rsh or detour): the run was never faulted")
                }
            }
            let summary = ChaosSummary(outcomes)
            if json { Console.json(summary.record) } else { Console.out(""); summary.lines.forEach(Console.out) }
            if summary.passed < outcomes.count { throw ExitCode(ExitStatus.verdict) }
        }
    }
}
