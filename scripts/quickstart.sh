#!/usr/bin/env bash
# Fresh machine to first run: system libraries, a release build, then gpt-tiny on the built-in corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release
.build/release/fleet train gpt-tiny "$@"
