import Foundation
import Tensor
import Training
import Collectives
import Workload
import XCTest

final class TrainerTests: XCTestCase {
    private func configuration(steps: Int, seed: UInt64 = 1) -> TrainingConfiguration {
        var c = TrainingConfiguration(model: ModelCatalog.gptTiny)
        c.steps = steps
        c.seed = seed
        c.evalBatches = 2
        return c
    }

    func testInitialLossIsNearUniform() throws {
        let trainer = try Trainer(configuration: configuration(steps: 1), corpus: .builtIn())
        let loss = trainer.trainStep(0).loss
        XCTAssertEqual(Double(loss), log(256), accuracy: 0.1)
    }

    func testSameSeedGivesBitwiseIdenticalRuns() throws {
        func run(seed: UInt64) throws -> ([UInt32], [UInt32]) {
            let trainer = try Trainer(configuration: configuration(steps: 6, seed: seed), corpus: .builtIn())
            let losses = (0..<6).map { trainer.trainStep($0).loss.bitPattern }
            return (losses, trainer.model.parameters.array.map(\.bitPattern))
        }
        let (lossesA, paramsA) = try run(seed: 7)
        let (lossesB, paramsB) = try run(seed: 7)
        XCTAssertEqual(lossesA, lossesB)
        XCTAssertTrue(paramsA == paramsB, "parameters differ between identical runs")
        let (lossesC, _) = try run(seed: 8)
        XCTAssertNotEqual(lossesA, lossesC, "a different seed should change the run")
    }

    /// Kernels split work over outputs, never over a reduction, so the thread count cannot change a result.
    func testTwoThreadsGiveBitwiseTheSameRunAsOne() throws {
        // That holds only for a BLAS kernel whose products do not depend on how rows are split.
        // fleet's processes choose one (FleetTests.BLASKernelTests checks the same through them);
        // this test process runs whatever OpenBLAS loaded.
        if let failure = BLASKernelCheck.splitInvariance() {
            throw XCTSkip("OpenBLAS kernel \(BLAS.coreName) in this test process computes other bits in pieces (\(failure))")
        }
        func run(threads: Int) throws -> [UInt32] {
            var c = configuration(steps: 4)
            c.threads = threads
            c.batch = 4
            let trainer = try Trainer(configuration: c, corpus: .builtIn())
            return (0..<4).map { trainer.trainStep($0).loss.bitPattern }
        }
        XCTAssertEqual(try run(threads: 1), try run(threads: 2))
    }

    /// A broken optimizer (no update, wrong sign, no bias correction) cannot get below 1.2 in 300 steps.
    func testLossFallsWellBelowTwoOnTheBuiltInCorpus() throws {
        let trainer = try Trainer(configuration: configuration(steps: 300), corpus: .builtIn())
        let summary = trainer.run()
        XCTAssertLessThan(summary.finalLoss, 1.2)
        XCTAssertLessThan(summary.validationLoss, 1.2)
        XCTAssertLessThan(summary.losses.suffix(10).max()!, summary.losses.prefix(10).min()!)
    }

    func testBadSizesAreRejectedWithTheFlagName() {
        var c = configuration(steps: 0)
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("--steps")) }
        c = configuration(steps: 5)
        c.sequence = 129
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("context of 128")) }
        c = configuration(steps: 5)
        c.batch = -1
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("--batch")) }
    }

    func testDataShorterThanTheContextIsAnError() {
        let tiny = Corpus(name: "tiny.txt", bytes: Array("hello world".utf8))
        XCTAssertThrowsError(try DataLoader(corpus: tiny, sequence: 128, seed: 1)) { XCTAssertTrue("\($0)".contains("tiny.txt holds 11 bytes")) }
    }

    func testBatchesAreKeyedByGlobalSampleIndex() throws {
        let loader = try DataLoader(corpus: .builtIn(characters: 50_000), sequence: 16, seed: 3)
        let whole = loader.trainingBatch(step: 4, batch: 8)
        let secondHalf = loader.trainingBatch(step: 4, batch: 8, samples: 4..<8)
        XCTAssertEqual(Array(whole.tokens[(4 * 16)...]), secondHalf.tokens)
        for s in 0..<8 {
            for i in 0..<15 { XCTAssertEqual(whole.targets[s * 16 + i], whole.tokens[s * 16 + i + 1]) }
        }
    }

    func testWeightsFileRoundTripsAndRejectsDamage() throws {
        let model = GPT(spec: ModelCatalog.gptTiny, seed: 5)
        let path = NSTemporaryDirectory() + "fleet-weights-\(getpid()).bin"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try WeightsFile.save(model, step: 12, to: path)
        let (loaded, step) = try WeightsFile.load(path)
        XCTAssertEqual(step, 12)
        XCTAssertTrue(loaded.parameters.array == model.parameters.array)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count - 100).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try WeightsFile.load(path)) { XCTAssertTrue("\($0)".contains("damaged")) }
        try Data("not weights at all".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try WeightsFile.load(path)) { XCTAssertTrue("\($0)".contains("not a fleet weights file")) }
        // One flipped bit in the parameters: the checksum in the header catches it.
        try WeightsFile.save(model, step: 12, to: path)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 7] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try WeightsFile.load(path)) { XCTAssertTrue("\($0)".contains("fail their checksum"), "\($0)") }
        // A file that is not there: one line with the path and the cause, no Foundation dump.
        XCTAssertThrowsError(try WeightsFile.load(path + ".nosuch")) { error in
            XCTAssertEqual("\(error)", "cannot read weights from \(path).nosuch: No such file or directory")
        }
        XCTAssertThrowsError(try Data(contentsOf: URL(fileURLWithPath: NSTemporaryDirectory()))) { error in
            XCTAssertEqual(FileProblem.describe(error)?.hasSuffix("Is a directory"), true, FileProblem.describe(error) ?? "\(error)")
        }
    }

    /// MFU is against a stated peak no run exceeds: the CPU's nominal peak, or the measured
    /// sgemm rate when a turbo clock puts it higher, or the run's own rate when noise put both below it.
    /// The estimate before training is close to what a run holds (gpt-tiny, batch 512: 3.66 GB
    /// of resident memory measured with /usr/bin/time), and a run that cannot fit is refused.
    func testMemoryIsEstimatedBeforeTrainingAndAnImpossibleRunRefused() throws {
        var c = TrainingConfiguration(model: ModelCatalog.gptTiny)
        c.batch = 512
        XCTAssertEqual(c.memoryEstimate(ranks: 1).value, 3.66e9, accuracy: 0.2 * 3.66e9)
        c.batch = 100_000
        XCTAssertThrowsError(try c.checkMemory(ranks: 1, available: 24 << 30)) { error in
            XCTAssertTrue("\(error)".contains("lower --batch or --seq"), "\(error)")
        }
        c.batch = 8
        XCTAssertNoThrow(try c.checkMemory(ranks: 4, available: 24 << 30))
    }

    func testMFUNeverExceedsItsStatedPeak() {
        func summary(achieved: Double, sgemm: Double, cpu: Double?) -> TrainingSummary {
            TrainingSummary(finalLoss: 1, validationLoss: 1, tokensPerSecond: 1, achievedFLOPs: achieved, gemmFLOPs: sgemm, cpuPeakFLOPs: cpu, losses: [1])
        }
        let cases: [(achieved: Double, sgemm: Double, cpu: Double?, source: String, mfu: Double)] = [
            (40e9, 80e9, 100e9, "cpu", 0.4), (40e9, 120e9, 100e9, "sgemm", 40.0 / 120), (90e9, 60e9, nil, "achieved", 1), (30e9, 60e9, nil, "sgemm", 0.5)]
        for c in cases {
            let s = summary(achieved: c.achieved, sgemm: c.sgemm, cpu: c.cpu)
            XCTAssertEqual(s.peakSource, c.source, "\(c)")
            XCTAssertEqual(s.mfu, c.mfu, accuracy: 1e-12, "\(c)")
            XCTAssertLessThanOrEqual(s.mfu, 1)
        }
        XCTAssertEqual(summary(achieved: 90e9, sgemm: 60e9, cpu: nil).sgemmFraction, 1.5, "the ratio to the sgemm rate is a ratio, not a utilisation")
    }
}

final class CRC32CTests: XCTestCase {
    func testKnownValueAndAgreementWithTheBitwiseDefinition() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.bitwise(Array("123456789".utf8)), 0xE306_9283)
        var state: UInt64 = 12345
        for length in [0, 1, 7, 8, 9, 63, 64, 1000, 4097] {
            let bytes = (0..<length).map { _ -> UInt8 in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt8(truncatingIfNeeded: state >> 33)
            }
            XCTAssertEqual(CRC32C.checksum(bytes), CRC32C.bitwise(bytes), "length \(length)")
            // Continuing over pieces gives the checksum of the whole.
            let cut = length / 3
            let first = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<cut])) }
            let whole = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[cut...]), continuing: first) }
            XCTAssertEqual(whole, CRC32C.bitwise(bytes), "length \(length) in two pieces")
        }
    }
}
