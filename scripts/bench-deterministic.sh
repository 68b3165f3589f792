#!/usr/bin/env bash
# What --deterministic costs: tokens/s of the default and the deterministic mode, run back to
# back for each layout on this machine, and their ratio. Usage: scripts/bench-deterministic.sh [model] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-gpt-tiny}
steps=${2:-30}
fleet=.build/release/fleet
[ -x "$fleet" ] || swift build -c release >/dev/null
export OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo
tokens() { "$fleet" train "$model" --steps "$steps" --json --eval-batches 1 "$@" 2>/dev/null | tail -1 | sed -n 's/.*"tokens_per_s":\([0-9.]*\).*/\1/p'; }
"$fleet" blas | sed -n 1p
printf "%-22s %14s %18s %8s\n" "layout ($model)" "default tok/s" "deterministic tok/s" "ratio"
for layout in "" "--dp 2" "--dp 4" "--tp 2" "--tp 4" "--pp 2" "--pp 4" "--dp 2 --tp 2" "--dp 2 --pp 2" "--tp 2 --pp 2"; do
    default=$(tokens $layout || true)
    exact=$(tokens $layout --deterministic || true)
    if [ -z "$default" ] || [ -z "$exact" ]; then
        printf "%-22s %14s %18s %8s\n" "$layout" "—" "—" "(layout does not fit $model)"
        continue
    fi
    printf "%-22s %14.0f %18.0f %7.2fx\n" "${layout:-one process}" "$default" "$exact" "$(echo "$exact / $default" | bc -l)"
done
