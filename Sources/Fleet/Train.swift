import ArgumentParser
import Collectives
import FaultInjection
import Foundation
import Parallelism
import Tensor
import Training
import Workflows

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a GPT for real: one process, or data-, tensor- and pipeline-parallel worker processes.",
        discussion: """
        Examples:
          fleet train gpt-tiny
          fleet train gpt-tiny --steps 500 --data my-text.txt --save tiny.weights
          fleet train gpt-tiny --dp 2 --pp 2                 # starts 4 local workers over ZeroMQ
          mpirun -n 4 fleet train gpt-tiny --dp 2 --pp 2     # the same over MPI
        """)

    @OptionGroup var options: TrainOptions
    @OptionGroup var layoutOptions: LayoutOptions
    @OptionGroup var workers: WorkerOptions
    @OptionGroup var checkpoints: CheckpointOptions
    @OptionGroup var faultOptions: FaultOptions

    @Flag(help: "Print one JSON object per step and a final summary object.")
    var json = false

    @Option(help: "Print a progress line every N steps (human output).")
    var logEvery: Int = 10

    @Option(help: "Save the trained weights here (read by fleet generate).")
    var save: String?

    @Option(help: "Bucket size of the data-parallel gradient all-reduce.")
    var bucket: ByteSize = ByteSize(bytes: 1 << 20)

    @Option(help: "The data-parallel buckets' all-reduce: ring, or hierarchical (each host's ranks over shared memory, then a ring across hosts).")
    var dpAlgo: String = "ring"

    @Option(help: "Write a Chrome/Perfetto trace of every rank's compute and communication here: each phase of a step and every op inside it (args: rank, kind, bytes or FLOPs as fleet plan --json names them).")
    var trace: String?

    @Option(help: "Steps the trace covers (from the first).")
    var traceSteps: Int = 10

    func validate() throws {
        guard logEvery > 0 else { throw ValidationError("--log-every must be positive") }
        guard traceSteps > 0 else { throw ValidationError("--trace-steps must be positive") }
        try OutputPath.check(trace, flag: "--trace")
        try OutputPath.check(save, flag: "--save", as: .fileCreatingDirectories)
        try OutputPath.check(checkpoints.checkpointDir, flag: "--checkpoint-dir", as: .directory)
        try OutputPath.check(workers.runDir, flag: "--run-dir", as: .directory)
        // The layout decides how many workers train starts; a different --ranks is a contradiction, not a request.
        if workers.ranks != 1 && workers.ranks != layoutOptions.layout.worldSize && !Settings.current.isWorker {
            throw ValidationError("--ranks \(workers.ranks) contradicts the layout \(layoutOptions.layout) (\(layoutOptions.layout.worldSize) ranks); "
                                  + "leave --ranks out: fleet train starts one worker per rank of --dp × --tp × --pp")
        }
        guard ["ring", "hierarchical"].contains(dpAlgo) else { throw ValidationError("--dp-algo must be ring or hierarchical (got '\(dpAlgo)')") }
        if dpAlgo == "hierarchical" {
            if options.deterministic {
                throw ValidationError("--dp-algo hierarchical sums in an order that depends on the hosts; --deterministic sums every gradient in one fixed tree: drop one of them")
            }
            if layoutOptions.zero > 0 {
                throw ValidationError("--dp-algo hierarchical is for the buckets' all-reduce; under --zero \(layoutOptions.zero) the buckets are reduce-scattered: drop one of them")
            }
        }
        if faultOptions.checkReplicas > 0 && layoutOptions.zero >= 3 && layoutOptions.dp > 1 {
            throw ValidationError("--check-replicas compares the replicas' parameters, and under --zero 3 each rank holds only its own block of them: "
                                  + "use --zero 2 or less to check replicas, or drop --check-replicas")
        }
        if faultOptions.maxRestarts > 0 && checkpoints.checkpointDir == nil {
            throw ValidationError("--max-restarts needs --checkpoint-dir DIR: restarted workers resume from its newest valid checkpoint")
        }
    }

    /// What every rank (and the launcher) checks before any work starts: the training
    /// settings, the layout against the model and batch, and what deterministic mode needs.
    func preflight() throws -> (TrainingConfiguration, ParallelLayout) {
        let configuration = try options.configuration()
        let layout = layoutOptions.layout
        try layout.validate(model: configuration.model, batch: configuration.batch, sequence: configuration.sequence,
                            worldSize: Settings.current.isWorker ? nil : layout.worldSize)
        try DistributedTrainer.checkRunnable(layout, model: configuration.model)
        if configuration.deterministic {
            try DeterministicMode.check(layout, model: configuration.model, batch: configuration.batch,
                                        sequence: configuration.sequence)
            try DeterministicMode.checkKernel()
        }
        // Before any rank allocates: the launcher for its workers, or each rank under mpirun for the whole job.
        if Settings.launchedAs == nil {
            try configuration.checkMemory(ranks: layout.worldSize)
        }
        return (configuration, layout)
    }

    func run() throws {
        try Console.reportingErrors {
            let (configuration, layout) = try preflight()
            var workers = self.workers
            if !Settings.current.isWorker {
                workers.ranks = layout.worldSize
                if workers.runDir == nil && layout.worldSize > 1 {
                    workers.runDir = try RunDirectory.create("train")
                }
            }
            // Stopped workers save a checkpoint first: give them the time.
            if checkpoints.policy != nil { workers.stopGrace = .seconds(60) }
            if faultOptions.maxRestarts > 0 && !Settings.current.isWorker {
                if workers.runDir == nil { workers.runDir = try RunDirectory.create("train") }
                return try whenPreempted { try superviseWorkers(workers, steps: configuration.steps) }
            }
            let launched = try whenPreempted { try workers.workerTransport() }
            guard let opened = launched else {
                if let runDir = workers.runDir, !json { Console.out("per-rank logs: \(runDir)/rank-*.log") }
                return
            }
            // Every multi-rank (or fault-injected) run goes through the decorator: it acts out
            // message faults and keeps the flight recorder a failure report prints.
            let plan = try faultOptions.plan(worldSize: opened.worldSize, steps: configuration.steps)
            let faulty = opened.worldSize > 1 || !plan.faults.isEmpty
                ? FaultyTransport(opened, faults: plan.faults, checksums: faultOptions.checksums) : nil
            let transport: Transport = faulty ?? opened
            var failed = false
            defer { shutDown(transport, failed: failed) }
            try Console.reportingErrors(rank: transport.worldSize > 1 ? transport.rank : nil) {
                do {
                    try trainParallel(configuration, layout: layout, transport: transport,
                                      injector: plan.faults.isEmpty ? nil : FaultInjector(plan: plan, rank: transport.rank))
                } catch let stopped as ExitCode {
                    throw stopped   // a deliberate stop (preemption) is not a failure to explain
                } catch {
                    // A fault can leave peers waiting on this rank (under mpirun, forever in MPI_Finalize):
                    // those end the job. An input every rank refuses alike ends each rank on its own.
                    let cause = FailureCause(error)
                    failed = cause != .other
                    Settings.current.events?.emit(.failure(error, attempt: Settings.current.attempt, rank: transport.rank))
                    if let faulty, cause.isCommunication, !faulty.recorder.lines.isEmpty {
                        Console.err("rank \(transport.rank)'s last communication operations (flight recorder):\n"
                            + faulty.recorder.lines.map { "  " + $0 }.joined(separator: "\n"))
                    }
                    throw error
                }
            }
        }
    }

    /// Runs the launcher (or its supervisor): stopped by a signal after every worker saved a
    /// checkpoint (they exit 75), the run says where and exits 75 itself — never a restart.
    private func whenPreempted<T>(_ launch: () throws -> T) throws -> T {
        do { return try launch() } catch LocalLauncher.LaunchError.interrupted(let signal, let exits)
            where checkpoints.policy != nil && !exits.isEmpty && exits.allSatisfy({ $0.status == ExitStatus.preempted && !$0.signaled }) {
            Console.err("fleet: stopped by signal \(signal): every rank saved a checkpoint in \(checkpoints.policy!.directory); "
                        + "continue with the same command and --resume")
            throw ExitCode(ExitStatus.preempted)
        }
    }

    private func trainParallel(_ configuration: TrainingConfiguration, layout: ParallelLayout, transport: Transport, injector: FaultInjector?) throws {
        let trainer = try DistributedTrainer(configuration: configuration, layout: layout, transport: transport, corpus: try options.corpus(),
                                             context: Settings.current.executionContext)
        trainer.injector = injector
        trainer.replicaCheckEvery = faultOptions.checkReplicas
        trainer.bucketBytes = bucket.bytes
        trainer.dataParallelAlgorithm = AllReduceAlgorithm(name: dpAlgo) ?? .ring
        trainer.checkpointing = checkpoints.policy
        trainer.stopAfter = checkpoints.stopAt
        // With a checkpoint directory, SIGTERM (a scheduler's preemption) or Ctrl-C stops the run
        // at the next step boundary with a checkpoint of that step, on every rank.
        let stopSignals = checkpoints.policy != nil ? SignalWatcher(signals: [SIGTERM, SIGINT]) : nil
        defer { stopSignals?.stop() }
        if let stopSignals { trainer.preemptionRequested = { stopSignals.received != nil } }
        if trainer.isReporter && !json {
            Console.out(TrainingText.header(configuration, layout: layout, train: trainer.data.train.count, validation: trainer.data.validation.count)
                + (layout.worldSize > 1 ? ", \(transport.backendName)" : ""))
            Console.out(BLASKernelReport.current(environment: ProcessInfo.processInfo.environment).headerLine)
        }
        var run = TrainingRun(trainer: trainer)
        run.runDirectory = Settings.current.runDirectory ?? workers.runDir
        run.save = save
        run.events = Settings.current.events
        run.attempt = Settings.current.attempt
        let (resumed, skipped) = try checkpoints.checkpointToResume()
        let notes = try run.resume(from: resumed, skipped: skipped, saveDirectory: checkpoints.policy?.directory,
                                   asked: checkpoints.resume, searched: checkpoints.checkpointDir)
        // In JSON mode stdout holds only JSON objects: notes go to stderr.
        if trainer.isReporter { notes.forEach(json ? Console.err : Console.out) }
        if trace != nil {
            trainer.tracer = Tracer()
            trainer.traceSteps = traceSteps
        }
        let printer = StepPrinter(json: json, logEvery: logEvery, steps: configuration.steps)
        let outcome = try run.run(report: printer.step)
        if case let .preempted(step) = outcome {
            if trainer.isReporter {
                Console.err("fleet: stopped after step \(step) of \(configuration.steps) by a signal; checkpoint saved in "
                            + "\(checkpoints.policy?.directory ?? "?"); continue with the same command and --resume")
            }
            throw ExitCode(ExitStatus.preempted)
        }
        let traceText = trace != nil ? try trainer.collectTrace() : nil
        if case let .finished(summary?) = outcome {
            if let policy = checkpoints.policy, !json { Console.out("checkpoints in \(policy.directory) (fleet checkpoint inspect \(policy.directory))") }
            printer.summary(summary, saved: save)
        }
        if let trace, let traceText {
            do { try traceText.write(toFile: trace, atomically: true, encoding: .utf8) } catch {
                throw ValidationError("cannot write the trace to \(trace): \(error.localizedDescription)")
            }
            if !json { Console.out("trace of every rank written to \(trace) (open it in ui.perfetto.dev or chrome://tracing)") }
        }
    }
}

/// Prints training progress the same way for one process and for the reporting rank of many.
struct StepPrinter {
    let json: Bool
    let logEvery: Int
    let steps: Int

    func step(_ m: StepMetrics, breakdown: DistributedTrainer.StepResult?) {
        if json {
            Console.json(TrainingRecord.step(m, breakdown))
        } else if (m.step + 1) % logEvery == 0 || m.step == 0 || m.step + 1 == steps || m.validationLoss != nil {
            Console.out(TrainingText.step(m, breakdown, of: steps))
        }
    }

    func summary(_ s: TrainingSummary, saved: String?) {
        let blas = BLASKernelReport.current(environment: ProcessInfo.processInfo.environment)
        let (notes, lines) = TrainingText.summary(s, saved: saved)
        if json {
            Console.json(TrainingRecord.summary(s, blas: blas))
            notes.forEach(Console.err)   // stdout holds only JSON
        } else {
            (notes + lines).forEach(Console.out)
        }
    }
}
