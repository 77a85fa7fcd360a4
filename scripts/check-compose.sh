#!/usr/bin/env bash
# Checks the docker compose demo without a Docker engine (these machines have none):
#   1. Debian's docker-compose (1.29) accepts compose/docker-compose.yml, and
#      compose/Dockerfile copies every source directory CMakeLists.txt builds;
#   2. `sluice --check` accepts compose/sluice.toml (a copy, beside a made-up admin-token:
#      the real token is the user's, kept out of git, and may not exist here);
#   3. systemd-analyze verify accepts compose/sluice.service (if systemd-analyze is here).
# Installs docker-compose from Debian if it is missing. Uses ${BUILD_DIR:-build}/master/sluice
# (builds it if it is not there). Exits non-zero on any failure.
#
# compose/sluice.toml names user and group "sluice", which the image creates but this machine
# may not have, and sluice --check looks them up. Rather than add a system user to a shared
# machine, the check runs (as root) in a private mount namespace where /etc/passwd and
# /etc/group are copies with a "sluice" entry added: nothing changes outside it. Where the
# user already exists, the check runs as is.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
sluice="$build_dir/master/sluice"
compose_file=compose/docker-compose.yml
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
config="$scratch/sluice.toml"
cp compose/sluice.toml "$config"
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$scratch/admin-token"

if ! command -v docker-compose >/dev/null; then
  echo "installing docker-compose (Debian package)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq docker-compose >/dev/null
fi

echo "== docker-compose $(docker-compose version --short): config -q $compose_file" >&2
docker-compose -f "$compose_file" config -q
# The services the README's walk-through uses must be there.
services=$(docker-compose -f "$compose_file" config --services)
for s in load-balancer http-api-1 http-api-2; do
  grep -qx "$s" <<<"$services" || { echo "$compose_file: no service $s" >&2; exit 1; }
done

# The Dockerfile copies the source directories one by one (the context is the whole repo):
# every directory CMakeLists.txt builds (tests and fuzz targets aside: the image builds
# neither) must be among them.
for dir in $(sed -n 's/^ *add_subdirectory(\([^)]*\)).*/\1/p' CMakeLists.txt); do
  [[ $dir == tests || $dir == fuzz ]] && continue
  grep -qE "^COPY $dir $dir\$" compose/Dockerfile ||
    { echo "compose/Dockerfile: no 'COPY $dir $dir' (CMakeLists.txt builds it)" >&2; exit 1; }
done

if [[ ! -x $sluice ]]; then
  echo "== building sluice in $build_dir" >&2
  bash scripts/build.sh sluice
fi

echo "== $sluice --check --config compose/sluice.toml (as $config)" >&2
if getent passwd sluice >/dev/null && getent group sluice >/dev/null; then
  "$sluice" --check --config "$config"
else
  if [[ $(id -u) -ne 0 ]]; then
    echo "user/group sluice missing here: run as root (private namespace), or create them" >&2
    exit 1
  fi
  cp /etc/passwd /etc/group "$scratch/"
  chmod 644 "$scratch/passwd" "$scratch/group"
  getent passwd sluice >/dev/null ||
    echo "sluice:x:64999:64999:sluice:/nonexistent:/usr/sbin/nologin" >>"$scratch/passwd"
  getent group sluice >/dev/null || echo "sluice:x:64999:" >>"$scratch/group"
  unshare --mount /bin/sh -c \
    'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@"' \
    sh "$scratch/passwd" "$scratch/group" "$sluice" --check --config "$config"
fi

if command -v systemd-analyze >/dev/null; then
  echo "== systemd-analyze verify compose/sluice.service" >&2
  unit_dir=$(mktemp -d)
  # The unit names /usr/local/bin/sluice; verify a copy that names the binary just built.
  sed "s#/usr/local/bin/sluice#$(realpath "$sluice")#g" compose/sluice.service >"$unit_dir/sluice.service"
  rc=0
  out=$(systemd-analyze verify "$unit_dir/sluice.service" 2>&1) || rc=$?
  rm -rf "$unit_dir"
  # A directive it cannot parse is only a warning for systemd: count it as a failure here.
  if ((rc != 0)) || grep -q 'sluice.service' <<<"$out"; then
    echo "$out" >&2
    exit 1
  fi
fi
echo "compose files OK" >&2
