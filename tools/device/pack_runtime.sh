#!/usr/bin/env bash
# Copies the shared libraries a binary built here needs but the GPU machine (Ubuntu 24.04) lacks
# into .carry/lib, to travel with the build (device run's `carry`) and be found through
# LD_LIBRARY_PATH there. glibc, libstdc++, CUDA, OpenBLAS and libpng are not copied: the GPU
# machine has newer ones.
set -euo pipefail
cd "$(dirname "$0")/../.."
binary=${1:-build/qwenvl}
mkdir -p .carry/lib
ldd "$binary" | awk '/=> \//{print $3}' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libstdc++*|libgcc_s*) ;;
    libcuda*|libcublas*|libcudart*|libcudnn*|libnccl*) ;;
    libopenblas*|libgfortran*|libquadmath*|libpng16*) ;;  # the GPU machine has these sonames
    *) cp -L "$lib" .carry/lib/ ;;
  esac
done
ls .carry/lib
