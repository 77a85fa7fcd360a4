#!/usr/bin/env bash
# The README's test command: installs what is missing, checks the include layering and the
# formatting, builds, lints, and runs every test with ctest: the plain build, then the same
# suites built with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/) and with
# ThreadSanitizer (build-tsan/), and the checks of the docker-compose files; then a short run
# of every fuzz target (scripts/fuzz.sh, build-fuzz/). SLUICE_SANITIZERS=0 skips the two
# sanitizer builds and SLUICE_FUZZ=0 the fuzzing (quicker runs while working; CI runs them all).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --test
bash scripts/check-layers.sh
bash scripts/check-format.sh

run_suite() {  # BUILD_DIR, extra cmake arguments
  local dir=$1
  shift
  echo "== ${dir}: build and test" >&2
  BUILD_DIR=$dir CMAKE_ARGS="-DBUILD_TESTING=ON $*" bash scripts/build.sh
  (cd "$dir" && ctest --output-on-failure -j "$(nproc)" --timeout 300)
}

# The plain build treats warnings as errors (the sanitizer builds do not: their
# instrumentation makes gcc warn about code that is fine) and is the one clang-tidy reads.
run_suite build -DSLUICE_SANITIZE= -DSLUICE_WERROR=ON
BUILD_DIR=build bash scripts/check-tidy.sh
BUILD_DIR=build bash scripts/check-compose.sh
if [[ "${SLUICE_SANITIZERS:-1}" != 0 ]]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
  export TSAN_OPTIONS="second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"
  run_suite build-asan -DSLUICE_SANITIZE=address,undefined
  run_suite build-tsan -DSLUICE_SANITIZE=thread
fi
if [[ "${SLUICE_FUZZ:-1}" != 0 ]]; then
  bash scripts/fuzz.sh
fi
echo "all tests passed" >&2
