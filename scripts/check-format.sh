#!/usr/bin/env bash
# Fails when a tracked C++ source differs from what clang-format (.clang-format) makes of it.
# Fix with: git ls-files '*.cpp' '*.hpp' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files -z '*.cpp' '*.hpp' | xargs -0 clang-format --dry-run -Werror
echo "check-format: every tracked source is formatted" >&2
