import Foundation
import XCTest

/// Runs across hosts, on test hosts made by scripts/test-hosts.sh (network namespaces of this
/// machine, each with its own stack, hostname and address): ranks on one host talk through
/// shared memory, ranks on different hosts over TCP. Needs root (CI runs as root).
final class MultiHostTests: FleetProcessTestCase {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/test-hosts.sh").path

    /// `scripts/test-hosts.sh ARGUMENTS`, its output and status.
    @discardableResult
    func hosts(_ arguments: [String]) throws -> FleetProcess.Outcome {
        try FleetProcess.run("/bin/bash", [Self.script] + arguments, environment: [:], timeout: 60)
    }

    /// The test hosts' addresses and the environment `env` exports, with `count` hosts up.
    func up(_ count: Int) throws -> (addresses: [String], environment: [String: String]) {
        guard getuid() == 0 else { throw XCTSkip("test hosts need root (network namespaces)") }
        let made = try hosts(["up", "\(count)"])
        if made.status != 0, made.stderr.contains("Operation not permitted") {
            throw XCTSkip("this machine refuses network namespaces: \(made.stderr)")
        }
        XCTAssertEqual(made.status, 0, made.output)
        let addresses = made.stdout.split(separator: "\n").map { String($0.split(separator: " ")[1]) }
        var environment: [String: String] = [:]
        for line in try hosts(["env"]).stdout.split(separator: "\n") where line.hasPrefix("export ") {
            let pair = line.dropFirst("export ".count).split(separator: "=", maxSplits: 1)
            environment[String(pair[0])] = String(pair[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return (addresses, environment)
    }

    override func tearDown() {
        if getuid() == 0 { _ = try? hosts(["down"]) }
        super.tearDown()
    }

    private func losses(_ outcome: FleetProcess.Outcome) throws -> [Double] {
        try outcome.stdout.split(separator: "\n").compactMap {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], String($0))
            return object["step"] != nil ? object["loss"] as? Double : nil
        }
    }

    /// dp2·pp2 with two ranks on each of two hosts, under mpirun: bitwise the one-process run
    /// with --deterministic; two hosts, and of the six rank pairs two on shared memory (each
    /// host's pair) and four over TCP.
    func testMPIRanksOnTwoHostsTrainBitwiseAsOneProcess() throws {
        let (addresses, environment) = try up(2)
        XCTAssertEqual(addresses, ["198.18.0.1", "198.18.0.2"])
        let arguments = ["train", "gpt-tiny", "--deterministic", "--steps", "4", "--json", "--eval-batches", "1"]
        let alone = try FleetProcess.fleet(arguments)
        XCTAssertEqual(alone.status, 0, alone.output)
        let spread = try FleetProcess.run("/usr/bin/mpirun", ["-n", "4", "--host", addresses.map { $0 + ":2" }.joined(separator: ","), FleetProcess.binary]
                                          + arguments + ["--dp", "2", "--pp", "2"],
                                          environment: FleetProcess.mpiEnvironment.merging(environment) { _, new in new }, timeout: 180)
        XCTAssertEqual(spread.status, 0, spread.output)
        XCTAssertEqual(try losses(spread), try losses(alone), "bitwise across hosts")
        XCTAssertEqual(try losses(spread).count, 4)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data((spread.stdout.split(separator: "\n").last ?? "").utf8)) as? [String: Any])
        XCTAssertEqual(summary["hosts"] as? Int, 2, spread.output)
        XCTAssertEqual(summary["transport_paths"] as? [String: Int], ["shm": 2, "tcp": 4], spread.output)
    }

    /// The same over ZeroMQ, self-launched with --hosts through the test hosts' launch agent:
    /// each worker binds its own host's address, and the run is bitwise the one-process run.
    func testZeroMQWorkersOnTwoHostsTrainBitwiseAsOneProcess() throws {
        let (addresses, environment) = try up(2)
        let arguments = ["train", "gpt-tiny", "--deterministic", "--steps", "4", "--json", "--eval-batches", "1"]
        let alone = try FleetProcess.fleet(arguments)
        let agent = ["FLEET_LAUNCH_AGENT": try XCTUnwrap(environment["OMPI_MCA_plm_rsh_agent"])]
        let spread = try FleetProcess.fleet(arguments + ["--dp", "2", "--pp", "2", "--hosts", addresses.map { $0 + ":2" }.joined(separator: ",")],
                                            environment: agent, timeout: 180)
        XCTAssertEqual(spread.status, 0, spread.output)
        XCTAssertEqual(try losses(spread), try losses(alone), "bitwise across hosts")
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data((spread.stdout.split(separator: "\n").last ?? "").utf8)) as? [String: Any])
        XCTAssertEqual(summary["hosts"] as? Int, 2, spread.output)
        XCTAssertEqual(summary["transport_paths"] as? [String: Int], ["shm": 2, "tcp": 4], spread.output)
        // Every worker got the job's key through its agent's standard input: nobody was refused.
        XCTAssertFalse(spread.stderr.contains("refused a connection"), spread.output)
        // A host the agent cannot reach: a clear error naming it, and no worker left behind.
        let stray = try FleetProcess.fleet(["train", "gpt-tiny", "--dp", "2", "--steps", "2", "--hosts", "198.18.0.9:2"], environment: agent)
        XCTAssertNotEqual(stray.status, 0)
        // Both ranks placed there fail at once; whichever the launcher sees first is named.
        XCTAssertTrue(stray.stderr.contains("could not start rank 0 on host 198.18.0.9")
                      || stray.stderr.contains("could not start rank 1 on host 198.18.0.9"), stray.output)
    }

    /// `fleet calibrate --hosts` across two test hosts: the link inside a host (shared memory)
    /// and the network between hosts (TCP) measured apart, one node per host, the machine's cores
    /// shared by both; `fleet compare --hosts` then spreads each layout's ranks over the hosts as
    /// the simulation does (dp2: one rank on each) and refuses to run without them.
    func testCalibrateAndCompareAcrossHosts() throws {
        let (addresses, environment) = try up(2)
        let agent = ["FLEET_LAUNCH_AGENT": try XCTUnwrap(environment["OMPI_MCA_plm_rsh_agent"])]
        let scenario = directory + "/two-hosts.yaml"
        let calibrated = try FleetProcess.fleet(["calibrate", "gpt-tiny", "--hosts", addresses.map { $0 + ":2" }.joined(separator: ","), "--repeats", "1",
                                                 "--transports", "zmq", "--fabric", "zmq", "--layouts", "dp1,dp2", "--out", scenario,
                                                 "--storage-dir", directory], environment: agent, timeout: 300)
        XCTAssertEqual(calibrated.status, 0, calibrated.output)
        XCTAssertTrue(calibrated.stdout.contains("2 ranks on 198.18.0.1:2 (shm)"), calibrated.output)
        XCTAssertTrue(calibrated.stdout.contains("2 ranks on 198.18.0.1:1,198.18.0.2:1 (tcp)"), calibrated.output)
        XCTAssertTrue(calibrated.stdout.contains("--hosts 198.18.0.1,198.18.0.2"), "the next command names the hosts: " + calibrated.stdout)
        let yaml = try String(contentsOfFile: scenario, encoding: .utf8)
        for expected in ["nodes: 2", "cores_shared_by_nodes: true", "ranks on one host (shm)", "ranks on 2 hosts (tcp)"] {
            XCTAssertTrue(yaml.contains(expected), "\(expected) in\n\(yaml)")
        }
        let alone = try FleetProcess.fleet(["compare", "gpt-tiny", "--scenario", scenario, "--layouts", "dp1", "--transport", "zmq",
                                            "--run-dir", directory + "/alone"])
        XCTAssertNotEqual(alone.status, 0)
        XCTAssertTrue(alone.stderr.contains("calibrated across 2 hosts: pass --hosts"), alone.output)
        let runs = directory + "/compare"
        let compared = try FleetProcess.fleet(["compare", "gpt-tiny", "--scenario", scenario, "--hosts", addresses.joined(separator: ","),
                                               "--layouts", "dp1,dp2", "--steps", "4", "--warmup", "1", "--transport", "zmq", "--json", "--run-dir", runs],
                                              environment: agent, timeout: 300)
        XCTAssertEqual(compared.status, 0, compared.output)
        let rows = try compared.stdout.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(rows.compactMap { $0["hosts"] as? String }, ["198.18.0.1:1", "198.18.0.1:1,198.18.0.2:1"])
        for row in rows {
            let measured = try XCTUnwrap(row["measured_step_s"] as? Double), simulated = try XCTUnwrap(row["simulated_step_s"] as? Double)
            XCTAssertTrue(measured.isFinite && measured > 0 && simulated.isFinite && simulated > 0, "\(row)")
        }
        // The dp2 run really crossed: its ranks reported two hosts, talking over TCP.
        let log = try String(contentsOfFile: runs + "/dp2/rank-0.log", encoding: .utf8)
        XCTAssertTrue(log.contains("\"hosts\":2") && log.contains("\"transport_paths\":{\"tcp\":1}"), log)
    }

    /// The collective conformance suite with ranks on two hosts, over MPI and over ZeroMQ:
    /// the hierarchical all-reduce splits by host for real (shared memory inside, TCP between)
    /// and every algorithm still equals naive bit for bit; then dp4 trains with hierarchical
    /// buckets within 1e-5 of one process.
    func testCollectivesAndHierarchicalBucketsAcrossHosts() throws {
        let (addresses, environment) = try up(2)
        let slots = addresses.map { $0 + ":2" }.joined(separator: ",")
        let mpi = try FleetProcess.run("/usr/bin/mpirun", ["-n", "4", "--host", slots, FleetProcess.binary, "selftest", "--timeout", "30"],
                                       environment: FleetProcess.mpiEnvironment.merging(environment) { _, new in new }, timeout: 240)
        XCTAssertEqual(mpi.status, 0, mpi.output)
        XCTAssertEqual(mpi.stdout.components(separatedBy: "collective checks passed over mpi").count - 1, 4, mpi.output)
        let agent = ["FLEET_LAUNCH_AGENT": try XCTUnwrap(environment["OMPI_MCA_plm_rsh_agent"])]
        let zmq = try FleetProcess.fleet(["selftest", "--ranks", "4", "--hosts", slots, "--timeout", "30"], environment: agent, timeout: 240)
        XCTAssertEqual(zmq.status, 0, zmq.output)
        XCTAssertEqual(zmq.stdout.components(separatedBy: "collective checks passed over zmq").count - 1, 4, zmq.output)
        let arguments = ["train", "gpt-tiny", "--steps", "4", "--json", "--eval-batches", "1"]
        let alone = try losses(try FleetProcess.fleet(arguments))
        let hierarchical = try FleetProcess.fleet(arguments + ["--dp", "4", "--dp-algo", "hierarchical", "--hosts", slots], environment: agent, timeout: 180)
        XCTAssertEqual(hierarchical.status, 0, hierarchical.output)
        let spread = try losses(hierarchical)
        XCTAssertEqual(spread.count, alone.count)
        for (a, b) in zip(spread, alone) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    /// A link cut between hosts mid-run: detected within one deadline, naming the rank and the
    /// host it runs on; the supervisor restarts the workers, whose rendezvous waits until the
    /// link is back, and the run ends with the fault-free run's weights, bitwise.
    func testALinkCutBetweenHostsIsNamedAndRecoveredBitwise() throws {
        let (addresses, environment) = try up(2)
        let base = ["train", "gpt-tiny", "--deterministic", "--steps", "30", "--seq", "64", "--dp", "2", "--eval-batches", "1", "--log-every", "1"]
        let reference = try FleetProcess.fleet(base + ["--run-dir", directory + "/reference"])
        XCTAssertEqual(reference.status, 0, reference.output)
        let run = directory + "/cut"
        let agent = ProcessInfo.processInfo.environment.merging(["FLEET_LAUNCH_AGENT": try XCTUnwrap(environment["OMPI_MCA_plm_rsh_agent"])]) { _, new in new }
        func link(_ state: String) throws {
            let outcome = try FleetProcess.run("/usr/sbin/ip", ["-n", "fleet-h2", "link", "set", "eth0", state], environment: [:], timeout: 10)
            XCTAssertEqual(outcome.status, 0, outcome.output)
        }
        let (status, output) = try FleetProcess.interrupted(
            FleetProcess.binary, base + ["--hosts", addresses.map { $0 + ":1" }.joined(separator: ","), "--checkpoint-dir", run + "/ck",
                                         "--checkpoint-every", "5", "--max-restarts", "3", "--timeout", "3", "--run-dir", run + "/run"],
            environment: agent, output: directory + "/cut.log", ready: { $0.contains("step    12/30") },
            act: { _ in
                try link("down")
                // Back after a while: the restarted workers' rendezvous waits for it.
                DispatchQueue.global().asyncAfter(deadline: .now() + 8) { _ = try? FleetProcess.run("/usr/sbin/ip", ["-n", "fleet-h2", "link", "set", "eth0", "up"], environment: [:], timeout: 10) }
            }, stuck: "the run did not recover from the cut link")
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("did not answer within 3.0 s"), output)
        XCTAssertTrue(output.contains("runs on host fleet-h"), output)
        XCTAssertTrue(output.contains("recovered"), output)
        let diff = try FleetProcess.fleet(["diff", directory + "/reference", run + "/run"])
        XCTAssertTrue(diff.stdout.contains("final weights: bitwise identical"), diff.output)
    }

    /// fleet chaos with network faults: every run has a test host's link cut, losing packets,
    /// rate-limited or delayed for a while (seed 3 draws each once, the delay past the deadline),
    /// is detected or rides it out, and recovers bitwise; outside test hosts it refuses.
    func testChaosBreaksLinksBetweenTestHostsAndEveryRunRecovers() throws {
        let (addresses, environment) = try up(2)
        let hosts = addresses.map { $0 + ":1" }.joined(separator: ",")
        let network = ["FLEET_LAUNCH_AGENT": try XCTUnwrap(environment["OMPI_MCA_plm_rsh_agent"]), "FLEET_TEST_HOSTS": try XCTUnwrap(environment["FLEET_TEST_HOSTS"]),
                       "FLEET_TEST_HOSTS_SCRIPT": try XCTUnwrap(environment["FLEET_TEST_HOSTS_SCRIPT"])]
        let outcome = try FleetProcess.fleet(["chaos", "gpt-tiny", "--dp", "2", "--hosts", hosts, "--network-faults", "--runs", "4", "--steps", "10",
                                              "--seed", "3", "--json", "--dir", directory + "/chaos"], environment: network, timeout: 300)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let objects = try outcome.stdout.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let summary = try XCTUnwrap(objects.last)
        XCTAssertEqual(summary["passed"] as? Int, 4, outcome.output)
        XCTAssertEqual(Set(summary["kinds"] as? [String] ?? []), ["link", "loss", "slow-link", "delay"], outcome.output)
        XCTAssertEqual(objects.dropLast().compactMap { ($0["fault"] as? String)?.split(separator: ":").first.map(String.init) }, ["link", "slow-link", "loss", "delay"])
        XCTAssertTrue(objects.dropLast().allSatisfy { $0["fault_made"] as? Bool == true }, outcome.output)
        // 5 s added to every frame outlasts the 3 s deadline: a silent host, found within one deadline.
        XCTAssertEqual(objects[3]["detected"] as? String, "deadline (silent rank)", outcome.output)
        XCTAssertLessThan(try XCTUnwrap(objects[3]["detection_s"] as? Double), 4.5, outcome.output)
        // Every fault was undone: the hosts reach each other again, with no filter, queue or
        // relay left behind, each host's link back on the bridge.
        for address in addresses {
            let rules = try FleetProcess.run("/bin/bash", [Self.script, "rsh", address, "nft list tables; tc qdisc show dev eth0"], environment: [:], timeout: 30)
            XCTAssertFalse(rules.stdout.contains("fleet-chaos") || rules.stdout.contains("tbf"), rules.output)
        }
        let links = try FleetProcess.run("/usr/sbin/ip", ["-o", "link", "show"], environment: [:], timeout: 30).stdout
        XCTAssertFalse(links.contains("fleet-hd"), links)
        XCTAssertEqual(links.split(separator: "\n").filter { $0.contains("fleet-hv") && $0.contains("master fleetbr0") }.count, 2, links)
        var unplaced = network
        unplaced["FLEET_TEST_HOSTS_SCRIPT"] = ""
        let noScript = try FleetProcess.fleet(["chaos", "gpt-tiny", "--dp", "2", "--hosts", hosts, "--network-faults", "--network-kinds", "delay", "--dir", directory + "/no-script"],
                                              environment: unplaced)
        XCTAssertNotEqual(noScript.status, 0)
        XCTAssertTrue(noScript.stderr.contains("delay is made by scripts/test-hosts.sh"), noScript.output)
        // A fault that cannot be made (here the script fails) fails the run instead of passing unfaulted.
        var broken = network
        broken["FLEET_TEST_HOSTS_SCRIPT"] = "/bin/false"
        let unmade = try FleetProcess.fleet(["chaos", "gpt-tiny", "--dp", "2", "--hosts", hosts, "--network-faults", "--network-kinds", "delay", "--runs", "1",
                                             "--steps", "8", "--json", "--dir", directory + "/unmade"], environment: broken, timeout: 120)
        XCTAssertNotEqual(unmade.status, 0, unmade.output)
        let run = try XCTUnwrap(JSONSerialization.jsonObject(with: Data((unmade.stdout.split(separator: "\n").first ?? "").utf8)) as? [String: Any])
        XCTAssertEqual(run["fault_made"] as? Bool, false, unmade.output)
        XCTAssertEqual(run["detected"] as? String, "fault could not be made", unmade.output)
        let elsewhere = try FleetProcess.fleet(["chaos", "gpt-tiny", "--dp", "2", "--hosts", "10.0.0.1:1,10.0.0.2:1", "--network-faults"], environment: network)
        XCTAssertNotEqual(elsewhere.status, 0)
        XCTAssertTrue(elsewhere.stderr.contains("cuts links only between test hosts"), elsewhere.output)
    }

    /// A simulation sweep spread over ranks on two hosts prints what one process prints.
    func testASweepAcrossHostsGivesTheOneProcessTable() throws {
        let (addresses, environment) = try up(2)
        let sweep = SimulateCommandTests.scenarios + "/llama-70b-sweep.yaml"
        let alone = try FleetProcess.fleet(["simulate", sweep])
        XCTAssertEqual(alone.status, 0, alone.output)
        let spread = try FleetProcess.run("/usr/bin/mpirun", ["-n", "4", "--host", addresses.map { $0 + ":2" }.joined(separator: ","), FleetProcess.binary, "simulate", sweep],
                                          environment: FleetProcess.mpiEnvironment.merging(environment) { _, new in new }, timeout: 180)
        XCTAssertEqual(spread.status, 0, spread.output)
        XCTAssertEqual(spread.stdout, alone.stdout)
    }

    /// The script cleans leftovers on `up`, lists what is up, removes everything on `down`,
    /// and its launch agent refuses an address no test host has.
    func testTheTestHostsScriptCleansUpAndRefusesUnknownHosts() throws {
        _ = try up(3)
        XCTAssertEqual(try up(2).addresses.count, 2, "up again replaces the hosts")
        XCTAssertEqual(try hosts(["list"]).stdout.split(separator: "\n").count, 2)
        let inside = try hosts(["rsh", "198.18.0.2", "hostname"])
        XCTAssertEqual(inside.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "fleet-h2", inside.output)
        let stray = try hosts(["rsh", "198.18.0.9", "true"])
        XCTAssertEqual(stray.status, 255)
        XCTAssertTrue(stray.stderr.contains("no test host has address '198.18.0.9'"), stray.output)
        XCTAssertEqual(try hosts(["down"]).status, 0)
        XCTAssertEqual(try hosts(["list"]).stdout, "")
    }
}
