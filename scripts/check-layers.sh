#!/usr/bin/env bash
# The folders form one direction: common <- conf <- {health, admin, worker} <- master.
# A folder may include only from the folders to its left (and itself); health, admin and
# worker do not include each other. Fails, naming file:line, on an include that points the
# wrong way. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A forbidden=(
  [common]='conf|health|admin|worker|master'
  [conf]='health|admin|worker|master'
  [health]='admin|worker|master'
  [admin]='health|worker|master'
  [worker]='health|admin|master'
)
status=0
for folder in "${!forbidden[@]}"; do
  if git grep -nE "#include \"(${forbidden[$folder]})/" -- "$folder/"; then
    echo "check-layers: ${folder}/ may not include from ${forbidden[$folder]//|/, }" >&2
    status=1
  fi
done
if ((status == 0)); then echo "check-layers: common <- conf <- {health, admin, worker} <- master holds" >&2; fi
exit "$status"
