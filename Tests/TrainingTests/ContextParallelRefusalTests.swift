import Collectives
import Parallelism
import Training
import Workload
import XCTest

/// Context parallelism is planned and priced, not run: the trainer refuses it, saying where it is priced.
final class ContextParallelRefusalTests: XCTestCase {
    func testTheTrainerRefusesContextParallelism() {
        let c = InProcessTraining.configuration(deterministic: false)
        let results = LocalFabric.run(worldSize: 2, timeout: .seconds(30)) { transport in
            _ = try DistributedTrainer(configuration: c, layout: ParallelLayout(dp: 2, cp: 2), transport: transport, corpus: .builtIn())
        }
        for result in results {
            XCTAssertThrowsError(try result.get()) { error in
                XCTAssertTrue("\(error)".contains("--cp 2") && "\(error)".contains("fleet simulate"), "\(error)")
            }
        }
    }
}
