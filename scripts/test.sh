#!/usr/bin/env bash
# Runs fleet's tests (arguments go to `swift test`, e.g. --filter TrainingTests).
#
# The test process computes with the same OpenBLAS kernel fleet's own processes choose here
# (`fleet blas`): OpenBLAS reads OPENBLAS_CORETYPE only when it loads, and in-process
# deterministic tests need a kernel whose products do not change when split. An
# OPENBLAS_CORETYPE already set is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --build-tests
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    kernel=$(.build/release/fleet blas --json | sed -n 's/.*"blas_kernel":"\([A-Za-z0-9]*\)".*/\1/p')
    # FleetTests take it away again for the fleet processes they start (they choose their own).
    if [ -n "$kernel" ]; then export OPENBLAS_CORETYPE="$kernel" FLEET_TEST_PROCESS_CORETYPE="$kernel"; fi
fi
echo "test process OpenBLAS kernel: ${OPENBLAS_CORETYPE:-as OpenBLAS detects}"
exec swift test -c release --skip-build "$@"
