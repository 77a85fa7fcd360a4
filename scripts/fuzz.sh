#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ in build-fuzz/ (clang; the code under test built with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs each for FUZZ_SECONDS (default 60)
# on a scratch copy of its seed corpus, fuzz/corpus/TARGET/ (so a run never grows the
# committed corpus), FUZZ_JOBS targets at a time (default: the number of CPUs). Then runs
# every file of fuzz/regressions/TARGET/ once. A crash, leak, undefined behaviour, time-out
# or broken property fails the run and prints the reproducer's path.
# FUZZ_TARGETS="config status_line" runs only those. Run by scripts/test.sh (SLUICE_FUZZ=0
# skips it there); docs/fuzzing.md says how to fuzz longer and keep a regression case.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-$(nproc)}
build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
read -r -a targets <<<"${FUZZ_TARGETS:-config admin_request status_line proxy_header}"
for t in "${targets[@]}"; do
  [[ -f "fuzz/${t}_fuzz.cpp" ]] || { echo "fuzz: no target \"$t\" (fuzz/${t}_fuzz.cpp)" >&2; exit 1; }
done

echo "== ${build_dir}: build the fuzz targets" >&2
cmake -S . -B "$build_dir" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLUICE_FUZZ=ON -DSLUICE_WERROR=ON >/dev/null
# With SLUICE_FUZZ the default target is the fuzz targets and their libraries, nothing else:
# one make run keeps both cores busy. A chosen few are built by name.
build_targets=()
if [[ -n "${FUZZ_TARGETS:-}" ]]; then
  for t in "${targets[@]}"; do build_targets+=(--target "${t}_fuzz"); done
fi
cmake --build "$build_dir" -j "$(nproc)" "${build_targets[@]}"

export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_dir=$build_dir/run
rm -rf "$run_dir"

# Fuzzes one target; its output goes to $run_dir/TARGET/log, a reproducer to
# $run_dir/TARGET/crash-* (or leak-*, timeout-*, oom-*).
fuzz_one() {
  local t=$1 dir=$run_dir/$1
  mkdir -p "$dir/corpus"
  cp -r "fuzz/corpus/$t/." "$dir/corpus/"
  local options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix="$dir/")
  [[ -f "fuzz/dict/$t.dict" ]] && options+=(-dict="fuzz/dict/$t.dict")
  "$build_dir/fuzz/${t}_fuzz" "${options[@]}" "$dir/corpus" >"$dir/log" 2>&1
}

# Says how one target's run ended; returns non-zero if it found something.
report() {
  local t=$1 status=$2 dir=$run_dir/$1
  if ((status == 0)); then
    echo "fuzz: $t: $(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$dir/log" |
      grep -Eo '[0-9]+$' || echo '?') inputs in ${seconds}s, no finding" >&2
    return 0
  fi
  tail -n 60 "$dir/log" >&2
  echo "fuzz: $t FAILED (exit $status); log: $dir/log" >&2
  local found=false
  for r in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*; do
    [[ -e "$r" ]] || continue
    found=true
    echo "fuzz: $t: reproducer: $r (replay: $build_dir/fuzz/${t}_fuzz $r)" >&2
  done
  $found || echo "fuzz: $t: no reproducer was written" >&2
  return 1
}

echo "== fuzzing ${targets[*]} for ${seconds}s each, ${jobs} at a time" >&2
failed=0
declare -A target_of=()  # pid -> target
# Reaps one finished run and reports it.
reap_one() {
  local pid status=0
  wait -n -p pid || status=$?
  report "${target_of[$pid]}" "$status" || failed=1
  unset "target_of[$pid]"
}
for t in "${targets[@]}"; do
  while ((${#target_of[@]} >= jobs)); do reap_one; done
  fuzz_one "$t" &
  target_of[$!]=$t
done
while ((${#target_of[@]})); do reap_one; done

echo "== regression cases (fuzz/regressions/)" >&2
for t in "${targets[@]}"; do
  mapfile -t cases < <(find "fuzz/regressions/$t" -type f 2>/dev/null | sort)
  ((${#cases[@]})) || continue
  if "$build_dir/fuzz/${t}_fuzz" "${cases[@]}" >"$run_dir/$t/regressions.log" 2>&1; then
    echo "fuzz: $t: ${#cases[@]} regression cases pass" >&2
  else
    tail -n 60 "$run_dir/$t/regressions.log" >&2
    echo "fuzz: $t: a regression case FAILED; log: $run_dir/$t/regressions.log" >&2
    grep -Eo 'Running: .*' "$run_dir/$t/regressions.log" | tail -n 1 | sed 's/^/fuzz: reproducer: /' >&2
    failed=1
  fi
done

if ((failed)); then
  echo "fuzz: FAILED" >&2
  exit 1
fi
echo "fuzz: ${targets[*]}: no finding" >&2
