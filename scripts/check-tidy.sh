#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy: bugprone-*, function size) over the production sources,
# using the compile commands of a configured build directory (default build/). Fails on any
# finding. Run by scripts/test.sh after the plain build.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
[[ -f "$build_dir/compile_commands.json" ]] || {
  echo "check-tidy: no $build_dir/compile_commands.json (configure the build first)" >&2
  exit 1
}
mapfile -t sources < <(git ls-files 'common/*.cpp' 'conf/*.cpp' 'health/*.cpp' 'admin/*.cpp' \
  'worker/*.cpp' 'master/*.cpp')
printf '%s\n' "${sources[@]}" |
  xargs -P "$(nproc)" -n 4 clang-tidy -p "$build_dir" --quiet 2>/dev/null
echo "check-tidy: ${#sources[@]} sources clean" >&2
