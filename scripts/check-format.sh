#!/usr/bin/env bash
# Fails when a C++/CUDA source under src/, tests/ or bench/ differs from what clang-format makes of
# it with the repository's .clang-format. `scripts/check-format.sh --fix` reformats them instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files -- 'src/*' 'tests/*' 'bench/*' |
                     grep -E '\.(c|cc|cpp|h|hpp|cu|cuh)$')
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
else
  clang-format --dry-run --Werror "${files[@]}"
fi
