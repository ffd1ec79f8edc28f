#!/usr/bin/env bash
# The worker's life: it idles quietly while the extension is absent and picks it
# up once created (and again after DROP/CREATE EXTENSION), reports its duty in
# pg_stat_activity, lets DROP DATABASE through (ProcSignalBarrier) while it
# sleeps a long naptime, reloads its settings on SIGHUP, and a fast shutdown is
# prompt even with HTTP requests hanging in flight.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

trap wt_cleanup EXIT
WT_DIR=$(df_tmpdir)
df_cluster_start "$WT_DIR" "dataflow.naptime = 60000" "dataflow.http_allow = '127.0.0.1/32'" \
    "dataflow.http_timeout = 30000" "log_min_messages = log" || wt_fail "cluster did not start"
wt_start_receiver

wt_wait "an idle worker" 10 "SELECT query LIKE '%absent%' FROM pg_stat_activity
                             WHERE backend_type = 'pg_dataflow worker'"
sleep 2
grep -E "WARNING|ERROR" "$WT_DIR/server.log" | grep -v "^.*psql" && wt_fail "worker is noisy without the extension"

# Long naptime: the extension is noticed once a transaction wakes the worker
# or at the next naptime; CREATE EXTENSION itself does not wake it, so set a
# short naptime with a reload (SIGHUP) first.
wt_sql "ALTER SYSTEM SET dataflow.naptime = 100" >/dev/null
wt_sql "SELECT pg_reload_conf()" >/dev/null
wt_sql "CREATE EXTENSION pg_dataflow"
wt_wait "the worker to start its duties" 10 "SELECT query NOT LIKE '%absent%' FROM pg_stat_activity
                                             WHERE backend_type = 'pg_dataflow worker'"
wt_sql "DROP EXTENSION pg_dataflow"
wt_wait "the worker to idle again" 15 "SELECT query LIKE '%absent%' FROM pg_stat_activity
                                       WHERE backend_type = 'pg_dataflow worker'"
wt_sql "CREATE EXTENSION pg_dataflow"
wt_wait "the worker to come back" 15 "SELECT query NOT LIKE '%absent%' FROM pg_stat_activity
                                      WHERE backend_type = 'pg_dataflow worker'"
grep -q "extension found" "$WT_DIR/server.log" || wt_fail "no log line about finding the extension"

# DROP DATABASE needs every backend to absorb a ProcSignalBarrier.
wt_sql "ALTER SYSTEM SET dataflow.naptime = '60s'" >/dev/null
wt_sql "SELECT pg_reload_conf()" >/dev/null
sleep 1
df_as_user psql -X -q -d postgres -c "CREATE DATABASE scratch" || wt_fail "create database"
start=$(date +%s)
df_as_user timeout 20 psql -X -q -d postgres -c "DROP DATABASE scratch" || wt_fail "DROP DATABASE hung or failed"
[ $(( $(date +%s) - start )) -le 5 ] || wt_fail "DROP DATABASE took $(( $(date +%s) - start ))s"

# Requests hanging in flight do not delay a fast shutdown.
wt_sql "SELECT dataflow.subscribe('hang', '$WT_URL/hook/hang')" >/dev/null
wt_sql "SELECT dataflow.create_dataset('d', 'int')" >/dev/null
wt_sql "SELECT dataflow.register('d', '1')" >/dev/null
for ((i = 0; i < 50; i++)); do [ "$(wt_requests /hook/hang)" -ge 1 ] && break; sleep 0.1; done
[ "$(wt_requests /hook/hang)" -ge 1 ] || wt_fail "the hanging delivery was not sent"
start=$(date +%s)
df_as_user pg_ctl -D "$WT_DIR/data" -m fast -w -t 30 stop >/dev/null || wt_fail "fast stop failed"
[ $(( $(date +%s) - start )) -le 5 ] || wt_fail "fast shutdown took $(( $(date +%s) - start ))s"
grep -E "PANIC|TRAP|terminated by signal" "$WT_DIR/server.log" && wt_fail "server log shows a crash"
echo "ok: worker life"
