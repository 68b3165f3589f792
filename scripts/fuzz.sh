#!/usr/bin/env bash
# The long fuzz run: 100,000 seeded mutations of the shipped scenarios and 100,000 of every
# subcommand's command line (the suite runs 10,000 of each). Pass a seed to vary the cases:
#   scripts/fuzz.sh [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --build-tests
export FLEET_FUZZ_CASES="${FLEET_FUZZ_CASES:-100000}" FLEET_FUZZ_SEED="${1:-20261203}"
exec swift test -c release --skip-build --filter "ScenarioFuzzTests|FlagFuzzTests"
