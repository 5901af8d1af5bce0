#!/usr/bin/env bash
# Installs what the test suite needs (when missing) and runs it. The same command CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

cargo test --workspace "$@"
