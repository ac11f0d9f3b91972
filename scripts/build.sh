#!/usr/bin/env bash
# Configures and builds qwenvl into build/. The CUDA backend is built when nvcc is found
# (PATH or /usr/local/cuda); otherwise the build is CPU-only.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
ninja -C build
