#!/usr/bin/env bash
# The worker waits for its database (issue 19, item 10). With dataflow.database naming
# a database that does not exist yet, the worker does not fail and restart every
# bgw_restart_time: it says once that it waits (a helper connected to no database looks
# at pg_database every naptime), stays quiet for 15 s (no FATAL, no exit, no second
# line), and once the database is created it connects there, finds the extension when
# it is created and does its work (a webhook delivery). Its database dropped under it,
# the restarted worker waits again; a fast shutdown while it waits is prompt and leaves
# no helper behind.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

trap wt_cleanup EXIT
WT_DIR=$(df_tmpdir)
df_cluster_start "$WT_DIR" "dataflow.database = 'later'" "dataflow.naptime = 200" \
    "dataflow.http_allow = '127.0.0.1/32'" "dataflow.http_timeout = 2000" \
    "log_min_messages = log" || wt_fail "cluster did not start"
wt_start_receiver
q() { df_as_user psql -X -tAq -v ON_ERROR_STOP=1 -d "$1" -c "$2" || wt_fail "SQL failed on $1: $2"; }
waiting_lines() { grep -c 'waiting for database "later"' "$WT_DIR/server.log"; }
bad_lines() { grep -cE 'FATAL|exited with exit code|terminated by signal|PANIC' "$WT_DIR/server.log"; }

for ((i = 0; i < 100; i++)); do [ "$(waiting_lines)" -ge 1 ] && break; sleep 0.1; done
[ "$(waiting_lines)" -ge 1 ] || wt_fail "no log line says the worker waits for database \"later\""
wt_wait "the helper in pg_stat_activity" 10 "SELECT count(*) = 1 FROM pg_stat_activity
    WHERE backend_type = 'pg_dataflow database check' AND datname IS NULL
      AND query = 'pg_dataflow: waiting for database \"later\"'"
# 15 s: longer than bgw_restart_time (10 s), so the old restart loop would show here.
sleep 15
[ "$(bad_lines)" -eq 0 ] || { grep -E 'FATAL|exited with exit code' "$WT_DIR/server.log" | head -5 >&2
                              wt_fail "the worker failed or restarted while waiting ($(bad_lines) lines)"; }
[ "$(waiting_lines)" -eq 1 ] || wt_fail "the waiting line is logged $(waiting_lines) times, not once"
[ "$(q postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'")" = 0 ] \
    || wt_fail "the worker is connected somewhere while its database does not exist"
echo "ok: waits quietly (1 line, no FATAL, no restart in 15 s)"

q postgres "CREATE DATABASE later" >/dev/null
wt_wait "the worker to connect to later" 10 "SELECT count(*) = 1 FROM pg_stat_activity
    WHERE backend_type = 'pg_dataflow worker' AND datname = 'later'"
wt_wait "the helper to be gone" 10 "SELECT count(*) = 0 FROM pg_stat_activity
    WHERE backend_type = 'pg_dataflow database check'"
grep -q 'database "later" can be connected to now' "$WT_DIR/server.log" || wt_fail "no line says it connects"
echo "ok: connects once the database exists"

q later "CREATE EXTENSION pg_dataflow" >/dev/null
for ((i = 0; i < 100; i++)); do grep -q 'extension found' "$WT_DIR/server.log" && break; sleep 0.1; done
grep -q 'extension found' "$WT_DIR/server.log" || wt_fail "the worker did not find the extension in later"
q later "SELECT dataflow.create_dataset('d', 'int')" >/dev/null
q later "SELECT dataflow.subscribe('s', '$WT_URL/hook/ok', datasets => '{d}')" >"$WT_DIR/secret"
q later "SELECT dataflow.register('d', '1')" >/dev/null
for ((i = 0; i < 100; i++)); do [ "$(wt_requests /hook/ok)" -ge 1 ] && break; sleep 0.1; done
[ "$(wt_requests /hook/ok)" -ge 1 ] || wt_fail "no webhook delivery from database later"
for ((i = 0; i < 100; i++)); do
    [ "$(q later "SELECT count(*) FROM dataflow.delivery WHERE status = 'delivered'")" -ge 1 ] && break
    sleep 0.1
done
[ "$(q later "SELECT count(*) FROM dataflow.delivery WHERE status = 'delivered'")" -ge 1 ] \
    || wt_fail "the delivery is not recorded as delivered"
[ "$(bad_lines)" -eq 0 ] || wt_fail "FATAL or restart lines in the server log"
echo "ok: finds the extension in later and delivers"

# Its database dropped under it (FORCE ends its session): restarted after
# bgw_restart_time, it waits again. A SIGTERM of the waiting worker ends its helper
# too (and the worker is restarted to wait again); a fast shutdown while it waits is
# prompt and the helper ends with the server.
q postgres "DROP DATABASE later WITH (FORCE)" >/dev/null
for ((i = 0; i < 300; i++)); do [ "$(waiting_lines)" -ge 2 ] && break; sleep 0.1; done
[ "$(waiting_lines)" -ge 2 ] || wt_fail "the restarted worker does not wait for the dropped database"
helper=$(q postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_dataflow database check'")
[ -n "$helper" ] || wt_fail "no helper while waiting for the dropped database"
# The waiting worker is in no database, so not in pg_stat_activity: find it by its title.
pm=$(head -1 "$WT_DIR/data/postmaster.pid")
worker=$(ps -o pid=,args= --ppid "$pm" | awk '/: pg_dataflow worker *$/ { print $1 }')
[ -n "$worker" ] || { ps -o pid=,args= --ppid "$pm" >&2; wt_fail "no waiting worker process"; }
kill -TERM "$worker"
for ((i = 0; i < 50; i++)); do kill -0 "$helper" 2>/dev/null || break; sleep 0.1; done
kill -0 "$helper" 2>/dev/null && wt_fail "the helper (pid $helper) outlived its worker's SIGTERM"
for ((i = 0; i < 300; i++)); do [ "$(waiting_lines)" -ge 3 ] && break; sleep 0.1; done
[ "$(waiting_lines)" -ge 3 ] || wt_fail "the worker ended by SIGTERM was not restarted to wait again"
helper=$(q postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_dataflow database check'")
[ -n "$helper" ] || wt_fail "no helper after the restart"
start=$(date +%s)
df_as_user pg_ctl -D "$WT_DIR/data" -m fast -w -t 30 stop >/dev/null || wt_fail "fast stop failed"
[ $(($(date +%s) - start)) -le 5 ] || wt_fail "fast shutdown while waiting took $(($(date +%s) - start))s"
kill -0 "$helper" 2>/dev/null && wt_fail "the helper (pid $helper) outlived the server"
grep -E 'PANIC|TRAP|terminated by signal' "$WT_DIR/server.log" && wt_fail "server log shows a crash"
echo "ok: worker nodb"
