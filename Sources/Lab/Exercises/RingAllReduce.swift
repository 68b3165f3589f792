import Engine
import Foundation
import Workflows

/// Ring all-reduce on real worker processes: bytes on the wire, algbw and busbw.
struct RingAllReduce: Exercise {
    let id = "ring-allreduce"
    let chapter = "Collective Communication"
    let title = "Ring all-reduce: bytes on the wire, algbw and busbw on real ranks"
    let minutes = 30
    let needs = "worker processes (ZeroMQ)"
    let background = """
        A ring all-reduce of S bytes over n ranks is a reduce-scatter then an all-gather: 2(n−1) steps, each rank
        sending one block of S/n per step. Each rank therefore sends 2(n−1)/n · S bytes and the time is about
          t ≈ 2(n−1)·α + 2(n−1)/n · S/β        (α: latency per step, β: link bandwidth)
        nccl-tests report algbw = S/t and busbw = algbw · 2(n−1)/n, which for a bandwidth-bound ring is β itself,
        whatever n is — the number to compare with the link.
        """
    let questions = [
        Question("sent-bytes", "Bytes each rank sends in a ring all-reduce of 64 MiB over 4 ranks", unit: "bytes",
                 hint: "Count the blocks: 2(n−1) steps of S/n each."),
        Question("ring-steps", "Steps (sends per rank) of a ring all-reduce over 8 ranks", unit: "steps",
                 hint: "A reduce-scatter of n−1 steps, then an all-gather of n−1 more."),
        Question("busbw-factor", "busbw ÷ algbw for 8 ranks", unit: "ratio",
                 hint: "busbw = algbw · 2(n−1)/n."),
    ]
    let stretch = "On this machine 4 ranks share fewer cores than they need: why does busbw at 4 ranks fall below 2 ranks', and what would a real network with one NIC per rank show instead?"

    func sizes(_ quick: Bool) -> String { quick ? "64KiB:4MiB" : "4KiB:64MiB" }

    func commands(quick: Bool) -> [String] {
        [2, 4].map { "fleet bench collectives --transport zmq --ranks \($0) --algo ring --sizes \(sizes(quick)) --json" }
    }

    func solve() throws -> [String: Double] {
        let s = 64.0 * 1024 * 1024
        return ["sent-bytes": 2 * 3 / 4 * s, "ring-steps": 2 * 7, "busbw-factor": 2 * 7 / 8.0]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        var outcome = LabOutcome()
        var rows: [Int: [(bytes: Double, algbw: Double, busbw: Double)]] = [:]
        for ranks in [2, 4] {
            settings.progress("ring all-reduce over \(ranks) ZeroMQ ranks…")
            let lines = try FleetChild.json(["bench", "collectives", "--transport", "zmq", "--ranks", "\(ranks)", "--algo", "ring",
                                             "--sizes", sizes(settings.quick), "--seconds-per-size", settings.quick ? "0.05" : "0.2", "--json"])
            rows[ranks] = lines.map { (FleetChild.number($0, "bytes"), FleetChild.number($0, "algbw_GBps"), FleetChild.number($0, "busbw_GBps")) }
            if let bad = lines.first(where: { ($0["verified"] as? Bool) != true }) {
                throw LabError("the all-reduce over \(ranks) ranks gave a wrong sum at \(FleetChild.number(bad, "bytes")) bytes")
            }
        }
        let two = rows[2] ?? [], four = rows[4] ?? []
        let table = Table(columns: [("size", 10), ("algbw n=2", 10), ("busbw n=2", 10), ("algbw n=4", 10), ("busbw n=4", 10), ("sent/rank n=4", 13)])
        outcome.table = ["ring all-reduce over ZeroMQ on this machine (GB/s; every sum checked bitwise)", table.header()]
        for (a, b) in zip(two, four) {
            outcome.table.append(table.row([Show.bytes(a.bytes), String(format: "%.2f", a.algbw), String(format: "%.2f", a.busbw),
                                            String(format: "%.2f", b.algbw), String(format: "%.2f", b.busbw), Show.bytes(1.5 * b.bytes)]))
        }
        outcome.figures = [("busbw.svg", SVGChart.lines(title: "ring all-reduce over ZeroMQ: bus bandwidth by message size", unit: "busbw (GB/s)",
                                                        labels: two.map { Show.bytes($0.bytes) },
                                                        series: [("2 ranks", "#4878a8", two.map(\.busbw)), ("4 ranks", "#d08040", four.map(\.busbw))]))]
        outcome.answers = try solve()
        outcome.record = [("busbw_GBps_2", two.map(\.busbw)), ("busbw_GBps_4", four.map(\.busbw)), ("bytes", two.map(\.bytes))]
        return outcome
    }
}
