# Helpers for bench/run.sh: free ports, starting and stopping the processes it owns, wrk.
# Sourced, not run. Expects BENCH_DIR (this folder), WORK (a scratch folder) and PY.

STARTED_PIDS=()  # every process started here, stopped by stop_all (run.sh's EXIT trap)
BULK_PATH=/static/1MiB  # the bulk scenario's file: 1 MiB of random bytes, on every backend

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# free_ports K: K distinct free loopback ports (all bound at once, then released).
free_ports() {
  "$PY" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# render TEMPLATE OUT KEY=VALUE...: replaces each @KEY@ in TEMPLATE.
render() {
  local template=$1 out=$2 kv args=()
  shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$template" >"$out"
}

# wait_http PORT [SECONDS]: until GET / on 127.0.0.1:PORT answers 200 "ok".
wait_http() {
  local port=$1 deadline=$((SECONDS + ${2:-10}))
  until [[ $(curl -s --max-time 1 "http://127.0.0.1:$port/" 2>/dev/null) == ok ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# spawn NAME CMD...: starts CMD in the background, logs to $WORK/NAME.log; sets SPAWNED.
spawn() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  SPAWNED=$!
  STARTED_PIDS+=("$SPAWNED")
}

# stop PID: SIGTERM, then SIGKILL after 5 s; only for pids started by spawn.
stop() {
  local pid=$1 i rest=()
  for i in "${STARTED_PIDS[@]}"; do [[ $i == "$pid" ]] || rest+=("$i"); done
  STARTED_PIDS=("${rest[@]}")
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_all() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do stop "$pid"; done
}

# check_bulk PORT: GET $BULK_PATH on 127.0.0.1:PORT returns the file, byte for byte.
check_bulk() {
  curl -sf --max-time 10 "http://127.0.0.1:$1$BULK_PATH" | cmp -s - "$WORK/bulk.bin"
}

# start_backend PORT: nginx answering 200 "ok", and the bulk file; sets SPAWNED.
start_backend() {
  local port=$1 dir=$WORK/backend-$1
  mkdir -p "$dir/static"
  [[ -f $WORK/bulk.bin ]] || head -c 1048576 /dev/urandom >"$WORK/bulk.bin"
  cp "$WORK/bulk.bin" "$dir$BULK_PATH"
  chmod a+x "$WORK"  # nginx's workers (an unprivileged user) must reach the file
  render "$BENCH_DIR/conf/backend.conf.in" "$dir/nginx.conf" DIR="$dir" PORT="$port"
  spawn "backend-$port" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
  wait_http "$port" || die "backend on port $port did not start (see $dir/error.log)"
  check_bulk "$port" || die "backend on port $port does not serve $BULK_PATH"
}

# start_balancer KIND WORKERS PORT: one balancer in front of BACKEND1/BACKEND2; sets SPAWNED
# to the root process of its tree. KIND: sluice-user, sluice-kernel or sluice-auto (sluice
# with that `relay`; plain sluice: the default, auto), haproxy, haproxy-splice (with
# `option splice-response`), nginx. For sluice, appends "KIND RELAY" to $WORK/relays.txt,
# RELAY being what its start-up line says serves (e.g. auto falls back to "user (...)" where
# the kernel relay cannot load).
start_balancer() {
  local kind=$1 workers=$2 port=$3 dir=$WORK/$1-w$2-$3 relay
  local splice="# no splice" maxconn=$((($(ulimit -n) - 100) / 2))
  mkdir -p "$dir"
  case $kind in
    sluice | sluice-user | sluice-kernel | sluice-auto)
      relay=${kind#sluice}
      relay=${relay#-}
      render "$BENCH_DIR/conf/sluice.toml.in" "$dir/sluice.toml" \
        PORT="$port" BACKEND1="$BACKEND1" BACKEND2="$BACKEND2" RELAY="${relay:-auto}"
      spawn "$kind-w$workers-$port" "$SLUICE_BIN" --config "$dir/sluice.toml" --workers "$workers"
      ;;
    haproxy | haproxy-splice)
      if [[ $kind == haproxy-splice ]]; then
        splice="option splice-response" maxconn=$((($(ulimit -n) - 100) / 3))
      fi
      render "$BENCH_DIR/conf/haproxy.cfg.in" "$dir/haproxy.cfg" \
        PORT="$port" BACKEND1="$BACKEND1" BACKEND2="$BACKEND2" WORKERS="$workers" \
        MAXCONN="$maxconn" \
        CHECK="$([[ ${BENCH_HAPROXY_CHECK:-0} == 1 ]] && echo check)" SPLICE="$splice"
      spawn "$kind-w$workers-$port" haproxy -db -f "$dir/haproxy.cfg"
      ;;
    nginx)
      render "$BENCH_DIR/conf/nginx-stream.conf.in" "$dir/nginx.conf" \
        DIR="$dir" PORT="$port" BACKEND1="$BACKEND1" BACKEND2="$BACKEND2" WORKERS="$workers"
      spawn "$kind-w$workers-$port" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
      ;;
    *) die "unknown balancer $kind" ;;
  esac
  wait_http "$port" || die "$kind (workers $workers) on port $port did not start (see $WORK)"
  check_bulk "$port" || die "$kind (workers $workers) does not relay $BULK_PATH intact"
  if [[ $kind == sluice* ]]; then
    relay=$(sed -n 's/.*; relay: //p' "$WORK/$kind-w$workers-$port.log" | head -n1)
    echo "$kind ${relay:-?}" >>"$WORK/relays.txt"
    [[ $kind != sluice-auto || $relay == kernel* ]] ||
      log "warning: $kind serves with relay: ${relay:-?}"
  fi
}

# machine_busy: busy clock ticks of all CPUs together since boot, from /proc/stat's first
# line: user+nice+system+irq+softirq+steal, so that the kernel's work in softirq and kworkers
# (the kernel relay, splice) counts too. Read by the shell itself: measuring costs next to
# nothing.
machine_busy() {
  local user nice system irq softirq steal
  # skipped: the "cpu" label, idle, iowait, and guest time (already in user and nice)
  read -r _ user nice system _ _ irq softirq steal _ </proc/stat
  echo $((user + nice + system + irq + softirq + steal))
}

# run_wrk OUT PID URL WRK_ARGS...: one wrk run against URL; writes wrk's output to OUT, the
# CPU ticks PID's process tree used meanwhile to OUT.cpu, the whole machine's busy ticks
# (machine_busy) to OUT.machine, and those of every process outside this script's tree
# (other work on the machine) to OUT.others.
run_wrk() {
  local out=$1 pid=$2 url=$3 before after busy_before busy_after others_before others_after
  shift 3
  others_before=$("$PY" "$BENCH_DIR/proc.py" others $$)
  before=$("$PY" "$BENCH_DIR/proc.py" cpu "$pid")
  busy_before=$(machine_busy)
  wrk "$@" --latency "$url" >"$out" 2>&1 || log "wrk failed: see $out"
  busy_after=$(machine_busy)
  after=$("$PY" "$BENCH_DIR/proc.py" cpu "$pid")
  others_after=$("$PY" "$BENCH_DIR/proc.py" others $$)
  echo $((after - before)) >"$out.cpu"
  echo $((busy_after - busy_before)) >"$out.machine"
  echo $((others_after - others_before)) >"$out.others"
}
