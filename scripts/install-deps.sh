#!/usr/bin/env bash
# Installs the Debian 12 packages qwenvl builds against. Safe to re-run.
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config
          nlohmann-json3-dev libutf8proc-dev libjpeg62-turbo-dev libpng-dev libwebp-dev
          libopenblas-dev libgtest-dev clang-format libcpp-httplib-dev
          libavformat-dev libavcodec-dev libswscale-dev libavutil-dev libssl-dev
          nodejs)
# npm drives the server test with the official openai client; a Node from elsewhere (NodeSource)
# brings its own npm and conflicts with Debian's package.
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
