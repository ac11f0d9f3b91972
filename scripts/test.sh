#!/usr/bin/env bash
# The newcomer's test command: installs dependencies, builds everything, runs every test.
# Tests that need a GPU skip themselves where none is present.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 1500 -j "$(nproc)"
