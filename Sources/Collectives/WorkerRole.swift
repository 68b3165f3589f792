/// What fleet's launcher tells each worker it starts, on the worker's command line (`fleet
/// worker --rank R --world-size N …`): where it sits in the world, how to find its peers,
/// whose child it is, and where its run keeps its logs.
public struct WorkerRole: Sendable, Equatable {
    public var rank: Int
    public var worldSize: Int
    /// Rank 0's rendezvous address, and this rank's inbox.
    public var coordinator: String
    public var bind: String
    /// The launcher's pid: the worker dies with it, and refuses to start if it is gone
    /// (`launchAgent`: started on another host; it dies with the agent's process there).
    public var launcherPID: Int32?
    public static let launchAgent: Int32 = 0
    public var runDirectory: String?

    public init(rank: Int, worldSize: Int, coordinator: String, bind: String, launcherPID: Int32? = nil, runDirectory: String? = nil) {
        self.rank = rank
        self.worldSize = worldSize
        self.coordinator = coordinator
        self.bind = bind
        self.launcherPID = launcherPID
        self.runDirectory = runDirectory
    }

    /// The options of `fleet worker` that say all of this.
    public var arguments: [String] {
        ["--rank", "\(rank)", "--world-size", "\(worldSize)", "--coordinator", coordinator, "--bind", bind]
            + (launcherPID.map { ["--launcher-pid", "\($0)"] } ?? []) + (runDirectory.map { ["--run-dir", $0] } ?? [])
    }

    public var zmq: ZMQTransport.Configuration {
        ZMQTransport.Configuration(rank: rank, worldSize: worldSize, coordinator: coordinator, bind: bind)
    }
}
