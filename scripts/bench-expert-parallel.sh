#!/usr/bin/env bash
# Expert parallelism against plain data parallelism on gpt-tiny-moe: tokens/s, median step, the
# step's all-to-all time and bytes, data-parallel bytes and state per rank, each pair of layouts run
# back to back (alternating, `rounds` times) and the ep run's tokens/s as a ratio of its pair's.
# Usage: scripts/bench-expert-parallel.sh [steps] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-30}
rounds=${2:-2}
fleet=.build/release/fleet
[ -x "$fleet" ] || swift build -c release >/dev/null
export OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo
run() {
    "$fleet" train gpt-tiny-moe --steps "$steps" --json --eval-batches 1 "$@" 2>/dev/null | python3 -c '
import json, statistics, sys
rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
steps = [r for r in rows if "loss" in r and "step" in r][5:]
summary = [r for r in rows if "final_loss" in r][0]
median = lambda key: statistics.median(r.get(key, 0) for r in steps)
print("%.0f %.1f %.2f %.2f %.2f %.1f" % (summary["tokens_per_s"], 1000 * median("step_s"), 1000 * median("alltoall_s"),
      median("alltoall_bytes") / 1e6, steps[0]["dp_bytes"] / 1e6, summary["state_bytes_per_rank"] / 1e6))'
}
"$fleet" blas | sed -n 1p
printf "%-14s %8s %9s %8s %8s %7s %9s %8s\n" "layout" "tok/s" "step ms" "a2a ms" "a2a MB" "dp MB" "state MB" "ratio"
for pair in "--dp 2|--dp 2 --ep 2" "--dp 4|--dp 4 --ep 2" "--dp 4|--dp 4 --ep 4"; do
    plain=${pair%|*}; split=${pair#*|}
    for round in $(seq "$rounds"); do
        read -r a_tok a_step a_a2a a_bytes a_dp a_state <<< "$(run $plain)"
        read -r b_tok b_step b_a2a b_bytes b_dp b_state <<< "$(run $split)"
        printf "%-14s %8s %9s %8s %8s %7s %9s %8s\n" "$plain" "$a_tok" "$a_step" "$a_a2a" "$a_bytes" "$a_dp" "$a_state" ""
        printf "%-14s %8s %9s %8s %8s %7s %9s %8.2f\n" "$split" "$b_tok" "$b_step" "$b_a2a" "$b_bytes" "$b_dp" "$b_state" \
            "$(python3 -c "print($b_tok / $a_tok)")"
    done
done
