#!/usr/bin/env bash
# System libraries fleet links against (Debian 12): OpenMPI, ZeroMQ, OpenBLAS.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends libopenmpi-dev openmpi-bin libzmq3-dev libopenblas-dev pkg-config
