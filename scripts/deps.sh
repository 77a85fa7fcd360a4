#!/usr/bin/env bash
# Installs the Debian packages sluice needs to build; with --test also what the tests use.
# Idempotent: skips apt-get when everything is already installed. Run as root (or sudo).
set -euo pipefail

packages=(
  g++ cmake make pkgconf
  libboost-dev libboost-program-options-dev
  libtoml11-dev
  nlohmann-json3-dev
  libcpp-httplib-dev  # spells-api, the demo backend
  clang libbpf-dev  # the kernel relay: its BPF program (clang -target bpf) and loader
  libgtest-dev libgmock-dev
  curl
)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(
    prometheus  # promtool checks /metrics
    chromium    # loads the admin page headless
    clang-format clang-tidy  # scripts/check-format.sh, scripts/check-tidy.sh
    libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer's runtime for clang++ (-fsanitize=fuzzer)
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq "${missing[@]}"
fi
