# Helpers for the hostile-endpoint and SSRF suites (sourced, not a test itself).
# Needs scripts/lib.sh and worker_common.bash sourced and wt_setup done (WT_DIR).
#   hs_start NAME MODE [receiver args]   starts hostile_receiver.py MODE; its port file
#                                        and event log are $WT_DIR/NAME.port, NAME.jsonl
#   hs_port NAME FIELD                   a field of NAME's port file ("http", "stall", "port")
#   hs_eval NAME EXPR                    prints the Python EXPR evaluated over `log`, the
#                                        list of NAME's logged events
#   hs_num SQL                           wt_sql for one number (fails on anything else)
#   hs_worker_mem FIELD                  VmRSS / VmHWM of the background worker, in kB
#   hs_wait WHAT SECONDS SQL             wt_wait, printing the worker's view of due work
#                                        (queue, pending deliveries, runs) when it times out

HS_PIDS=()

hs_cleanup() {
    local p
    for p in "${HS_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wt_cleanup
}

hs_start() {
    local name=$1 mode=$2 i; shift 2
    rm -f "$WT_DIR/$name.port"
    python3 "$ROOT/test/integration/hostile_receiver.py" "$mode" "$WT_DIR/$name.port" \
        "$WT_DIR/$name.jsonl" "$@" >>"$WT_DIR/$name.out" 2>&1 &
    HS_PIDS+=($!)
    for ((i = 0; i < 100; i++)); do [ -s "$WT_DIR/$name.port" ] && return 0; sleep 0.1; done
    wt_fail "hostile receiver $name did not start: $(cat "$WT_DIR/$name.out" 2>/dev/null)"
}

hs_port() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
        "$WT_DIR/$1.port" "$2"
}

hs_eval() {
    python3 - "$WT_DIR/$1.jsonl" "$2" <<'PY'
import json, sys
try:
    log = [json.loads(line) for line in open(sys.argv[1])]
except FileNotFoundError:
    log = []
print(eval(sys.argv[2]))
PY
}

hs_num() {
    local v
    v=$(wt_sql "$1")
    [[ $v =~ ^-?[0-9]+(\.[0-9]+)?$ ]] || wt_fail "expected a number from: $1 (got '$v')"
    echo "$v"
}

hs_worker_mem() {
    local pid
    pid=$(wt_worker_pid)
    awk -v f="$1:" '$1 == f { print $2 }' "/proc/$pid/status"
}

hs_wait() {
    local what=$1 seconds=$2 sql=$3 end
    end=$(( $(date +%s) + seconds ))
    while [ "$(date +%s)" -le "$end" ]; do
        [ "$(df_as_user psql -X -tAq -d postgres -c "$sql" 2>/dev/null)" = "t" ] && return 0
        sleep 0.1
    done
    df_as_user psql -X -d postgres -c "SELECT now(), dataflow._worker_next_due() AS next_due_ms" \
        -c "SELECT d.name AS dataset, q.not_before, j.name AS job, j.paused FROM dataflow.queue q
              JOIN dataflow.dataset d ON d.id = q.dataset_id LEFT JOIN dataflow.job j ON j.output_id = d.id" \
        -c "SELECT r.id, j.name, r.status, r.started_at::time, r.finished_at::time, left(r.error, 60) AS error
              FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id ORDER BY r.id DESC LIMIT 12" \
        -c "SELECT subscription, status, attempts, next_attempt_at FROM dataflow.deliveries
             WHERE status = 'pending' ORDER BY id LIMIT 12" >&2
    wt_fail "timed out after ${seconds}s waiting for: $what"
}

# hs_between VALUE LO HI WHAT: fails unless LO <= VALUE <= HI (decimals allowed), showing
# $WT_DIR/context.txt (the measurements behind VALUE) when the suite wrote one.
hs_between() {
    [ "$(echo "$1 >= $2 && $1 <= $3" | bc -l)" = 1 ] || { [ -s "$WT_DIR/context.txt" ] && cat "$WT_DIR/context.txt" >&2; wt_fail "$4: $1 not within [$2, $3]"; }
}
