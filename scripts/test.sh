#!/usr/bin/env bash
# The newcomer's test command, and what CI runs: installs dependencies, then
#   1. checks the format of every C++/CUDA source (clang-format, scripts/check-format.sh);
#   2. builds everything with warnings as errors (the CUDA backend too where nvcc is found) and
#      runs every test (tests that need a GPU skip themselves where none is present);
#   3. builds the CPU code with AddressSanitizer + UndefinedBehaviorSanitizer and runs the CPU
#      tests under them, the fuzz and hostile-input tests among them (without -Werror: GCC's
#      flow warnings see through the sanitizers' instrumentation to sizes no code computes).
# SANITIZE=0 skips step 3 (a quicker local run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
# The openai npm client test must run here, not skip (install-deps installs Node).
export QWENVL_REQUIRE_NODE=1

echo "== format"
scripts/check-format.sh

echo "== build (warnings as errors) and tests"
scripts/build.sh -DQWENVL_WERROR=ON
(cd build && ctest --output-on-failure --timeout 1500 -j "$jobs")

if [ "${SANITIZE:-1}" != "0" ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build and CPU tests"
  cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQWENVL_CUDA=OFF \
        -DQWENVL_BENCH=OFF -DQWENVL_SANITIZE=ON >/dev/null
  ninja -C build-sanitize
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd build-sanitize && ctest --output-on-failure --timeout 3000 -j "$jobs")
fi
