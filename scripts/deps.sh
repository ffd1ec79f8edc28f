#!/usr/bin/env bash
# Install the Debian packages pg_dataflow needs, only those missing.
# Quiet and quick when everything is present. Needs root (or sudo) to install.
#   scripts/deps.sh [--list]     --list: print the packages, install nothing
# PG=NN selects the PostgreSQL major (scripts/pg.sh); DF_DEPS_EXTRA=0 leaves out the
# packages only the demo and valgrind need (the chroots of scripts/chroot.sh).
set -euo pipefail
. "$(dirname "$0")/pg.sh"

PACKAGES=("${DF_PG_PACKAGES[@]}" libcurl4-openssl-dev libssl-dev nlohmann-json3-dev
          libgtest-dev libpq-dev cmake g++ make python3 bc curl procps libmicrohttpd-dev)
# libmicrohttpd-dev: the callback listener's embedded HTTP server (GNU libmicrohttpd, a
# small, long-maintained C library with TLS through GnuTLS, its own polling thread and
# suspend/resume, so requests can wait for the process's one PostgreSQL thread; in the
# base list, so the PG 17/18 chroots of scripts/chroot.sh get it too).
# python3: test HTTP receivers and integration drivers (stdlib only); bc, curl, procps: test scripts.
# graphviz: `make demo` renders the pipeline graph as SVG (dot).
# valgrind: the worker under memcheck (make check-valgrind, integration/valgrind_worker).
[ "${DF_DEPS_EXTRA:-1}" = 0 ] || PACKAGES+=(graphviz valgrind)
if [ "${1:-}" = --list ]; then printf '%s\n' "${PACKAGES[@]}"; exit 0; fi

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
