#!/usr/bin/env bash
# A/B of a CUDA backend switch on the GPU machine: decode tokens/s of the random 3B (or $1)
# checkpoint with the environment variable $2 (default QWENVL_CUDA_UNFUSED, the decode GEMV's
# epilogue fusions) set to each of the values after it (default 0 1), in rounds, three rounds,
# same process settings otherwise:
#   tools/device/ab_decode.sh 3B QWENVL_PREFETCH_MB 0 16 32
# Expects .carry (gpu_session.sh unpacks it) and builds the checkpoint if missing.
set -uo pipefail
cd "$(dirname "$0")/../.."
[ -f .carrypack/carry.tar.xz ] && [ ! -d .carry/bin ] && tar -xJf .carrypack/carry.tar.xz
export LD_LIBRARY_PATH=$PWD/.carry/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
size=${1:-3B}
variable=${2:-QWENVL_CUDA_UNFUSED}
shift $(($# < 2 ? $# : 2))
values=("$@")
[ ${#values[@]} -gt 0 ] || values=(0 1)
model=/tmp/qwenvl-bench/$size
python3 -c "import sys; sys.path.insert(0, '.'); from tools.build_random_checkpoint import ensure_checkpoint; ensure_checkpoint('$size', '$model', device='cuda')" >/dev/null 2>&1
for round in $(seq 1 ${ROUNDS:-3}); do
  for value in "${values[@]}"; do
    env "$variable=$value" .carry/bin/qwenvl generate --model "$model" --device cuda --json \
      --prompt "Write a short story about a lighthouse." --max-new-tokens 256 --temperature 0 \
      --ignore-eos 2>/dev/null | tail -n 1 |
      python3 -c "import json,sys; t=json.load(sys.stdin)['timings']; print('$variable=$value decode %.1f tok/s' % t['decode_tokens_per_s'])"
  done
done
