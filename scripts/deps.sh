#!/usr/bin/env bash
# Install the Debian packages pg_dataflow needs, only those missing.
# Quiet and quick when everything is present. Needs root (or sudo) to install.
set -euo pipefail

PACKAGES=(postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev nlohmann-json3-dev
          libgtest-dev libpq-dev cmake g++ make graphviz python3 valgrind)
# graphviz: `make demo` renders the pipeline graph as SVG (dot).
# valgrind: the worker under memcheck (make check-valgrind, integration/valgrind_worker).
# python3: test HTTP receivers and integration drivers (stdlib only).

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
SUDO=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root to install ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# postgresql-common creates a 'main' cluster on install; we never use it.
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    $SUDO mkdir -p /etc/postgresql-common
    echo 'create_main_cluster = false' | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
fi
$SUDO apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
