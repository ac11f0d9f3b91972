#!/usr/bin/env bash
# Builds qwenvl with CUDA here (build-device/, or $BUILD_DIR: an existing CUDA build such as
# build/) and fills .carry/ for a device call: the programs
# in .carry/bin, and in .carry/lib the shared libraries the GPU machine lacks. The programs hold
# the CUDA kernels several times over, so the folder travels packed: .carrypack/carry.tar.xz
# (carry [".carrypack"]; gpu_session.sh unpacks it). bench_cuda_ops (the `kernels` stage) travels
# only with KERNELS=1, bench_batch (the batchNB stages) only with BATCH=1: the pack and the
# tracked files must stay within a device call's 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/cuda/bin:$PATH
build=${BUILD_DIR:-build-device}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$build" qwenvl test_backend test_model bench_cuda_ops bench_tokenizer bench_preprocess bench_batch
rm -rf .carry && mkdir -p .carry/bin
# BINS: the test programs to take along (default both; each is ~6 MiB packed).
for program in ${BINS:-test_backend test_model}; do cp "$build/tests/$program" .carry/bin/; done
cp "$build"/qwenvl "$build"/bench_tokenizer "$build"/bench_preprocess .carry/bin/
[ "${BATCH:-0}" = 1 ] && cp "$build"/bench_batch .carry/bin/
[ "${KERNELS:-0}" = 1 ] && cp "$build"/bench_cuda_ops .carry/bin/
git rev-parse --short HEAD >.carry/COMMIT
tools/device/pack_runtime.sh .carry/bin/qwenvl
strip .carry/bin/*
# xz -9's 64 MiB window spans several programs, so the kernels they share are packed once.
mkdir -p .carrypack && XZ_OPT="-9 -T2" tar -cJf .carrypack/carry.tar.xz .carry
du -sh .carry .carrypack/carry.tar.xz
