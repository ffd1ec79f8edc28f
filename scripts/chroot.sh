#!/usr/bin/env bash
# A Debian chroot for testing another PostgreSQL major than the host's (make test PG=NN).
#   scripts/chroot.sh SUITE                 make it (or reuse it) and print its directory
#   scripts/chroot.sh SUITE CMD [ARG...]    ... then run CMD inside it, as root, in /work/pg_dataflow
#   scripts/chroot.sh --copy SUITE CMD...   ... after copying this working tree to /work/pg_dataflow
# SUITE is a Debian suite of deb.debian.org: trixie (PostgreSQL 17), forky or sid (18).
# The chroots live in $DF_CHROOT_CACHE (default /var/cache/pg_dataflow), one per suite,
# chroot-SUITE, outside the repository. debootstrap runs once; the stamp file
# .pg_dataflow-debootstrap marks it complete, so an interrupted one is redone from scratch.
# The packages are those of scripts/deps.sh for the suite's major (without the demo and
# valgrind extras); the list installed is kept in .pg_dataflow-packages, and only a changed
# list runs apt-get again. While a command runs, /proc, /dev and a private /dev/shm are
# mounted in the chroot (unmounted on exit, whatever happens); it shares the host's network,
# so loopback works. One command at a time per chroot (flock).
# Needs root. Installs debootstrap on the host when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

copy=0
[ "${1:-}" = --copy ] && { copy=1; shift; }
suite=${1:?usage: scripts/chroot.sh [--copy] SUITE [CMD...]}; shift
. scripts/pg.sh
major=$(df_pg_suite_major "$suite") || { echo "chroot: unknown suite '$suite' (trixie, forky, sid)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "chroot: needs root" >&2; exit 1; }

MIRROR=${DF_CHROOT_MIRROR:-http://deb.debian.org/debian}
CACHE=${DF_CHROOT_CACHE:-/var/cache/pg_dataflow}
DIR=$CACHE/chroot-$suite
STAMP=$DIR/.pg_dataflow-debootstrap
PKGSTAMP=$DIR/.pg_dataflow-packages
mkdir -p "$CACHE"

exec 9>"$CACHE/chroot-$suite.lock"
flock 9

# Everything mounted below $DIR, deepest first.
mounts_under() { awk -v d="$DIR/" 'index($2 "/", d) == 1 { print $2 }' /proc/mounts | sort -r; }
unmount_all() {
    local m
    for m in $(mounts_under); do umount "$m" 2>/dev/null || umount -l "$m" || true; done
}

packages=$(PG=$major DF_DEPS_EXTRA=0 scripts/deps.sh --list | sort -u | tr '\n' ' ')

if [ ! -f "$STAMP" ]; then
    t0=$(date +%s)
    unmount_all
    [ -z "$(mounts_under)" ] || { echo "chroot: $DIR still has mounts, not removing it" >&2; exit 1; }
    rm -rf --one-file-system "$DIR"
    if ! command -v debootstrap >/dev/null && [ ! -x /usr/sbin/debootstrap ]; then
        echo "chroot: installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
    fi
    # debootstrap of bookworm has no script for forky: it is made like sid.
    script=/usr/share/debootstrap/scripts/$suite
    [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
    echo "chroot: debootstrap $suite into $DIR (once; a few minutes)"
    PATH=$PATH:/usr/sbin:/sbin debootstrap --variant=minbase "$suite" "$DIR" "$MIRROR" "$script" \
        >"$CACHE/chroot-$suite.debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/chroot-$suite.debootstrap.log" >&2; echo "chroot: debootstrap failed" >&2; exit 1; }
    # No service starts inside; postgresql-common creates no cluster (we make our own).
    printf '#!/bin/sh\nexit 101\n' >"$DIR/usr/sbin/policy-rc.d"; chmod 755 "$DIR/usr/sbin/policy-rc.d"
    mkdir -p "$DIR/etc/postgresql-common"
    echo 'create_main_cluster = false' >"$DIR/etc/postgresql-common/createcluster.conf"
    rm -f "$PKGSTAMP"
    date -u '+%F %T debootstrap done' >"$STAMP"
    echo "chroot: debootstrap took $(( $(date +%s) - t0 ))s"
fi

mount_all() {
    trap 'unmount_all' EXIT
    mountpoint -q "$DIR/proc" || mount -t proc proc "$DIR/proc"
    mountpoint -q "$DIR/dev" || mount --bind /dev "$DIR/dev"
    # PostgreSQL needs POSIX shared memory: a tmpfs of the chroot's own, not the host's.
    mountpoint -q "$DIR/dev/shm" || mount -t tmpfs -o mode=1777,nosuid,nodev shm "$DIR/dev/shm"
    mountpoint -q "$DIR/dev/pts" || mount -t devpts -o newinstance,ptmxmode=0666 devpts "$DIR/dev/pts" 2>/dev/null || true
    cp /etc/resolv.conf "$DIR/etc/resolv.conf" 2>/dev/null || true
}

in_chroot() {
    chroot "$DIR" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"
}

if [ "$(cat "$PKGSTAMP" 2>/dev/null)" != "$packages" ]; then
    t0=$(date +%s)
    mount_all
    echo "chroot: installing into $suite: $packages"
    # The mirror may serve a testing/unstable Release past its Valid-Until (a frozen copy,
    # as the deb.debian.org reachable here is); signatures are still checked.
    echo 'Acquire::Check-Valid-Until "false";' >"$DIR/etc/apt/apt.conf.d/99pg_dataflow"
    in_chroot dpkg --configure -a >/dev/null 2>&1 || true   # after an interrupted install
    in_chroot apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    in_chroot apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $packages \
        >"$CACHE/chroot-$suite.apt.log" 2>&1 \
        || { tail -30 "$CACHE/chroot-$suite.apt.log" >&2; echo "chroot: apt-get install failed" >&2; exit 1; }
    in_chroot apt-get clean
    echo "$packages" >"$PKGSTAMP"
    echo "chroot: packages took $(( $(date +%s) - t0 ))s"
fi

if [ $# -eq 0 ]; then echo "$DIR"; exit 0; fi

mount_all
if [ $copy -eq 1 ]; then
    # The working tree as git sees it: tracked files and untracked ones not ignored,
    # never build outputs.
    rm -rf --one-file-system "$DIR/work/pg_dataflow"
    mkdir -p "$DIR/work/pg_dataflow"
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
        | (cd "$ROOT" && xargs -0 sh -c 'for f; do [ -e "$f" ] || [ -L "$f" ] && printf "%s\0" "$f"; done' _) \
        | tar -C "$ROOT" --null -T - -cf - | tar -C "$DIR/work/pg_dataflow" -xf -
fi
mkdir -p "$DIR/work/pg_dataflow"
# shellcheck disable=SC2016
in_chroot DF_IN_CHROOT="$suite" PG="$major" CI="${CI:-}" DF_INTEGRATION="${DF_INTEGRATION:-}" DF_DEPS_EXTRA=0 \
    bash -c 'cd /work/pg_dataflow && exec "$@"' _ "$@"
