#!/usr/bin/env bash
# The GPU machine receives the tracked files of this checkout, at most 64 MiB, and the committed
# fixtures alone are larger. The device scripts regenerate the fixtures they need there
# (tools/make_reference.py), so before a device call `slim_index.sh on` takes the large fixtures
# out of the index and ignores them (the files stay on disk); `slim_index.sh off` puts the index
# back as HEAD has it. Never commit while it is on.
set -euo pipefail
cd "$(dirname "$0")/../.."
paths=(tests/fixtures/images tests/fixtures/models tests/fixtures/chat
       tests/fixtures/tokenizer/decode.jsonl)
exclude=.git/info/exclude
begin="# slim_index.sh begin" end="# slim_index.sh end"
case "${1:-}" in
  on)
    git rm -r -q --cached "${paths[@]}"
    { echo "$begin"; for p in "${paths[@]}"; do echo "/$p"; done; echo "$end"; } >>"$exclude"
    ;;
  off)
    git reset -q -- "${paths[@]}"
    sed -i "/^$begin\$/,/^$end\$/d" "$exclude"
    ;;
  *) echo "usage: $0 on|off" >&2; exit 2 ;;
esac
git status --short -- tests/fixtures | head -3
