#!/usr/bin/env bash
# On a standby the worker does not run (nothing may write there); once the
# standby is promoted the worker starts and takes up its duties.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

wt_setup
S=$WT_DIR/standby
df_as_user pg_basebackup -D "$S" -R -X stream -c fast >"$WT_DIR/basebackup.log" 2>&1 \
    || { cat "$WT_DIR/basebackup.log" >&2; wt_fail "pg_basebackup"; }
sport=$(df_free_port $((PGPORT + 1)))
mkdir -p "$WT_DIR/ssock"; [ "$(id -u)" -eq 0 ] && chown "$DF_USER" "$WT_DIR/ssock"
{ echo "port = $sport"; echo "unix_socket_directories = '$WT_DIR/ssock'"; } >> "$S/postgresql.auto.conf"
df_as_user pg_ctl -D "$S" -l "$WT_DIR/standby.log" -w -t 60 start >/dev/null || wt_fail "standby start"
stop_standby() { df_as_user pg_ctl -D "$S" -m fast -w -t 60 stop >/dev/null 2>&1; wt_cleanup; }
trap stop_standby EXIT
ssql() { df_as_user psql -X -tAq -h "$WT_DIR/ssock" -p "$sport" -d postgres -c "$1"; }

[ "$(ssql "SELECT pg_is_in_recovery()")" = t ] || wt_fail "not a standby"
sleep 2
[ "$(ssql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'")" = 0 ] \
    || wt_fail "the worker runs on the standby"
df_as_user pg_ctl -D "$S" -w promote >/dev/null || wt_fail "promote"
for ((i = 0; i < 100; i++)); do
    [ "$(ssql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'
                AND query NOT LIKE '%absent%'")" = 1 ] && break
    sleep 0.2
done
[ "$i" -lt 100 ] || wt_fail "no worker after promotion"
grep -E "PANIC|TRAP|terminated by signal" "$WT_DIR/standby.log" && wt_fail "standby log shows a crash"
echo "ok: standby idles, promoted standby works"
