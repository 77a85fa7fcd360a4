#!/usr/bin/env bash
# The README's main command: builds sluice and runs the seed's demo on this machine: two
# spells-api instances (127.0.0.1:8001 and :8002) and sluice in front of them on
# 127.0.0.1:8080, with the embedded default config conf/demo.toml. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh sluice spells-api
bin=${BUILD_DIR:-build}
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
"$bin/demo/spells-api/spells-api" --host 127.0.0.1 --port 8001 --name http-api-1 & pids+=($!)
"$bin/demo/spells-api/spells-api" --host 127.0.0.1 --port 8002 --name http-api-2 & pids+=($!)
echo "sluice on 127.0.0.1:8080; try: curl -i 127.0.0.1:8080/api/spells   (Ctrl-C stops)" >&2
"$bin/master/sluice" --config conf/demo.toml "$@" & pids+=($!)
wait "${pids[-1]}"
