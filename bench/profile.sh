#!/usr/bin/env bash
# Where a balancer's time goes under the keep-alive scenario: perf stat (task clock, context
# switches, system calls) and perf record (call graphs) attached to its processes while wrk
# runs. KIND is a bench/lib.sh balancer: sluice-user (the default), sluice-kernel or
# sluice-auto (the kernel relay's work is in softirq and kworkers, outside these processes:
# perf attached to them misses it), haproxy, haproxy-splice or nginx, for comparison.
# Needs sluice built (bench/run.sh does it) and, as root, `apt-get install linux-perf`.
#
#   bash bench/profile.sh   # environment: KIND (sluice-user), WORKERS (2), CONNS (64),
#                           # DURATION (4)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
PY=${PYTHON:-/usr/bin/python3}
SLUICE_BIN=${SLUICE_BIN:-$ROOT/${BUILD_DIR:-build}/master/sluice}
KIND=${KIND:-sluice-user} WORKERS=${WORKERS:-2} CONNS=${CONNS:-64} DURATION=${DURATION:-4}
source "$BENCH_DIR/lib.sh"
command -v perf >/dev/null || die "perf is missing: apt-get install linux-perf"
[[ -x $SLUICE_BIN ]] || die "no sluice binary at $SLUICE_BIN (run bash scripts/build.sh sluice)"
ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/sluice-profile.XXXXXX)
trap 'stop_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

read -r BACKEND1 BACKEND2 PORT < <(free_ports 3)
start_backend "$BACKEND1"
start_backend "$BACKEND2"
start_balancer "$KIND" "$WORKERS" "$PORT"
root_pid=$SPAWNED
url=http://127.0.0.1:$PORT/
wrk -t2 -c"$CONNS" -d1s "$url" >/dev/null  # warm up: the thread pool grows to CONNS
pids=$("$PY" -c "import sys; sys.path.insert(0, '$BENCH_DIR'); import proc
print(','.join(map(str, proc.tree($root_pid))))")

log "perf stat on $KIND (pids $pids) during wrk -t2 -c$CONNS -d${DURATION}s"
perf stat -e task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter -p "$pids" \
  -o "$WORK/stat.txt" -- sleep "$DURATION" &
stat_pid=$!
wrk -t2 -c"$CONNS" -d"${DURATION}s" "$url" | tee "$WORK/wrk.txt"
wait "$stat_pid" || true
cat "$WORK/stat.txt"
requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
awk -v r="$requests" '
  /task-clock/ {gsub(",", "", $1); printf "task-clock per request: %.1f us\n", $1 * 1000 / r}
  /context-switches/ {gsub(",", "", $1); printf "context switches per request: %.2f\n", $1 / r}
  /sys_enter/ {gsub(",", "", $1); printf "system calls per request: %.2f\n", $1 / r}' \
  "$WORK/stat.txt"

log "perf record (call graphs) on $KIND during another run"
perf record -q -F 999 -g -p "$pids" -o "$WORK/perf.data" -- sleep "$DURATION" 2>/dev/null &
record_pid=$!
wrk -t2 -c"$CONNS" -d"${DURATION}s" "$url" >/dev/null
wait "$record_pid" || true
top() { awk '/^ +[0-9.]+%/ && n++ < 25'; }  # reads everything: no SIGPIPE under pipefail
echo "--- self time by symbol ---"
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | top
echo "--- time including callees ---"
perf report -i "$WORK/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | top
