#!/usr/bin/env bash
# The sluice benchmark: sluice, in each of its relays (user, kernel, auto), against HAProxy
# and nginx stream (and direct to a backend), all on this machine. On a fresh Debian 12, as
# root:
#
#   bash bench/run.sh            # full run: writes bench/RESULTS.md, results.png, results.json
#                                # (about half an hour)
#   bash bench/run.sh --smoke    # one short round with small counts (CI): proves the harness
#                                # works, asserts no timing; output in $BENCH_OUT or a tmp dir
#
# Scenarios (wrk, 2 threads): keep-alive with 64 and 1000 connections, a new connection per
# request with 32, keep-alive with 4 (low concurrency: latency), bulk (1 MiB responses,
# keep-alive, 8 connections; also through HAProxy with `option splice-response`). Besides
# each balancer's own CPU per request, the whole machine's (/proc/stat) per request.
#
# Settings (environment): BENCH_WORKERS ("1 2"; smoke: "2"), BENCH_RELAYS (the sluice relays
# to run, each as its own balancer: "user kernel auto"), BENCH_ROUNDS (5),
# BENCH_DURATION (seconds per wrk run: 4), BENCH_HELD (2000), BENCH_HELD_BIG (9000, held with
# N=2 only; 0 to skip), BENCH_HAPROXY_CHECK (0; 1 adds `check` to HAProxy's servers),
# BENCH_OUT (where the results go), SLUICE_BIN (use this binary instead of building),
# BUILD_DIR (scripts/build.sh's, default build), BENCH_KEEP=1 (keep the scratch folder),
# BENCH_NICE (e.g. -15: run everything at that priority, on a machine where other work runs:
# without it the scheduler lets a balancer with a thread per connection (sluice) take more
# CPU from that other work than one with a few event-loop threads, which favours it).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
PY=${PYTHON:-/usr/bin/python3}  # Debian's: the helpers use its standard library only
source "$BENCH_DIR/lib.sh"

smoke=0
for arg in "$@"; do
  case $arg in
    --smoke) smoke=1 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $arg (try --help)" ;;
  esac
done

if ((smoke)); then
  WORKERS_LIST=${BENCH_WORKERS:-2} ROUNDS=1 DURATION=1 PAUSE=0.2
  C_KEEPALIVE=16 C_CLOSE=8 C_MANY=100 HELD=50 HELD_BIG=0
  OUT=${BENCH_OUT:-/tmp/sluice-bench-smoke}
else
  WORKERS_LIST=${BENCH_WORKERS:-1 2} ROUNDS=${BENCH_ROUNDS:-5} DURATION=${BENCH_DURATION:-4}
  PAUSE=1 C_KEEPALIVE=64 C_CLOSE=32 C_MANY=1000
  HELD=${BENCH_HELD:-2000} HELD_BIG=${BENCH_HELD_BIG:-9000}
  OUT=${BENCH_OUT:-$BENCH_DIR}
fi
C_LOW=4 C_BULK=8
RELAYS=${BENCH_RELAYS:-user kernel auto}
SCENARIOS=(keepalive close many low bulk)
SLUICES=()  # sluice-RELAY: one balancer per relay
for relay in $RELAYS; do
  case $relay in
    user | kernel | auto)
      [[ " ${SLUICES[*]} " == *" sluice-$relay "* ]] || SLUICES+=("sluice-$relay") ;;
    *) die "BENCH_RELAYS: unknown relay '$relay' (user, kernel or auto)" ;;
  esac
done
((${#SLUICES[@]})) || die "BENCH_RELAYS is empty"
# haproxy-splice: HAProxy with `option splice-response`; it runs the bulk scenario only
# (see scenario_targets): small responses are not what splicing is for.
BALANCERS=("${SLUICES[@]}" haproxy haproxy-splice nginx)
HELD_KINDS=("${SLUICES[@]}" haproxy nginx)

# wrk's arguments for one scenario into ARGS, the path it fetches into URL_PATH.
scenario_args() {
  URL_PATH=/
  case $1 in
    keepalive) ARGS=(-t2 -c"$C_KEEPALIVE") ;;
    close) ARGS=(-t2 -c"$C_CLOSE" -H 'Connection: close') ;;
    many) ARGS=(-t2 -c"$C_MANY") ;;
    low) ARGS=(-t2 -c"$C_LOW") ;;
    bulk) ARGS=(-t2 -c"$C_BULK") URL_PATH=$BULK_PATH ;;
  esac
  ARGS+=(-d"${DURATION}s")
}

# What one scenario runs on, into TARGETS: direct, then the balancers.
scenario_targets() {
  local kind
  TARGETS=(direct)
  for kind in "${BALANCERS[@]}"; do
    if [[ $kind != haproxy-splice || $1 == bulk ]]; then TARGETS+=("$kind"); fi
  done
}

# --- what it needs: Debian packages, sluice -------------------------------------------------
[[ $(id -u) == 0 ]] || die "run as root (it installs packages with apt-get)"
bash "$ROOT/scripts/deps.sh"
packages=(wrk haproxy nginx libnginx-mod-stream gnuplot-nox curl python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [[ -z ${SLUICE_BIN:-} ]]; then
  log "building sluice"
  (cd "$ROOT" && bash scripts/build.sh sluice >/dev/null)
  build_dir=${BUILD_DIR:-build}
  [[ $build_dir == /* ]] || build_dir=$ROOT/$build_dir
  SLUICE_BIN=$build_dir/master/sluice
fi
[[ -x $SLUICE_BIN ]] || die "no sluice binary at $SLUICE_BIN"

ulimit -n "$(ulimit -Hn)"  # 1000 wrk connections, thousands of held ones
(($(ulimit -n) >= 2 * HELD_BIG + 200)) || {
  log "open-file limit $(ulimit -n) is too low for $HELD_BIG held connections: skipping them"
  HELD_BIG=0
}

AUTOGROUP_NICE=
WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
mkdir -p "$WORK/wrk"
cleanup() {
  stop_all
  if [[ -n $AUTOGROUP_NICE ]]; then echo "$AUTOGROUP_NICE" >/proc/$$/autogroup || true; fi
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "scratch folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Priority: the process's nice (children inherit it) and, where the kernel groups tasks by
# session (autogroup: nice then only ranks tasks within a session), the session's, put back
# at exit.
if [[ -n ${BENCH_NICE:-} ]]; then
  renice -n "$BENCH_NICE" -p $$ >/dev/null
  if [[ $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null) == 1 ]]; then
    AUTOGROUP_NICE=$(awk '{print $3}' /proc/$$/autogroup)
    echo "$BENCH_NICE" >/proc/$$/autogroup
  fi
fi

BENCH_LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
log "load average before: $BENCH_LOAD_START (other work on the machine skews the results)"

# --- backends and balancers -----------------------------------------------------------------
read -r BACKEND1 BACKEND2 < <(free_ports 2)
start_backend "$BACKEND1"
DIRECT_PID=$SPAWNED  # "direct" goes to backend 1 alone; its CPU is the backend's own
start_backend "$BACKEND2"

declare -A PID PORT  # [kind-N] of each running balancer
start_all_balancers() {
  local n kind ports i=0
  read -r -a ports < <(free_ports $((${#BALANCERS[@]} * $(wc -w <<<"$WORKERS_LIST"))))
  for n in $WORKERS_LIST; do
    for kind in "${BALANCERS[@]}"; do
      PORT[$kind-$n]=${ports[i++]}
      start_balancer "$kind" "$n" "${PORT[$kind-$n]}"
      PID[$kind-$n]=$SPAWNED
    done
  done
}

# --- throughput: rounds interleave the targets ------------------------------------------------
start_all_balancers
log "throughput: N in {$WORKERS_LIST}, $ROUNDS round(s) of ${SCENARIOS[*]}, ${DURATION}s each"
for ((round = 1; round <= ROUNDS; round++)); do
  for n in $WORKERS_LIST; do
    for scenario in "${SCENARIOS[@]}"; do
      scenario_args "$scenario"
      scenario_targets "$scenario"
      for target in "${TARGETS[@]}"; do
        if [[ $target == direct ]]; then pid=$DIRECT_PID port=$BACKEND1
        else pid=${PID[$target-$n]} port=${PORT[$target-$n]}; fi
        kill -0 "$pid" 2>/dev/null || die "$target (N=$n) is gone: see $WORK/*.log"
        log "round $round/$ROUNDS N=$n $scenario $target"
        run_wrk "$WORK/wrk/$n-$scenario-$target-$round.txt" "$pid" \
          "http://127.0.0.1:$port$URL_PATH" "${ARGS[@]}"
        sleep "$PAUSE"
      done
    done
  done
done
for n in $WORKERS_LIST; do
  for kind in "${BALANCERS[@]}"; do stop "${PID[$kind-$n]}"; done
done

# --- held connections: each balancer freshly started (HAProxy once: splicing is moot here) ----
held_run() {
  local kind=$1 n=$2 count=$3 port
  port=$(free_ports 1)
  start_balancer "$kind" "$n" "$port"
  log "held: $count connections through $kind (N=$n)"
  "$PY" "$BENCH_DIR/holder.py" --port "$port" --count "$count" --pid "$SPAWNED" \
    --label balancer="$kind" --label workers="$n" >>"$WORK/held.jsonl" ||
    log "holder failed for $kind (N=$n)"
  tail -n1 "$WORK/held.jsonl" >&2
  stop "$SPAWNED"
  sleep "$PAUSE"
}
for n in $WORKERS_LIST; do
  for kind in "${HELD_KINDS[@]}"; do held_run "$kind" "$n" "$HELD"; done
done
if ((HELD_BIG > 0)) && [[ " $WORKERS_LIST " == *" 2 "* ]]; then
  for kind in "${HELD_KINDS[@]}"; do held_run "$kind" 2 "$HELD_BIG"; done
fi

# --- report ---------------------------------------------------------------------------------
stop_all
command="bash bench/run.sh"
if ((smoke)); then command+=" --smoke"; fi
for v in BENCH_WORKERS BENCH_RELAYS BENCH_ROUNDS BENCH_DURATION BENCH_HELD BENCH_HELD_BIG \
  BENCH_HAPROXY_CHECK BENCH_NICE; do
  if [[ -n ${!v:-} ]]; then command="$v=\"${!v}\" $command"; fi
done
BENCH_COMMAND=$command BENCH_SMOKE=$smoke BENCH_ROUNDS=$ROUNDS BENCH_DURATION=$DURATION \
  BENCH_SCENARIOS="${SCENARIOS[*]}" BENCH_C_KEEPALIVE=$C_KEEPALIVE BENCH_C_CLOSE=$C_CLOSE \
  BENCH_C_MANY=$C_MANY BENCH_C_LOW=$C_LOW BENCH_C_BULK=$C_BULK SLUICE_BIN=$SLUICE_BIN \
  BENCH_LOAD_START=$BENCH_LOAD_START BENCH_DATE=$BENCH_DATE \
  "$PY" "$BENCH_DIR/report.py" "$WORK" "$OUT"
log "results: $OUT/RESULTS.md, $OUT/results.png, $OUT/results.json"
