#!/usr/bin/env bash
# Copies the shared libraries a binary built here needs but the GPU machine (Ubuntu 24.04) lacks
# into .carry/lib, to travel with the build (device run's `carry`) and be found through
# LD_LIBRARY_PATH there. glibc, libstdc++, CUDA, OpenBLAS, libpng, OpenSSL 3, zlib, xz and bzip2
# are not copied: the GPU machine has the same sonames, newer. The libraries FFmpeg links for what qwenvl never uses (encoders,
# network protocols, hardware decoding, subtitles) are replaced by stubs (stub_library.py), and
# what only they needed is dropped: carried whole they exceed the device call's size limit.
set -euo pipefail
cd "$(dirname "$0")/../.."
binary=${1:-build/qwenvl}
lib_dir=.carry/lib
mkdir -p "$lib_dir"
ldd "$binary" | awk '/=> \//{print $3}' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libstdc++*|libgcc_s*) ;;
    libcuda*|libcublas*|libcudart*|libcudnn*|libnccl*) ;;
    libopenblas*|libgfortran*|libquadmath*|libpng16*) ;;  # the GPU machine has these sonames
    libssl.so.3|libcrypto.so.3|libz.so.1|liblzma.so.5|libbz2.so.1.0) ;;
    *) cp -L "$lib" "$lib_dir"/ ;;
  esac
done

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }

# FFmpeg's own libraries and the decoders and containers qwenvl reads through them stay real.
real_ffmpeg_deps=" libavcodec.so.59 libavformat.so.59 libavutil.so.57 libswresample.so.4
  libswscale.so.6 libdav1d.so.6 libwebp.so.7 libwebpmux.so.3 libsoxr.so.0 libgomp.so.1 "
stubbed=" "
for ffmpeg_lib in libavcodec libavformat libavutil libswresample libswscale; do
  for dep in $(needed "$lib_dir/$ffmpeg_lib".so.*); do
    [ -f "$lib_dir/$dep" ] || continue
    case "$real_ffmpeg_deps$stubbed" in *" $dep "*) continue ;; esac
    stubbed+="$dep "
    real=$(mktemp) && mv "$lib_dir/$dep" "$real"
    python3 tools/device/stub_library.py "$real" "$lib_dir"
    rm -f "$real"
  done
done

# Keep only what the binary still reaches.
declare -A reached=()
queue=("$binary")
while [ ${#queue[@]} -gt 0 ]; do
  current=${queue[0]}; queue=("${queue[@]:1}")
  for dep in $(needed "$current"); do
    if [ -f "$lib_dir/$dep" ] && [ -z "${reached[$dep]:-}" ]; then
      reached[$dep]=1; queue+=("$lib_dir/$dep")
    fi
  done
done
for lib in "$lib_dir"/*; do
  [ -n "${reached[$(basename "$lib")]:-}" ] || rm -f "$lib"
done
ls "$lib_dir"
