import ArgumentParser
import Training

/// Output paths named on the command line, checked before any work: a run should not spend
/// its hours and then fail to write its trace, plot, scenario or checkpoints.
enum OutputPath {
    /// Throws a usage error naming `flag` when `path` cannot be written as `target`.
    static func check(_ path: String?, flag: String, as target: WritablePath.Target = .file) throws {
        guard let path, let problem = WritablePath.problem(path, target) else { return }
        throw ValidationError("\(flag) \(path): \(problem)")
    }
}
