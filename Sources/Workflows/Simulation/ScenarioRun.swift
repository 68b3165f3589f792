import Collectives
import Engine
import Foundation

/// `fleet simulate`: every point of a scenario file (under mpirun, rank r of K takes points
/// r, r + K, … and rank 0 gathers them in order), and for one point its reliability run.
public struct ScenarioRun {
    public let sweep: ScenarioReader.Sweep
    /// Simulate every pipeline (dp × tp of them) instead of one representative.
    public var everyPipeline = false

    /// A simulated point: its scenario, step and the wall time the simulation took.
    public struct Point {
        public let scenario: Scenario
        public let report: StepReport
        public let wall: Duration
    }

    /// What the sweep gave: its rows in order, the first point this rank simulated, and for a
    /// one-point file why it cannot run (if it cannot).
    public struct Outcome {
        public var rows: [SweepRow]
        public var first: Point?
        public var problem: String?
        public var isSinglePoint: Bool
    }

    /// One reliability run over days, with its checkpoint-interval sweep if the scenario asks for one.
    public struct Reliability {
        public let model: ReliabilityModel
        public let report: ReliabilityReport
        public let sweep: (reports: [ReliabilityReport], best: ReliabilityReport)?
        public let elapsed: Double
        /// Useful steps over the run.
        public let steps: Double

        /// Goodput per swept interval, for a bar chart.
        public var bars: [(label: String, value: Double)]? {
            sweep.map { $0.reports.map { (label: Units.duration($0.interval), value: $0.goodput) } }
        }
    }

    public init(sweep: ScenarioReader.Sweep) { self.sweep = sweep }

    /// Simulates this rank's share of the points; with `world`, gathers every row on rank 0
    /// (other ranks get nil).
    public func run(world: Transport?) throws -> Outcome? {
        let (rank, size) = (world?.rank ?? 0, world?.worldSize ?? 1)
        var rows: [Int: SweepRow] = [:]
        var first: Point?, problem: String?
        for (index, point) in sweep.points.enumerated() where index % size == rank {
            switch point.scenario {
            case .failure(let error):
                rows[index] = SweepRow(sweep.base, point.values, nil, nil, problem: "\(error)")
                problem = "\(error)"
            case .success(let s):
                let start = ContinuousClock.now
                let simulator = StepSimulator(scenario: s)
                let report = everyPipeline ? simulator.runEveryPipeline() : simulator.run()
                let wall = ContinuousClock.now - start
                let memoryProblem = report.problem ?? s.memoryProblem(report.memoryStages)
                rows[index] = SweepRow(sweep.base, point.values, s, report, problem: memoryProblem)
                problem = memoryProblem
                if first == nil { first = Point(scenario: s, report: report, wall: wall) }
            }
        }
        if let world, size > 1 {
            guard let gathered = try SweepRow.gather(rows, over: world) else { return nil }
            rows = gathered
        }
        let single = sweep.points.count == 1
        return Outcome(rows: (0..<sweep.points.count).compactMap { rows[$0] }, first: first, problem: single ? problem : nil, isSinglePoint: single)
    }

    /// The scenario's failures simulated over its duration, from its simulated step.
    public static func reliability(_ point: Point) throws -> Reliability? {
        guard let settings = point.scenario.reliability, point.report.problem == nil else { return nil }
        let model = point.scenario.reliabilityModel(settings, step: point.report)
        if let problem = model.problem(intervals: settings.intervals) { throw FleetError(problem) }
        let start = ContinuousClock.now
        let report = model.simulate()
        let sweep = settings.intervals.isEmpty ? nil : model.sweep(intervals: settings.intervals)
        return Reliability(model: model, report: report, sweep: sweep, elapsed: (ContinuousClock.now - start).seconds,
                           steps: report.useful / point.report.stepTime.seconds)
    }
}
