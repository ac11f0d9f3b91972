#!/usr/bin/env bash
# Everything qwenvl checks and times on the GPU machine, as stages of one device call:
#   tools/device/gpu_session.sh STAGE [STAGE...]      (from the repository root, there)
# Stages: info ops tiny video videobench videobench3B videobench7B streamed offload3B offload7B
#         offload32B-16L kernels host logits3B logits7B awq3B awq7B quant3B quant7B quant32B-8L
#         bench3B bench7B quick3B quick7B profile3B profile7B activations vision_rounding cpu
#         fp8_3B fp8_7B pipeline cpuoffload3B cpuoffload7B serve3B serve7B batch3B batch7B
#  (awqNB: logitsNB with qwenvl on a 4-bit AWQ copy, transformers on its dequantized twin;
#   fp8_NB: qwenvl --quantize fp8 against qwenvl bf16, logits, greedy agreement, decode and TTFT,
#   bench/fp8_bench.py;
#   quantNB: bench/quantized_bench.py for VARIANTS, bf16,awq,fp8 by default; FP32_SIZES=3B,7B: the
#   logits stages add an fp32 transformers reference for those sizes, 3B by default; activations:
#   tools/study_activations.py for SIZES, 3B,7B by default; vision_rounding:
#   tools/study_vision_rounding.py for SIZE, 3B by default, DEPTHS: vision towers cut to these
#   block counts too)
# (videobench: bench/video_bench.py's test videos made with OpenCV, decode + preprocess of the 60 s
#  1080p one beside OpenCV + transformers' video processor, and the peak RSS on the 10-minute one;
#  videobenchNB: time to first token of the 30 s 720p video, qwenvl and transformers;
#  pipeline: the streamed and pipeline model tests with CUDA as backend 0 and the CPU beside it;
#  cpuoffloadNB: generate resident, streamed under 4 GiB, and with layers on the CPU under 4 and
#  2 GiB, after quickNB built the checkpoint;
#  serveNB: bench/serve_bench.py, qwenvl serve under load at CONCURRENCY (1,8,32,128 by default)
#  within SERVE_BUDGET_S seconds (400), beside transformers one request at a time;
#  batchNB: bench_batch, N text requests through the batch runner at SEQUENCES (1,8,32,128),
#  then again at PROFILE_SEQUENCES (8 128) with QWENVL_PROFILE_OPS=1;
#  quickNB: qwenvl's rows of the GPU benchmark only; profileNB: per-op GPU time of a 1 MP image
#  prompt and of a short decode, QWENVL_PROFILE_OPS=1; both after benchNB or quickNB built the
#  checkpoint and the images)
# Expects the programs built here in .carry/bin and the libraries the GPU machine lacks in
# .carry/lib, or both packed in .carrypack/carry.tar.xz (tools/device/prepare_carry.sh). Logs go to $OUT; a summary table is printed last.
# The benchmark and study stages write <gpu>-<benchmark>.md and .json into $OUT (quickNB into
# $OUT/quick), named as in bench/results: copy them over the files there.
set -uo pipefail
cd "$(dirname "$0")/../.."
[ -f .carrypack/carry.tar.xz ] && [ ! -d .carry/bin ] && tar -xJf .carrypack/carry.tar.xz
export LD_LIBRARY_PATH=$PWD/.carry/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1
[ -f .carry/COMMIT ] && export QWENVL_COMMIT=$(cat .carry/COMMIT)
OUT=${OUT:-/tmp/qwenvl-out}
mkdir -p "$OUT"
bin=$PWD/.carry/bin
summary=()

note() { summary+=("$1"); echo "== $1"; }

run_stage() {
  local name=$1; shift
  local start=$SECONDS
  "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  note "$name: exit $rc in $((SECONDS - start)) s"
}

stage_info() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  ldd "$bin/qwenvl" | grep -i "not found" || echo "all libraries found"
  git rev-parse --short HEAD 2>/dev/null || true
}

tiny_fixtures() {  # the tiny checkpoints and their fp32 references, regenerated with fixed seeds
  mkdir -p /tmp/fx && cp -r tests/fixtures/tokenizer /tmp/fx/
  python3 tools/make_reference.py --out /tmp/fx --only tiny_models,model_refs || return 1
  # The committed fixtures travel too: say whether this machine reproduces them.
  if diff -rq tests/fixtures/models /tmp/fx/models; then
    echo "regenerated tiny models: identical to the committed ones"
  else
    echo "regenerated tiny models differ from the committed ones (listed above)"
  fi
}

stage_tiny() {
  tiny_fixtures || return 1
  local rc=0
  for device in cuda:bf16 cuda:fp16; do
    echo "---- $device"
    QWENVL_TEST_DEVICE=$device QWENVL_TEST_FIXTURES=/tmp/fx \
      "$bin/test_model" --gtest_filter='TinyModels*:AwqModel*:Fp8Model*' || rc=1
  done
  return $rc
}

stage_video() {  # our sampled frames and pixel values against qwen-vl-utils + torchvision
  python3 tools/device/video_checks.py make --qwenvl "$bin/qwenvl" --out /tmp/video_dumps &&
    python3 tools/device/video_checks.py check --dumps /tmp/video_dumps
}

stage_cpu_offload() {  # $1: model size (after quickNB built it). Resident, streamed, CPU layers.
  local model=/tmp/qwenvl-bench/$1 image=/tmp/qwenvl-bench/images/ttft_1280x960.jpg
  for mode in "resident" "stream 4GiB" "cpu 4GiB" "cpu 2GiB"; do
    set -- $mode
    local flags=()
    [ "$1" != resident ] && flags=(--offload "$1" --max-memory "cuda:0=$2")
    for prompt in text image; do
      local extra=(--prompt "Write a short story about a lighthouse keeper." --max-new-tokens 64)
      [ $prompt = image ] && extra=(--image "$image" --prompt "Describe this image." --max-new-tokens 1)
      echo "---- $mode, $prompt"
      "$bin/qwenvl" generate --model "$model" --device cuda --json --temperature 0 --ignore-eos \
        "${flags[@]}" "${extra[@]}" 2>/dev/null | python3 -c '
import json, sys
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
t, m = r["timings"], r["memory_plan"]
print("decode %.1f tok/s, vision %.0f ms, prefill %.0f ms, cpu layers %d, streamed layers %d, "
      "gpu used %.2f GiB, peak rss %.2f GiB, tokens %s" % (t["decode_tokens_per_s"], t["vision_ms"],
      t["prefill_ms"], m["cpu_layers"], m["streamed_layers"],
      (r["gpu_memory"] or {}).get("used_since_context_bytes", 0) / 2**30,
      r["peak_memory_bytes"]["cpu"] / 2**30, r["tokens"][:12]))'
    done
  done
}

stage_host() {  # tokenizer and preprocessing speeds on this machine's CPU, beside the references'
  "$bin/bench_tokenizer" --corpus tests/fixtures/tokenizer/corpus.jsonl
  "$bin/bench_preprocess"
  mkdir -p /tmp/fx && cp -r tests/fixtures/tokenizer /tmp/fx/ 2>/dev/null
  RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false python3 tools/make_reference.py --out /tmp/fx \
    --only tokenizer_bench,image_bench --bench-out "$OUT/reference_bench.json"
}

stage_profile() {  # $1: model size. One table per phase (QWENVL_PROFILE_OPS), its top rows.
  local model=/tmp/qwenvl-bench/$1
  local top='/op profile/ { n = 0 } { if (n++ < 30) print }'
  echo "---- 1280x960 image, first token"
  QWENVL_PROFILE_OPS=1 "$bin/qwenvl" generate --model "$model" --device cuda --json \
    --image /tmp/qwenvl-bench/images/ttft_1280x960.jpg --prompt "Describe this image." \
    --max-new-tokens 1 --temperature 0 --ignore-eos 2>&1 >/dev/null | awk "$top"
  echo "---- text, 64 tokens"
  QWENVL_PROFILE_OPS=1 "$bin/qwenvl" generate --model "$model" --device cuda --json \
    --prompt "Write a short story about a lighthouse." --max-new-tokens 64 --temperature 0 \
    --ignore-eos 2>&1 >/dev/null | awk "$top"
}

stage_batch() {  # $1: model size
  local model=/tmp/qwenvl-bench/$1 gbs=3350
  python3 -c "from tools.build_random_checkpoint import ensure_checkpoint as e; e('$1', '$model', device='cuda')"
  nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && gbs=4800
  "$bin/bench_batch" --model "$model" --sequences "${SEQUENCES:-1,8,32,128}" --bandwidth-gbs "$gbs"
  local n
  for n in ${PROFILE_SEQUENCES:-8 128}; do
    echo "---- per-op GPU time at $n sequences"
    QWENVL_PROFILE_OPS=1 "$bin/bench_batch" --model "$model" --sequences "$n" --new 160 \
      --bandwidth-gbs "$gbs" 2>&1 | awk '/op profile/ { n = 0 } { if (n++ < 28) print }'
  done
}

stage_ncu() {  # $1: model size. Each kernel's own GPU time (no launch gaps, no overlap), as CSV.
  local model=/tmp/qwenvl-bench/$1 ncu_bin
  ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -n1)
  [ -n "$ncu_bin" ] || { echo "no ncu here"; return 1; }
  "$ncu_bin" --clock-control none --metrics gpu__time_duration.sum --csv --page raw \
    "$bin/qwenvl" generate --model "$model" --device cuda --json \
    --image /tmp/qwenvl-bench/images/ttft_1280x960.jpg --prompt "Describe this image." \
    --max-new-tokens 1 --temperature 0 --ignore-eos >"$OUT/ncu_image_$1.csv" 2>"$OUT/ncu_image_$1.err"
  echo "image: rc $? $(wc -l <"$OUT/ncu_image_$1.csv") lines"
  "$ncu_bin" --clock-control none --metrics gpu__time_duration.sum --csv --page raw \
    "$bin/qwenvl" generate --model "$model" --device cuda --json \
    --prompt "Write a short story about a lighthouse." --max-new-tokens 4 --temperature 0 \
    --ignore-eos >"$OUT/ncu_decode_$1.csv" 2>"$OUT/ncu_decode_$1.err"
  echo "decode: rc $? $(wc -l <"$OUT/ncu_decode_$1.csv") lines"
  tail -n 3 "$OUT/ncu_image_$1.err"
}

for stage in "$@"; do
  case $stage in
    info) stage_info ;;
    ops) run_stage ops "$bin/test_backend" --gtest_filter='Cuda*' ;;
    tiny) run_stage tiny stage_tiny ;;
    streamed) run_stage streamed env QWENVL_TEST_DEVICE=cuda:bf16 "$bin/test_model" \
              --gtest_filter='StreamedWeights*' ;;
    pipeline) run_stage pipeline env QWENVL_TEST_DEVICE=cuda:bf16 "$bin/test_model" \
              --gtest_filter='StreamedWeights*:Pipeline*' ;;
    cpuoffload3B|cpuoffload7B) run_stage "$stage" stage_cpu_offload "${stage#cpuoffload}" ;;
    offload3B|offload7B|offload32B-16L) run_stage "$stage" python3 bench/offload_bench.py \
              --models "${stage#offload}" --qwenvl "$bin/qwenvl" --ckpt-root /tmp/qwenvl-bench \
              --results-dir "$OUT" ;;
    video) run_stage video stage_video ;;
    quant3B|quant7B|quant32B-8L) run_stage "$stage" python3 bench/quantized_bench.py \
              --models "${stage#quant}" --variants "${VARIANTS:-bf16,awq,fp8}" \
              --qwenvl "$bin/qwenvl" --ckpt-root /tmp/qwenvl-bench --results-dir "$OUT" ;;
    videobench) run_stage videobench python3 bench/video_bench.py --parts videos,preprocess,rss \
              --qwenvl "$bin/qwenvl" --ckpt-root /tmp/qwenvl-bench --results-dir "$OUT" ;;
    videobench3B|videobench7B) run_stage "$stage" python3 bench/video_bench.py --parts ttft \
              --models "${stage#videobench}" --qwenvl "$bin/qwenvl" --ckpt-root /tmp/qwenvl-bench \
              --results-dir "$OUT" ;;
    kernels) run_stage kernels "$bin/bench_cuda_ops" ;;
    host) run_stage host stage_host ;;
    logits3B|logits7B) run_stage "$stage" python3 tools/check_full_size_logits.py \
              --sizes "${stage#logits}" --qwenvl "$bin/qwenvl" --ckpt-root /tmp/qwenvl-bench \
              --fp32-sizes "${FP32_SIZES:-3B}" --results-dir "$OUT" ;;
    awq3B|awq7B) run_stage "$stage" python3 tools/check_full_size_logits.py \
              --sizes "${stage#awq}" --qwenvl "$bin/qwenvl" --ckpt-root /tmp/qwenvl-bench \
              --fp32-sizes "" --awq-group 128 --results-dir "$OUT" ;;
    fp8_3B|fp8_7B) run_stage "$stage" python3 bench/fp8_bench.py --sizes "${stage#fp8_}" \
              --qwenvl "$bin/qwenvl" --ckpt-root /tmp/qwenvl-bench --results-dir "$OUT" ;;
    bench3B|bench7B) run_stage "$stage" python3 bench/gpu_bench.py --models "${stage#bench}" \
              --qwenvl "$bin/qwenvl" --ckpt-root /tmp/qwenvl-bench --results-dir "$OUT" ;;
    quick3B|quick7B) run_stage "$stage" python3 bench/gpu_bench.py --models "${stage#quick}" \
              --engines qwenvl --only ttft,images,decode --qwenvl "$bin/qwenvl" \
              --ckpt-root /tmp/qwenvl-bench --results-dir "$OUT/quick" ;;
    serve3B|serve7B) run_stage "$stage" python3 bench/serve_bench.py --models "${stage#serve}" \
              --concurrency "${CONCURRENCY:-1,8,32,128}" --qwenvl "$bin/qwenvl" \
              --ckpt-root /tmp/qwenvl-bench --budget-s "${SERVE_BUDGET_S:-400}" --results-dir "$OUT" ;;
    profile3B|profile7B) run_stage "$stage" stage_profile "${stage#profile}" ;;
    batch3B|batch7B) run_stage "$stage" stage_batch "${stage#batch}" ;;
    ncu3B|ncu7B) run_stage "$stage" stage_ncu "${stage#ncu}" ;;
    activations) run_stage activations python3 tools/study_activations.py \
              --sizes "${SIZES:-3B,7B}" --qwenvl "$bin/qwenvl" --ckpt-root /tmp/qwenvl-bench \
              --results-dir "$OUT" ;;
    vision_rounding) run_stage vision_rounding python3 tools/study_vision_rounding.py \
              --size "${SIZE:-3B}" --ckpt-root /tmp/qwenvl-bench --qwenvl "$bin/qwenvl" \
              --depths "${DEPTHS:-}" --results-dir "$OUT" ;;
    cpu) run_stage cpu python3 bench/cpu_bench.py --qwenvl "$bin/qwenvl" \
              --ckpt-root /tmp/qwenvl-bench --results-dir "$OUT" ;;
    *) note "unknown stage $stage" ;;
  esac
done
printf '%s\n' "${summary[@]}"
