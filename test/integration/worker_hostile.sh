#!/usr/bin/env bash
# Hostile endpoints: webhook receivers and http engines that answer 500, 429/503
# with and without Retry-After (seconds and the three HTTP-date forms), 410 Gone,
# redirects, reset connections, hang, trickle 1 byte/s, stall the TCP handshake,
# or send 10 MB bodies. Checks that
#   - Retry-After is honoured exactly (next attempt = now + Retry-After, capped at
#     10 h, at least 1 s; only on 429/503; a malformed one falls back to the schedule),
#     and the next attempt really waits that long;
#   - 410 disables a subscription (pending deliveries wait, a warning says why,
#     enable_subscription() brings them back in order) and fails an http run without
#     retry and pauses its job;
#   - redirects are never followed; resets and stalls are clear, retryable errors;
#   - dataflow.http_timeout and dataflow.http_connect_timeout fire within 10% of
#     their setting, seen from the worker and from the receiver;
#   - a fast receiver's deliveries keep flowing while 60+ requests hang at another;
#   - the worker's peak memory stays bounded by the response body limit;
#   - an engine answer PostgreSQL refuses (\u0000, bytes that are not UTF-8, 10 MB of
#     nesting) fails its own run with a readable error, beside 100 good answers of the
#     same pass that are all recorded; dataflow._worker_results and _delivery_results
#     record each result on its own when the pass as a whole fails; serialization
#     failures are retried.
# Short form by default (CI); DF_FULL=1 uses longer timeouts and more hanging requests;
# HS_ONLY=answers runs only section 2.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash
. test/integration/hostile_common.bash

if [ -n "${DF_FULL:-}" ]; then T_MS=10000; CT_MS=5000; N_SLOW=300; N_FAST=2000; N_BIG=48
else T_MS=3000; CT_MS=2000; N_SLOW=150; N_FAST=300; N_BIG=24; fi
MAX_BODY_KB=512

wt_setup "dataflow.naptime = 60000" "dataflow.http_timeout = $T_MS" \
    "dataflow.http_connect_timeout = $CT_MS" "dataflow.http_max_body = '${MAX_BODY_KB}kB'"
trap hs_cleanup EXIT
hs_start rx http
P=$(hs_port rx http); STALL=$(hs_port rx stall); RX="http://127.0.0.1:$P"
WORKER_PID=$(wt_worker_pid)

survived() {
    [ "$(wt_worker_pid)" = "$WORKER_PID" ] || wt_fail "the worker restarted (pid $WORKER_PID -> $(wt_worker_pid))"
    grep -E "PANIC|TRAP|terminated by signal" "$WT_DIR/server.log" && wt_fail "server log shows a crash"
    grep -q 'whsec_' "$WT_DIR/server.log" && wt_fail "a secret reached the server log"
    return 0
}
dataset() { wt_sql "SELECT dataflow.create_dataset('$1', 'int')" >/dev/null; }
sub() { wt_sql "SELECT dataflow.subscribe('$1', '$2', datasets => '{$3}',
                        secret => 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')" >/dev/null; }
job() { # job NAME INPUT ENDPOINT NCHUNKS [create_job args]
    local name=$1 input=$2 url=$3 n=$4; shift 4
    dataset "out_$name"
    wt_sql "SELECT dataflow.create_job('$name', 'out_$name', dispatch => 'http', endpoint => '$url' ${1:+, $1})" >/dev/null
    wt_sql "SELECT dataflow.add_input('$name', '$input')" >/dev/null
    wt_sql "SELECT dataflow.expect('out_$name', '1', '$n')" >/dev/null
}
register_keys() { # register_keys DATASET FROM TO (one transaction)
    wt_sql "SELECT count(dataflow.register('$1', k::text)) FROM generate_series($2, $3) k" >/dev/null
}
requests() { hs_eval rx "sum(1 for e in log if e['event'] == 'request' and e['path'] == '$1' and e['query'] == '$2')"; }
gap() { wt_sql "SELECT round(extract(epoch FROM next_attempt_at - last_attempt_at)::numeric, 3)
                  FROM dataflow.deliveries WHERE subscription = '$1' ORDER BY id LIMIT 1"; }

# ---- 1. memory: 10 MB bodies, streamed (chunked) and announced (Content-Length) -----
if [ -z "${HS_ONLY:-}" ]; then  # HS_ONLY=answers: only section 2 (a developer aid)
    rss0=$(hs_worker_mem VmRSS); hwm0=$(hs_worker_mem VmHWM)
    dataset big_ev; dataset src1
    sub bighook "$RX/big-chunked" big_ev
    job bigchunked src1 "$RX/big-chunked" "$N_BIG" "max_attempts => 1"
    job bigcl src1 "$RX/big" 8 "max_attempts => 1"
    register_keys big_ev 1 "$N_BIG"
    register_keys src1 1 "$N_BIG"
    wt_wait "the 10 MB responses" 60 "SELECT count(*) = $N_BIG + 8 FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
                                        WHERE j.name IN ('bigchunked', 'bigcl') AND r.status = 'failed'"
    wt_wait "the 10 MB webhook answers" 30 "SELECT count(*) = $N_BIG FROM dataflow.deliveries
                                             WHERE subscription = 'bighook' AND status = 'delivered'"
    rss1=$(hs_worker_mem VmRSS); hwm1=$(hs_worker_mem VmHWM)
    # Bound: every body in flight at once at twice the limit (string growth), plus 16 MB.
    bound=$(( (N_BIG + 8) * 2 * MAX_BODY_KB + N_BIG * 128 + 16384 ))
    echo "memory: worker RSS ${rss0} -> ${rss1} kB, peak ${hwm0} -> ${hwm1} kB (+$((hwm1 - hwm0)) kB, bound ${bound} kB)" \
         "for $((N_BIG + 8)) engine and $N_BIG webhook responses of 10 MB"
    [ $((hwm1 - hwm0)) -le "$bound" ] || wt_fail "worker peak memory grew by $((hwm1 - hwm0)) kB > $bound kB"
    wt_sql "SELECT bool_and(r.error LIKE '%exceeds $((MAX_BODY_KB * 1024)) bytes%') FROM dataflow.run r
              JOIN dataflow.job j ON j.id = r.job_id WHERE j.name IN ('bigchunked', 'bigcl')" | grep -qx t \
        || wt_fail "oversized engine responses: $(wt_sql "SELECT DISTINCT left(error, 120) FROM dataflow.run")"
    wt_sql "SELECT dataflow.unsubscribe('bighook')" >/dev/null
fi

# ---- 2. answers PostgreSQL refuses: each fails its own run, nothing else is lost ---------
# An engine answer with \u0000 in a string (jsonb cannot store it), bytes that are not
# UTF-8, or 10 MB of nesting, beside 100 good answers: the receiver holds every answer
# until all 104 requests arrived, so they finish together and are recorded in the same
# pass. Before, the one transaction recording a pass failed on the bad answer and every
# result of the pass was lost (the runs stayed running until their leases expired, then
# were dispatched again); the 10 MB of nesting crashed the worker.
wt_sql "ALTER SYSTEM SET dataflow.http_max_body = '16MB'"; wt_sql "ALTER SYSTEM SET dataflow.http_concurrency = 160"
wt_sql "SELECT pg_reload_conf()" >/dev/null; sleep 1
BAD_KINDS=(nul nulfield badutf8 deep); N_GOOD=100; N_GATE=$((N_GOOD + ${#BAD_KINDS[@]}))
answer() { echo "$RX/dispatch/answer?kind=$1&gate=pass&n=$N_GATE"; }
dataset src2
job good src2 "$(answer ok)" "$N_GOOD" "max_attempts => 1, lease_for => '1 hour'"
for k in "${BAD_KINDS[@]}"; do job "bad_$k" src2 "$(answer "$k")" 1 "max_attempts => 1, lease_for => '1 hour'"; done
register_keys src2 1 "$N_GOOD"
runs2="FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id WHERE (j.name = 'good' OR j.name LIKE 'bad\_%')"
hs_wait "all $N_GATE answers recorded" 30 "SELECT count(*) FILTER (WHERE r.status <> 'running') = $N_GATE $runs2"
[ "$(wt_sql "SELECT count(*) FILTER (WHERE r.status = 'succeeded') $runs2 AND j.name = 'good'")" = "$N_GOOD" ] \
    || wt_fail "good answers: $(wt_sql "SELECT r.status, count(*), min(left(r.error, 100)) $runs2 AND j.name = 'good' GROUP BY 1")"
[ "$(wt_sql "SELECT count(*) FROM dataflow.chunks WHERE dataset = 'out_good' AND status = 'ready'")" = "$N_GOOD" ] \
    || wt_fail "not every good chunk is ready"
for k in "${BAD_KINDS[@]}"; do
    err=$(wt_sql "SELECT string_agg(r.status || ': ' || coalesce(r.error, ''), ' | ') $runs2 AND j.name = 'bad_$k'")
    [[ $err == "failed: engine answer is not valid JSON for PostgreSQL: "* ]] || wt_fail "bad_$k: $err"
    echo "bad answer $k: ${err:0:160}"
done
[ "$(requests /dispatch/answer "kind=ok&gate=pass&n=$N_GATE")" = "$N_GOOD" ] \
    || wt_fail "good answers were requested $(requests /dispatch/answer "kind=ok&gate=pass&n=$N_GATE") times, want $N_GOOD"
grep -q "recording results failed" "$WT_DIR/server.log" && wt_fail "a recording transaction failed"
# Runs recorded by one transaction share its now(): how the 104 were grouped (printed).
passes=$(wt_sql "SELECT count(DISTINCT r.finished_at) $runs2")
shared=$(wt_sql "SELECT string_agg(b.name || '+' || (SELECT count(*) FROM dataflow.run g WHERE g.job_id = gj.id
                                                      AND g.finished_at = b.finished_at), ' ' ORDER BY b.name)
                   FROM (SELECT j.name, r.finished_at $runs2 AND j.name LIKE 'bad\_%') b,
                        dataflow.job gj WHERE gj.name = 'good'")
echo "bad answers: $N_GOOD good answers recorded, ${#BAD_KINDS[@]} bad ones failed their own runs," \
     "in $passes recording transaction(s) (bad+good answers recorded with it: $shared); no request repeated"
wt_sql "ALTER SYSTEM RESET dataflow.http_max_body"; wt_sql "ALTER SYSTEM RESET dataflow.http_concurrency"
wt_sql "SELECT pg_reload_conf()" >/dev/null

# What the worker's own checks do not catch, PostgreSQL's do, still for one result alone:
# dataflow._worker_results records a pass in one subtransaction and, when that fails,
# each result in its own. Six results of a pull job's leases, called directly: an info
# that is not jsonb (\u0000, not JSON) or a negative row_count fails only its own run with
# a readable error; a token without a live lease is reported, not recorded.
dataset out_direct
wt_sql "SELECT dataflow.create_job('direct', 'out_direct', max_attempts => 1)" >/dev/null
wt_sql "SELECT dataflow.expect('out_direct', '1', '5')" >/dev/null
wt_sql "SELECT count(*) FROM dataflow.lease('direct', 'bgworker', 5)" >/dev/null
got=$(wt_sql "WITH t AS (SELECT array_agg(r.token ORDER BY c.key::int) || gen_random_uuid() AS tk
                           FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id
                           JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'direct')
              SELECT string_agg(x.item || ':' || x.recorded || ':' || x.error_code || ':' || x.problem, E'\n' ORDER BY x.item)
                FROM t, dataflow._worker_results(t.tk, array_fill('succeeded'::text, ARRAY[6]),
                       '{1,1,1,-1,1,1}', array_fill(NULL::text, ARRAY[6]),
                       ARRAY['{}', '{\"a\": \"x\\u0000\"}', 'not json', '{}', '{\"b\": 2}', '{}'],
                       array_fill(NULL::text, ARRAY[6]), array_fill(NULL::text, ARRAY[6]),
                       array_fill(true, ARRAY[6]), array_fill(NULL::integer, ARRAY[6])) x")
echo "$got" | sed 's/^/direct: /'
[ "$(wt_sql "SELECT string_agg(c.key || ':' || r.status, ',' ORDER BY c.key::int) FROM dataflow.run r
              JOIN dataflow.chunk c ON c.id = r.chunk_id JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'direct'")" \
    = "1:succeeded,2:failed,3:failed,4:failed,5:succeeded" ] || wt_fail "direct results: $got"
[ "$(echo "$got" | cut -d: -f1-3 | tr '\n' ' ')" = "2:true:22P05 3:true:22P02 4:true:22023 6:false:42704 " ] \
    || wt_fail "direct results reported: $got"
wt_sql "SELECT bool_and(r.error LIKE 'engine answer is not valid JSON for PostgreSQL: %') FROM dataflow.run r
          JOIN dataflow.chunk c ON c.id = r.chunk_id JOIN dataflow.job j ON j.id = r.job_id
         WHERE j.name = 'direct' AND c.key IN ('2', '3')" | grep -qx t || wt_fail "direct: unreadable errors"
wt_sql "SELECT r.error LIKE 'engine answer refused by PostgreSQL: row_count must be >= 0' FROM dataflow.run r
          JOIN dataflow.chunk c ON c.id = r.chunk_id JOIN dataflow.job j ON j.id = r.job_id
         WHERE j.name = 'direct' AND c.key = '4'" | grep -qx t || wt_fail "direct: negative row_count"

# Webhook attempts too: one attempt that cannot be recorded (a trigger refuses it here)
# is recorded as a failed attempt with the reason, due again after a minute, and the
# other attempts of the call are recorded as given.
dataset direct_ev
sub direct_hook "$RX/ok?who=direct" direct_ev
wt_sql "BEGIN; SELECT dataflow.register('direct_ev', k::text) FROM generate_series(1, 3) k;
        UPDATE dataflow.subscription SET enabled = false WHERE name = 'direct_hook'; COMMIT" >/dev/null
wt_sql "CREATE FUNCTION public.refuse_attempt() RETURNS trigger LANGUAGE plpgsql AS
          \$\$ BEGIN RAISE EXCEPTION 'refused by test trigger' USING ERRCODE = 'P0001'; END \$\$;
        CREATE TRIGGER refuse_attempt BEFORE INSERT ON dataflow.delivery_attempt FOR EACH ROW
          WHEN (NEW.http_status = 299) EXECUTE FUNCTION public.refuse_attempt()" >/dev/null
got=$(wt_sql "WITH d AS (SELECT array_agg(id ORDER BY id) AS ids FROM dataflow.deliveries WHERE subscription = 'direct_hook')
              SELECT coalesce(string_agg(x.item || ':' || x.error_code || ':' || x.problem, ','), 'none')
                FROM d, dataflow._delivery_results(d.ids, '{200,299,500}', '{NULL,NULL,\"HTTP 500: no\"}',
                                                   '{NULL,NULL,5}', '{1,2,3}', '{f,f,f}') x")
wt_sql "DROP TRIGGER refuse_attempt ON dataflow.delivery_attempt; DROP FUNCTION public.refuse_attempt()" >/dev/null
echo "direct deliveries: $got"
[[ $got == "2:P0001:refused by test trigger" ]] || wt_fail "delivery results reported: $got"
[ "$(wt_sql "SELECT string_agg(status || ':' || attempts || ':' || coalesce(last_error, '') || ':' ||
                                (next_attempt_at > now() + interval '50 s'), ',' ORDER BY id)
               FROM dataflow.deliveries WHERE subscription = 'direct_hook'")" \
    = "delivered:1::false,pending:1:attempt not recorded: refused by test trigger:true,pending:1:HTTP 500: no:false" ] \
    || wt_fail "direct deliveries: $(wt_sql "SELECT string_agg(status || ':' || attempts || ':' || coalesce(last_error, ''), ',' ORDER BY id) FROM dataflow.deliveries WHERE subscription = 'direct_hook'")"
wt_sql "SELECT dataflow.unsubscribe('direct_hook')" >/dev/null

# Serialization failures and deadlocks are retried (bounded): a trigger fails the first
# two recordings of a run with 40001; the third commits, the engine got one request.
# Before, the result was lost at the first failure and the run dispatched again later.
dataset src_retry
job retried src_retry "$RX/dispatch/ok?who=retried" 1 "max_attempts => 1, lease_for => '1 hour'"
retried_id=$(wt_sql "SELECT id FROM dataflow.job WHERE name = 'retried'")
wt_sql "CREATE SEQUENCE public.record_failures;
        CREATE FUNCTION public.fail_twice() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
          IF nextval('public.record_failures') <= 2 THEN
            RAISE EXCEPTION 'could not serialize access (test trigger)' USING ERRCODE = '40001';
          END IF;
          RETURN NEW; END \$\$;
        CREATE TRIGGER fail_twice BEFORE UPDATE ON dataflow.run FOR EACH ROW
          WHEN (NEW.status = 'succeeded' AND NEW.job_id = $retried_id) EXECUTE FUNCTION public.fail_twice()" >/dev/null
wt_sql "SELECT dataflow.register('src_retry', '1')" >/dev/null
hs_wait "the retried run to succeed" 10 "SELECT r.status = 'succeeded' FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'retried'"
wt_sql "DROP TRIGGER fail_twice ON dataflow.run; DROP FUNCTION public.fail_twice()" >/dev/null
[ "$(wt_sql "SELECT last_value FROM public.record_failures")" = 3 ] || wt_fail "recorded after $(wt_sql "SELECT last_value FROM public.record_failures") tries, want 3"
[ "$(requests /dispatch/ok who=retried)" = 1 ] || wt_fail "the engine got $(requests /dispatch/ok who=retried) requests"
[ "$(grep -c 'recording results: could not serialize access (test trigger) (SQLSTATE 40001), retrying' "$WT_DIR/server.log")" = 2 ] \
    || wt_fail "no log line for the retries"
echo "serialization failures: recorded at the third try, the engine asked once"

[ -n "${HS_ONLY:-}" ] && { survived; echo "ok: hostile endpoints (section 2 only)"; exit 0; }

# ---- 3. webhook statuses, Retry-After, redirects, resets ------------------------------
dataset ev
declare -A WANT=(  # subscription -> path?query | expected gap to the next attempt (s)
    [e500]="/status/500|5" [e500ra]="/status/500?ra=60|5"
    [s503]="/status/503?ra=7|7" [s429]="/status/429?ra=4|4" [zero]="/status/503?ra=0|1"
    [cap]="/status/429?ra=999999|36000" [imf]="/status/503?ra_in=9|9"
    [rfc850]="/status/429?ra_in=9&ra_form=rfc850|9" [asctime]="/status/503?ra_in=9&ra_form=asctime|9"
    [no503]="/status/503|5" [no429]="/status/429|5" [bad]="/status/503?ra=soon|5"
    [redir]="/redirect/302?to=$RX/ok?via=redirect|5" [redir308]="/redirect/308?to=$RX/ok?via=redirect|5"
    [reset]="/reset|5" [resetmid]="/reset-mid|5"
    [quoted]="/status/500?body=a%20%22b%22%20%5C%20%7Bc%7D%2C%20NULL|5"
    [badutf8]="/status/500?hex=ff41c3c080|5")
for s in "${!WANT[@]}"; do sub "$s" "$RX${WANT[$s]%|*}" ev; done
wt_sql "SELECT dataflow.register('ev', '1')" >/dev/null
wt_wait "a first attempt at every hostile receiver" 10 \
    "SELECT count(*) = ${#WANT[@]} FROM dataflow.deliveries WHERE dataset = 'ev' AND attempts >= 1"
for s in "${!WANT[@]}"; do
    want=${WANT[$s]#*|}; got=$(gap "$s")
    case $s in
        imf|rfc850|asctime) hs_between "$got" $((want - 2)).0 "$want.5" "$s: next attempt (HTTP-date Retry-After)" ;;
        *) [ "$got" = "$want.000" ] || wt_fail "$s: next attempt after ${got}s, want ${want}s" ;;
    esac
done
echo "retry-after: gaps ok ($(for s in s503 s429 zero cap imf rfc850 asctime no503 bad; do printf '%s=%ss ' $s "$(gap $s)"; done))"
wt_sql "SELECT count(*) = 2 FROM dataflow.deliveries WHERE subscription IN ('redir', 'redir308')
          AND last_http_status IN (302, 308) AND last_error LIKE '%redirects are not followed%'" | grep -qx t \
    || wt_fail "redirect not reported as such"
[ "$(requests /ok via=redirect)" = 0 ] || wt_fail "a redirect was followed"
# All attempts of a pass are recorded in one call (arrays): quotes, backslashes, braces,
# commas and the word NULL in an error text arrive intact.
[ "$(wt_sql "SELECT last_error FROM dataflow.deliveries WHERE subscription = 'quoted'")" = 'HTTP 500: a "b" \ {c}, NULL' ] \
    || wt_fail "error text mangled: $(wt_sql "SELECT last_error FROM dataflow.deliveries WHERE subscription = 'quoted'")"
# A body that is not valid UTF-8 is recorded with '?' for the bad bytes. Text handed to
# SPI is not re-checked, so before this the raw bytes were stored in last_error: text
# that pg_dump's restore, drivers and BI tools then refuse.
[ "$(wt_sql "SELECT last_error FROM dataflow.deliveries WHERE subscription = 'badutf8'")" = 'HTTP 500: ?A???' ] \
    || wt_fail "invalid UTF-8 body: $(wt_sql "SELECT last_error FROM dataflow.deliveries WHERE subscription = 'badutf8'")"
wt_sql "SELECT count(*) = 2 FROM dataflow.deliveries WHERE subscription IN ('reset', 'resetmid')
          AND last_http_status IS NULL AND status = 'pending' AND last_error ~* 'reset|recv failure|empty reply'" \
    | grep -qx t || wt_fail "resets: $(wt_sql "SELECT subscription, last_error FROM dataflow.deliveries WHERE subscription LIKE 'reset%'")"

# The honoured Retry-After is really waited for: the second request comes 4 s later.
wt_wait "the second attempt after Retry-After: 4" 10 \
    "SELECT attempts >= 2 FROM dataflow.deliveries WHERE subscription = 's429'"
gap429=$(hs_eval rx "(lambda t: round(t[1] - t[0], 2))([e['t'] for e in log if e['event'] == 'request' and e['query'] == 'ra=4'])")
hs_between "$gap429" 3.9 5.5 "second request after Retry-After: 4"
echo "retry-after: second request $gap429 s after the first (Retry-After: 4)"
for s in "${!WANT[@]}"; do wt_sql "SELECT dataflow.unsubscribe('$s')" >/dev/null; done

# ---- 4. 410 Gone disables a subscription; enable_subscription() resumes it -----------
dataset gone_ev
sub gone "$RX/status/410?who=hook" gone_ev
# Three versions of one chunk in one transaction: 5 events, delivered strictly in order.
wt_sql "SELECT dataflow.register('gone_ev', '1'); SELECT dataflow.register('gone_ev', '1', force => true);
        SELECT dataflow.register('gone_ev', '1', force => true)" >/dev/null
wt_wait "the subscription disabled" 10 "SELECT NOT enabled FROM dataflow.subscription WHERE name = 'gone'"
wt_sql "SELECT disabled_reason LIKE 'HTTP 410 Gone%' AND disabled_at IS NOT NULL FROM dataflow.subscription
         WHERE name = 'gone'" | grep -qx t || wt_fail "no reason recorded for the disabled subscription"
grep -q 'subscription "gone" disabled: its receiver answered 410 Gone' "$WT_DIR/server.log" \
    || wt_fail "no log line says why the subscription was disabled"
wt_sql "SELECT dataflow.register('gone_ev', '2')" >/dev/null   # no delivery for a disabled subscription
sleep 2
[ "$(requests /status/410 who=hook)" = 1 ] || wt_fail "deliveries continued after 410: $(requests /status/410 who=hook)"
[ "$(wt_sql "SELECT string_agg(status || ':' || attempts, ',' ORDER BY id) FROM dataflow.deliveries
              WHERE subscription = 'gone'")" = "pending:1,pending:0,pending:0,pending:0,pending:0" ] \
    || wt_fail "pending deliveries of the gone subscription: $(wt_sql "SELECT string_agg(status || ':' || attempts, ',' ORDER BY id) FROM dataflow.deliveries WHERE subscription = 'gone'")"
err=$(df_as_user psql -X -tAq -d postgres -c "SET ROLE dataflow_operator; SELECT dataflow.enable_subscription('gone')" 2>&1)
[[ $err == *"permission denied"* ]] || wt_fail "an operator could enable a subscription: $err"
for bad in "'nope'|42704" "NULL|22004"; do
    got=$(wt_sql "DO \$\$ BEGIN PERFORM dataflow.enable_subscription(${bad%|*}); RAISE EXCEPTION 'no error';
                  EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%', SQLSTATE; END \$\$" 2>&1 | grep -o '[0-9A-Z]\{5\}$')
    [ "$got" = "${bad#*|}" ] || wt_fail "enable_subscription(${bad%|*}): SQLSTATE $got, want ${bad#*|}"
done
wt_sql "UPDATE dataflow.subscription SET url = '$RX/ok?who=back' WHERE name = 'gone'"
n=$(df_as_user psql -X -tAq -v ON_ERROR_STOP=1 -d postgres -c "SET ROLE dataflow_admin" \
        -c "SELECT dataflow.enable_subscription('gone')") || wt_fail "the admin cannot enable a subscription"
[ "$n" = 5 ] || wt_fail "enable_subscription returned $n, want 5 pending"
wt_wait "the resumed deliveries" 10 "SELECT count(*) = 5 FROM dataflow.deliveries WHERE subscription = 'gone' AND status = 'delivered'"
ids=$(hs_eval rx "','.join(e['headers']['webhook-id'] for e in log if e['event'] == 'request' and e['query'] == 'who=back')")
[ "$ids" = "$(wt_sql "SELECT string_agg('msg_' || id, ',' ORDER BY id) FROM dataflow.deliveries WHERE subscription = 'gone'")" ] \
    || wt_fail "resumed deliveries out of order: $ids"
echo "410: subscription disabled after 1 request, 5 deliveries held, resumed in order by enable_subscription()"

# ---- 5. http engines: Retry-After, 410, redirects -------------------------------------
dataset src4
job d503 src4 "$RX/status/503?ra=6" 1 "max_attempts => 3, backoff_min => '2 s', backoff_max => '2 s'"
job d429 src4 "$RX/status/429" 1 "max_attempts => 3, backoff_min => '2 s', backoff_max => '2 s'"
job d429date src4 "$RX/status/429?ra_in=8" 1 "max_attempts => 3, backoff_min => '2 s', backoff_max => '2 s'"
job d410 src4 "$RX/status/410?who=job" 3 "max_attempts => 3, max_concurrency => 1"
job dredir src4 "$RX/redirect/307?to=$RX/dispatch/ok" 1 "max_attempts => 1"
# A job at its concurrency limit (0 here) keeps a chunk due but unleasable, as a busy job
# with a backlog does: it must not hide the other jobs' retry times from the worker.
job dblocked src4 "$RX/dispatch/ok" 1 "max_concurrency => 0"
register_keys src4 1 3
wt_wait "first failures of d503, d429, d429date" 10 "SELECT count(DISTINCT r.job_id) = 3 FROM dataflow.run r
          JOIN dataflow.job j ON j.id = r.job_id WHERE j.name IN ('d503', 'd429', 'd429date') AND r.status = 'failed'"
# Both timestamps come from one transaction's now(): the gap is exactly what was asked.
read -r g503 g429 g429date <<<"$(wt_sql "SELECT string_agg(round(extract(epoch FROM c.not_before - r.finished_at)::numeric, 3)::text,
                                                      ' ' ORDER BY j.name = 'd503' DESC, j.name = 'd429' DESC)
                                           FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id
                                           JOIN dataflow.job j ON j.id = r.job_id
                                          WHERE j.name IN ('d503', 'd429', 'd429date') AND r.attempt = 1")"
[ "$g503" = "6.000" ] || wt_fail "d503 next attempt after $g503 s, want 6 (Retry-After)"
hs_between "$g429" 1.5 2.5 "d429 without Retry-After: the job's backoff"
hs_between "$g429date" 6.0 8.5 "d429date (HTTP-date Retry-After)"
echo "engines: next attempt after $g503 s (Retry-After: 6), $g429 s (no Retry-After, backoff 2 s), $g429date s (HTTP-date +8 s)"
wt_wait "the 410 to fail its run and pause its job" 10 "SELECT paused FROM dataflow.job WHERE name = 'd410'"
wt_sql "SELECT r.status = 'failed' AND r.error LIKE 'HTTP 410 Gone%not retried%' AND c.status = 'failed'
          FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id JOIN dataflow.job j ON j.id = r.job_id
         WHERE j.name = 'd410'" | grep -qx t || wt_fail "410 run: $(wt_sql "SELECT r.status, r.error FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'd410'")"
wt_sql "SELECT detail->>'reason' LIKE 'HTTP 410 Gone%' FROM dataflow.event WHERE to_status = 'paused'
         AND detail->>'job' = 'd410' AND actor = 'bgworker'" | grep -qx t || wt_fail "no paused event with the reason"
grep -q 'job "d410" paused: its endpoint answered 410 Gone' "$WT_DIR/server.log" || wt_fail "no log line for the paused job"
sleep 1
[ "$(requests /status/410 who=job)" = 1 ] || wt_fail "the gone endpoint got $(requests /status/410 who=job) requests"
[ "$(wt_sql "SELECT count(*) FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
              WHERE d.name = 'out_d410' AND c.status = 'queued'")" = 2 ] || wt_fail "the paused job's other chunks moved"
wt_wait "the redirected run" 10 "SELECT count(*) = 1 FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
                                  WHERE j.name = 'dredir' AND r.error LIKE 'HTTP 307 (redirects are not followed)%'"
[ "$(requests /dispatch/ok '')" = 0 ] || wt_fail "an engine redirect was followed"
hs_wait "the second d503 request" 12 "SELECT count(*) >= 2 FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'd503'"
gap503=$(hs_eval rx "(lambda t: round(t[1] - t[0], 2))([e['t'] for e in log if e['event'] == 'request' and e['query'] == 'ra=6'])")
hs_between "$gap503" 5.9 7.5 "engine re-sent after Retry-After: 6"
echo "engines: 410 failed the run without retry and paused the job; second 503 request after $gap503 s"
wt_sql "SELECT dataflow.pause_job(name) FROM dataflow.job WHERE name IN ('d503', 'd429', 'd429date')" >/dev/null

# ---- 6. timeouts: hang, stalled handshake, trickle, trickle of the status line ----------
# Hanging peers make no socket activity, so only the worker's timer can end them. They
# start in three waves 0.4 s apart: a worker that woke only on its other periodic duties
# (every second) would be late by more than 10% for at least one wave.
lo=$T_MS; hi=$((T_MS * 11 / 10)); clo=$CT_MS; chi=$((CT_MS * 11 / 10))
dataset slow_ev; dataset trickle_ev; dataset src5
sub hang "$RX/hang?who=hook" slow_ev
sub stall "http://127.0.0.1:$STALL/" slow_ev
for s in trickle trickle-head; do sub "$s" "$RX/$s" trickle_ev; done
# A lease shorter than a timeout plus the first resend wait: the hang is not resent
# (worker_dispatch.sh tests resends), so its timeout fails the run at once.
job dhang src5 "$RX/hang?who=job" 3 "max_attempts => 1, lease_for => '$(( T_MS / 1000 + 1 )) seconds'"
for k in 1 2 3; do
    wt_sql "SELECT dataflow.register('slow_ev', '$k'); SELECT dataflow.register('src5', '$k')" >/dev/null
    sleep 0.4
done
register_keys trickle_ev 1 3
wt_wait "every timeout" $((T_MS / 1000 + 10)) "SELECT count(*) = 12 FROM dataflow.deliveries
                                                WHERE dataset IN ('slow_ev', 'trickle_ev') AND attempts >= 1"
wt_wait "the engine timeouts" 10 "SELECT count(*) = 3 FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
                                  WHERE j.name = 'dhang' AND r.status = 'failed'"
sleep 0.5
wt_sql "SELECT d.subscription || ' ' || a.attempt || ' ' || a.duration_ms || ' ' || coalesce(a.error, '')
          FROM dataflow.delivery_attempt a JOIN dataflow.deliveries d ON d.id = a.delivery_id
         WHERE d.dataset IN ('slow_ev', 'trickle_ev') ORDER BY a.at" > "$WT_DIR/context.txt"
stats() { wt_sql "SELECT min(a.duration_ms) || ' ' || max(a.duration_ms) FROM dataflow.delivery_attempt a
                    JOIN dataflow.deliveries d ON d.id = a.delivery_id WHERE d.subscription $1 AND a.attempt = 1"; }
read -r mn mx <<<"$(stats "IN ('hang', 'trickle', 'trickle-head')")"
hs_between "$mn" "$lo" "$hi" "fastest total timeout (worker side, ms)"; hs_between "$mx" "$lo" "$hi" "slowest total timeout (worker side, ms)"
read -r cmn cmx <<<"$(stats "= 'stall'")"
hs_between "$cmn" "$clo" "$chi" "fastest connect timeout (ms)"; hs_between "$cmx" "$clo" "$chi" "slowest connect timeout (ms)"
# The receiver's view: first attempts only (retries follow 5 s later).
read -r rmn rmx n_held <<<"$(hs_eval rx "(lambda h: '%d %d %d' % (min(h), max(h), len(h)))([e['held'] * 1000 for e in log if e['event'] == 'closed'][:12])")"
[ "$n_held" = 12 ] || wt_fail "the receiver saw $n_held held connections end, want 12 (9 webhooks + 3 engine)"
hs_between "$rmn" $((T_MS * 9 / 10)) "$hi" "shortest held connection (receiver side, ms)"; hs_between "$rmx" $((T_MS * 9 / 10)) "$hi" "longest held connection (receiver side, ms)"
wt_sql "SELECT bool_and(last_error ~* 'timed out|timeout') FROM dataflow.deliveries WHERE dataset IN ('slow_ev', 'trickle_ev')" \
    | grep -qx t || wt_fail "timeouts not reported as such: $(wt_sql "SELECT DISTINCT last_error FROM dataflow.deliveries WHERE dataset IN ('slow_ev', 'trickle_ev')")"
read -r emn emx <<<"$(wt_sql "SELECT (min(extract(epoch FROM r.finished_at - r.started_at)) * 1000)::int || ' ' ||
                                     (max(extract(epoch FROM r.finished_at - r.started_at)) * 1000)::int
                                FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
                               WHERE j.name = 'dhang' AND r.error ~* 'timed out'")"
hs_between "$emn" "$lo" "$((hi + 200))" "fastest engine timeout (lease to result, ms)"; hs_between "$emx" "$lo" "$((hi + 200))" "slowest engine timeout (lease to result, ms)"
echo "timeouts: http_timeout ${T_MS} ms -> worker ${mn}..${mx} ms, receiver ${rmn}..${rmx} ms (hang, trickle 1 B/s, trickled status line);" \
     "engine hang ${emn}..${emx} ms from lease to result; http_connect_timeout ${CT_MS} ms -> ${cmn}..${cmx} ms"
for s in hang trickle trickle-head stall; do wt_sql "SELECT dataflow.unsubscribe('$s')" >/dev/null; done

# ---- 7. a fast receiver keeps flowing while 60+ requests hang at another ----------------
WINDOW=96; CAP=$((WINDOW - WINDOW / 4))
wt_sql "ALTER SYSTEM SET dataflow.http_timeout = '120s'" ; wt_sql "ALTER SYSTEM SET dataflow.http_concurrency = $WINDOW"
wt_sql "SELECT pg_reload_conf()" >/dev/null; sleep 1
dataset fast_ev; dataset slow2_ev
sub fast "$RX/ok?lane=fast" fast_ev
lane() { # lane FROM TO: register keys in transactions of 30, prints seconds until all are delivered
    local t0 i n=$(( $2 - $1 + 1 )) done_sql
    t0=$(date +%s.%N)
    for ((i = $1; i <= $2; i += 30)); do register_keys fast_ev "$i" $(( i + 29 < $2 ? i + 29 : $2 )); done
    done_sql="SELECT count(*) >= $n FROM dataflow.deliveries WHERE subscription = 'fast' AND status = 'delivered' AND key::int BETWEEN $1 AND $2"
    wt_wait "the fast lane ($n deliveries)" 30 "$done_sql"
    echo "$(date +%s.%N) - $t0" | bc
}
open_hangs() { hs_eval rx "sum((e['event'] == 'request') - (e['event'] == 'closed') for e in log if e['path'] == '/hang' and e['query'] == 'lane=slow')"; }
t_alone=$(lane 1 "$N_FAST") || exit 1
sub slow "$RX/hang?lane=slow" slow2_ev
register_keys slow2_ev 1 "$N_SLOW"
for ((i = 0; i < 100; i++)); do [ "$(open_hangs)" -ge 60 ] && break; sleep 0.1; done
h0=$(open_hangs); [ "$h0" -ge 60 ] || wt_fail "only $h0 requests hang"
t_hang=$(lane $((N_FAST + 1)) $((2 * N_FAST))) || exit 1
h1=$(open_hangs)
dispatched=$(date +%s.%N)
dataset src6
job fastjob src6 "$RX/dispatch/ok" 20
register_keys src6 1 20
wt_wait "http dispatch while receivers hang" 20 "SELECT count(*) = 20 FROM dataflow.chunk c JOIN dataflow.dataset d
                                               ON d.id = c.dataset_id WHERE d.name = 'out_fastjob' AND c.status = 'ready'"
t_job=$(echo "$(date +%s.%N) - $dispatched" | bc)
echo "fast lane: $N_FAST deliveries in ${t_alone}s alone, ${t_hang}s while $h0..$h1 requests hang" \
     "(window $WINDOW, share $CAP); 20 http runs in ${t_job}s"
[ "$h1" -ge 60 ] && [ "$h0" -le "$CAP" ] && [ "$h1" -le "$CAP" ] || wt_fail "hanging requests: $h0, $h1 (want 60..$CAP)"
[ "$(echo "$t_hang <= 2 * $t_alone + 2" | bc)" = 1 ] || wt_fail "the fast lane slowed from ${t_alone}s to ${t_hang}s"

# ---- the worker survived all of it ---------------------------------------------------------
survived
echo "ok: hostile endpoints"
