#!/usr/bin/env bash
# The newcomer's main job: installs dependencies, builds, then streams an answer about an image.
#   scripts/demo.sh [MODEL_DIR] [IMAGE] [PROMPT]
# Without a real checkpoint it uses the tiny random-weight test model, which runs the whole
# pipeline but answers with nonsense tokens: point it at models/Qwen2.5-VL-3B-Instruct for words.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
model=${1:-models/Qwen2.5-VL-3B-Instruct}
[ -d "$model" ] || model=tests/fixtures/models/tiny-tied
image=${2:-tests/fixtures/images/chelsea.jpg}
prompt=${3:-Describe this image.}
build/qwenvl inspect --model "$model"
build/qwenvl generate --model "$model" --image "$image" --prompt "$prompt" --max-new-tokens 64
