import Engine
import Foundation
import XCTest

/// Seeded mutations of the shipped scenarios, read and simulated in-process: every case either
/// fails with a `ScenarioError` (a line and column, what is expected) or simulates to finite,
/// non-negative times, bytes and energy whose breakdowns add up — never a crash, a hang or a
/// plausible wrong number. `FLEET_FUZZ_CASES` (default 10,000) and `FLEET_FUZZ_SEED` choose
/// the run; `scripts/fuzz.sh` runs 100,000.
final class ScenarioFuzzTests: XCTestCase {
    func testMutatedScenariosFailCleanlyOrSimulateToSaneNumbers() throws {
        let environment = ProcessInfo.processInfo.environment
        let cases = environment["FLEET_FUZZ_CASES"].flatMap(Int.init) ?? 10_000
        let seed = environment["FLEET_FUZZ_SEED"].flatMap(UInt64.init) ?? 20261203
        let seeds = try ScenarioMutator.shippedScenarios()
        XCTAssertGreaterThanOrEqual(seeds.count, 5)
        let findings = FuzzFindings()
        let workers = max(1, min(4, ProcessInfo.processInfo.activeProcessorCount))
        let clock = FuzzWatch(workers: workers)
        let group = DispatchGroup()
        for worker in 0..<workers {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var index = worker
                while index < cases && !findings.full {
                    var mutator = ScenarioMutator(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
                    let base = seeds[index % seeds.count]
                    let text = mutator.mutate(base.text)
                    clock.start(worker, case: index, text: text)
                    if let problem = FuzzCase.check(path: base.name, text: text) {
                        findings.add("case \(index) (mutation of \(base.name): \(mutator.applied.joined(separator: "; "))): \(problem)\n--- scenario ---\n\(text)")
                    }
                    clock.finish(worker)
                    index += workers
                }
            }
        }
        // A case that runs past its limit is a hang: report it rather than wait for it.
        while group.wait(timeout: .now() + 0.5) == .timedOut {
            if let hung = clock.overdue(limit: 20) {
                XCTFail("case \(hung.case) ran for more than 20 s (a hang?):\n\(hung.text)")
                return
            }
        }
        XCTAssertEqual(findings.count, 0, findings.first.joined(separator: "\n\n"))
    }
}

/// One fuzz case: read, then simulate every point (and the reliability run of a one-point file).
enum FuzzCase {
    /// nil when the case failed cleanly or simulated to sane numbers; else what was wrong.
    static func check(path: String, text: String) -> String? {
        // A serving scenario: refused with a ScenarioError, or served to finite, ordered latencies.
        do {
            if let serving = try ScenarioReader(path: path, text: text).readServing() {
                let r = ServingSimulator.run(serving)
                let values = [r.completedPerSecond, r.outputTokensPerSecond, r.ttft.p50, r.ttft.p99, r.tpot.p50, r.tpot.p99, r.kvOccupancy.mean, r.kvOccupancy.peak]
                guard values.allSatisfy({ $0.isFinite && $0 >= 0 }), r.ttft.p50 <= r.ttft.p99, r.tpot.p50 <= r.tpot.p99, r.kvOccupancy.peak <= 1 + 1e-9 else {
                    return "serving: \(r)"
                }
                return nil
            }
        } catch let error as ScenarioError {
            return "\(error)".isEmpty ? "an empty error message" : nil
        } catch {
            return "an error that is not a ScenarioError: \(type(of: error)): \(error)"
        }
        let sweep: ScenarioReader.Sweep
        do {
            sweep = try ScenarioReader(path: path, text: text).read()
        } catch let error as ScenarioError {
            let message = "\(error)"
            return message.isEmpty ? "an empty error message" : nil
        } catch {
            return "an error that is not a ScenarioError: \(type(of: error)): \(error)"
        }
        for point in sweep.points {
            guard case .success(let s) = point.scenario else { continue }
            let report = StepSimulator(scenario: s).run()
            // Refused with a reason, as fleet simulate does: a clean outcome.
            if report.problem != nil { continue }
            if let problem = saneStep(report, s) { return "point \(point.values): \(problem)" }
            if let problem = saneEstimate(RunEstimate(s, report, goodput: 1), s) { return "point \(point.values): \(problem)" }
            if sweep.points.count == 1, let settings = s.reliability {
                let model = s.reliabilityModel(settings, step: report)
                if model.problem(intervals: settings.intervals) != nil { continue }
                if let problem = saneReliability(model.simulate()) { return "reliability: \(problem)" }
            }
        }
        return nil
    }

    static func saneStep(_ r: StepReport, _ s: Scenario) -> String? {
        let step = r.stepTime.seconds
        guard step.isFinite, step > 0 else { return "step time \(step)" }
        let b = r.breakdown
        let parts: [(String, Double)] = [("compute", b.compute.seconds), ("tensor", b.tensorParallel.seconds), ("expert all-to-all", b.expertAllToAll.seconds),
                                         ("ring attention", b.contextParallel.seconds), ("pipeline wait", b.pipelineWait.seconds),
                                         ("dp exposed", b.dataParallelExposed.seconds), ("optimizer", b.optimizer.seconds),
                                         ("checkpoint", b.checkpoint.seconds), ("data stall", b.dataStall.seconds)]
        for (name, value) in parts where !value.isFinite || value < 0 { return "\(name) \(value)" }
        let sum = parts.reduce(0) { $0 + $1.1 }
        if abs(sum - step) > 1e-6 * step + 1e-9 { return "the breakdown sums to \(sum) s, the step is \(step) s" }
        guard r.tokensPerSecond.isFinite, r.tokensPerSecond > 0 else { return "tokens/s \(r.tokensPerSecond)" }
        guard r.mfu.isFinite, r.mfu >= 0, r.mfu <= 1 else { return "MFU \(r.mfu)" }
        guard r.bubbleFraction.isFinite, (0...1).contains(r.bubbleFraction) else { return "bubble \(r.bubbleFraction)" }
        guard r.memory.total.isFinite, r.memory.total >= 0 else { return "memory \(r.memory.total)" }
        let energy = Double(s.gpus) * s.device.watts * step
        guard energy.isFinite, energy >= 0 else { return "energy \(energy)" }
        for stage in r.stages where stage.flops.count < 0 || !stage.flops.count.isFinite || stage.dataParallelBytes.count < 0
            || stage.tensorParallelBytes.count < 0 || stage.pipelineBytes.count < 0 {
            return "stage traffic \(stage)"
        }
        for link in r.busiestLinks where !link.bytes.isFinite || link.bytes < 0 || !link.utilization.isFinite || link.utilization < 0 {
            return "link \(link.link): \(link.bytes) bytes, utilization \(link.utilization)"
        }
        return nil
    }

    /// Power within idle…TDP, energy, carbon, water, time and cost finite and not negative, a fabric of whole parts.
    static func saneEstimate(_ e: RunEstimate, _ s: Scenario) -> String? {
        guard e.energy.devicePower.isFinite, e.energy.devicePower >= 0, e.energy.devicePower <= s.device.watts + 1e-9 else { return "device power \(e.energy.devicePower)" }
        for totals in [e.perStep, e.perToken] + (e.run.map { [$0] } ?? []) {
            let values = [totals.itKWh, totals.facilityKWh, totals.carbonKg, totals.waterL] + (totals.embodiedKg.map { [$0] } ?? [])
            guard values.allSatisfy({ $0.isFinite && $0 >= 0 }), totals.facilityKWh >= totals.itKWh else { return "energy \(totals)" }
        }
        if let t = e.time {
            let values = [t.wallSeconds, t.computeSeconds, t.gpuHours] + (t.cost.map { [$0] } ?? [])
            guard values.allSatisfy({ $0.isFinite && $0 >= 0 }), t.wallSeconds >= t.computeSeconds - 1e-9 else { return "training time \(t)" }
        }
        let f = e.fabric
        guard f.switches >= 1, f.cables >= f.endpoints, f.bisection.isFinite, f.bisection >= 0, f.oversubscription.isFinite else { return "fabric \(f)" }
        return nil
    }

    static func saneReliability(_ r: ReliabilityReport) -> String? {
        // Restarts include the wait for repairs.
        let parts = [r.useful, r.rework, r.restart, r.checkpointStalls, r.stragglers, r.maintenance, r.preemptions]
        guard r.wall.isFinite, r.wall > 0, parts.allSatisfy({ $0.isFinite && $0 >= 0 }), r.repairWait >= 0, r.repairWait <= r.restart + 1e-9 else {
            return "times \(r)"
        }
        guard (0...1).contains(r.goodput) else { return "goodput \(r.goodput)" }
        let sum = parts.reduce(0, +)
        if abs(sum - r.wall) > 1e-6 * r.wall { return "useful and losses sum to \(sum) s of \(r.wall) s" }
        return nil
    }
}

/// Seeded text mutations of a YAML scenario: drop, duplicate, re-indent or rename a line's key;
/// replace a value by zero, a negative, huge, tiny or non-finite number, another unit, another
/// type, a deep nest or an alias; truncate the file.
struct ScenarioMutator {
    private var random: SplitMix64
    private(set) var applied: [String] = []

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    static func shippedScenarios() throws -> [(name: String, text: String)] {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scenarios")
        return try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") }.sorted().map {
            ($0, try String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8))
        }
    }

    private mutating func below(_ n: Int) -> Int { random.below(n) }
    private mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    mutating func mutate(_ text: String) -> String {
        var text = text
        for _ in 0..<(1 + below(3)) { text = mutateOnce(text) }
        return text
    }

    private mutating func mutateOnce(_ text: String) -> String {
        var lines = text.components(separatedBy: "\n")
        let content = lines.indices.filter { !lines[$0].trimmingCharacters(in: .whitespaces).isEmpty && !lines[$0].hasPrefix("#") }
        guard !content.isEmpty else { return text }
        let line = pick(content)
        switch below(10) {
        case 0:
            applied.append("dropped line \(line + 1)")
            lines.remove(at: line)
        case 1:
            applied.append("duplicated line \(line + 1)")
            lines.insert(lines[line], at: line)
        case 2:
            applied.append("re-indented line \(line + 1)")
            lines[line] = (below(2) == 0 ? "   " : "") + lines[line].drop { $0 == " " && below(2) == 0 }
        case 3:
            guard let colon = lines[line].firstIndex(of: ":") else { return text }
            let typo = pick(["x", "s", "_"])
            applied.append("renamed the key on line \(line + 1)")
            lines[line].insert(contentsOf: typo, at: colon)
        case 4:
            let cut = below(text.utf8.count)
            applied.append("truncated at byte \(cut)")
            return String(decoding: text.utf8.prefix(cut), as: UTF8.self)
        default:
            let spans = Self.valueSpans(lines[line])
            guard !spans.isEmpty else { return text }
            let span = pick(spans)
            let old = String(lines[line][span]).trimmingCharacters(in: .whitespaces)
            let new = value(replacing: old)
            applied.append("line \(line + 1): \(old) → \(new)")
            lines[line].replaceSubrange(span, with: new)
        }
        return lines.joined(separator: "\n")
    }

    /// Where the scalar values on a line are: after `key: ` and inside `[…]` and `{…}`.
    static func valueSpans(_ line: String) -> [Range<String.Index>] {
        let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? line
        let pattern = try! NSRegularExpression(pattern: #"(?<=: |\[|, )[^,\[\]{}:#]+?(?=\s*(,|\]|\}|$))"#)
        return pattern.matches(in: code, range: NSRange(code.startIndex..., in: code)).compactMap { Range($0.range, in: line) }
    }

    private mutating func value(replacing old: String) -> String {
        let parts = old.split(separator: " ", maxSplits: 1).map(String.init)
        let number = Double(parts.first ?? "")
        let unit = parts.count > 1 ? " " + parts[1] : ""
        let units = [" Gb/s", " GB/s", " ms", " us", " s", " h", " d", " MB", " GiB", " TB", " W", " %", " bogus", ""]
        switch below(16) {
        case 0: return "0" + unit
        case 1: return "-" + (parts.first ?? "1") + unit
        case 2: return "1e308" + unit
        case 3: return "1e-300" + unit
        case 4: return pick([".nan", ".inf", "-.inf", "nan", "inf"]) + unit
        case 5: return "9223372036854775807" + unit
        case 6: return (parts.first ?? "1") + pick(units)
        case 7: return pick(["abc", "true", "null", "~", "''", "\"\""])
        case 8: return pick(["[1, 2]", "{a: 1}", "[]", "{}"])
        case 9: return String(repeating: "[", count: 200) + "1" + String(repeating: "]", count: 200)
        case 10: return number.map { String($0 * 1e9) } ?? old
        case 11: return number.map { String($0 / 1e9) } ?? old
        case 12: return number.map { abs($0) < 1e15 ? String(Int($0) + 1) : old } ?? old
        case 13: return "&a " + old
        case 14: return "*a"
        default: return number.map { String(-$0) + unit } ?? "0.5"
        }
    }
}

/// Findings shared by the fuzz threads (a lock guards them).
final class FuzzFindings: @unchecked Sendable {
    private let lock = NSLock()
    private var found: [String] = []
    var count: Int { lock.withLock { found.count } }
    var full: Bool { lock.withLock { found.count >= 5 } }
    var first: [String] { lock.withLock { found } }
    func add(_ finding: String) { lock.withLock { found.append(finding) } }
}

/// When each fuzz thread started its current case, to name a hang.
final class FuzzWatch: @unchecked Sendable {   // a lock guards `running`
    private let lock = NSLock()
    private var running: [(case: Int, text: String, started: Date)?]
    init(workers: Int) { running = Array(repeating: nil, count: workers) }
    func start(_ worker: Int, case index: Int, text: String) { lock.withLock { running[worker] = (index, text, Date()) } }
    func finish(_ worker: Int) { lock.withLock { running[worker] = nil } }
    func overdue(limit: TimeInterval) -> (case: Int, text: String)? {
        lock.withLock { running.compactMap { $0 }.first { Date().timeIntervalSince($0.started) > limit }.map { ($0.case, $0.text) } }
    }
}
