#!/usr/bin/env bash
# Webhooks end to end: subscribe, events fan out to the outbox in the event's
# transaction, the worker delivers them signed (verified by the receiver with
# the secret subscribe() returned), within milliseconds of the commit (wake on
# commit, naptime is long here), filters apply, per-chunk order holds, a
# failing receiver is retried on the schedule and every attempt is recorded,
# and redeliver() sends again.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

wt_setup "dataflow.naptime = 60000"
wt_start_receiver
secret=$(wt_sql "SELECT dataflow.subscribe('portal', '$WT_URL/hook/ok', datasets => '{sales}')")
[[ $secret == whsec_* ]] || wt_fail "subscribe returned no secret: $secret"
echo "$secret" > "$WT_DIR/secret"   # the receiver verifies with the returned secret
wt_sql "SELECT dataflow.subscribe('portal2', '$WT_URL/hook/ok', datasets => '{sales}', statuses => '{ready}',
                                  secret => '$secret')" >/dev/null
wt_sql "SELECT dataflow.create_dataset('sales', 'date')" >/dev/null
wt_sql "SELECT dataflow.create_dataset('other', 'date')" >/dev/null

# Wake on commit: naptime is 60 s, so a prompt delivery proves the latch works.
start=$(date +%s.%N)
wt_sql "SELECT dataflow.register('sales', '2024-01-01', 's3://x/1')" >/dev/null
wt_wait "the first delivery" 5 "SELECT count(*) >= 1 FROM dataflow.deliveries WHERE status = 'delivered'"
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
echo "first delivery after ${elapsed}s (naptime 60s)"
[ "$(echo "$elapsed < 3" | bc)" = 1 ] || wt_fail "delivery took ${elapsed}s: no wake on commit"

for k in 02 03 04 05; do wt_sql "SELECT dataflow.register('sales', '2024-01-$k')" >/dev/null; done
wt_sql "SELECT dataflow.register('other', '2024-01-01')" >/dev/null   # filtered out
want=$(wt_sql "SELECT count(*) FROM dataflow.event e JOIN dataflow.dataset d ON d.id = e.dataset_id
               WHERE d.name = 'sales'")
want_ready=$(wt_sql "SELECT count(*) FROM dataflow.event e JOIN dataflow.dataset d ON d.id = e.dataset_id
                     WHERE d.name = 'sales' AND e.to_status = 'ready'")
wt_wait "all deliveries" 10 "SELECT count(*) = $want + $want_ready FROM dataflow.deliveries WHERE status = 'delivered'"
[ "$(wt_sql "SELECT count(*) FROM dataflow.deliveries WHERE dataset = 'other'")" = 0 ] \
    || wt_fail "dataset filter ignored"
got=$(wt_requests /hook/ok)
[ "$got" -ge $((want + want_ready)) ] || wt_fail "receiver saw $got requests, expected $((want + want_ready))"

# Every request carried a valid signature and the Standard Webhooks headers.
python3 - "$WT_DIR/requests.jsonl" <<'PY' || wt_fail "signature check"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"/hook/' in l]
bad = [r for r in rows if r["verified"] is not True]
assert rows and not bad, "unverified deliveries: %r" % bad[:1]
for r in rows:
    h = r["headers"]
    assert h["webhook-id"].startswith("msg_") and h["webhook-timestamp"].isdigit(), h
    body = json.loads(r["body"])
    assert body["type"].startswith("chunk.") and body["data"]["dataset"] == "sales", body
print("signatures ok:", len(rows))
PY

# No secret in the view.
wt_sql "SELECT to_jsonb(d)::text FROM dataflow.deliveries d" | grep -q whsec_ && wt_fail "secret visible in view"

# A failing receiver: attempts are recorded and the next one is scheduled ~5 s later.
wt_sql "SELECT dataflow.subscribe('down', '$WT_URL/hook/fail', datasets => '{sales}', secret => '$secret')" >/dev/null
wt_sql "SELECT dataflow.register('sales', '2024-01-06')" >/dev/null
wt_wait "a failed attempt" 5 "SELECT count(*) >= 1 FROM dataflow.deliveries WHERE subscription = 'down'
                                AND attempts = 1 AND last_http_status = 500"
wt_sql "SELECT bool_and(next_attempt_at - last_attempt_at BETWEEN interval '4 s' AND interval '6 s')
          FROM dataflow.deliveries WHERE subscription = 'down' AND attempts = 1" | grep -qx t \
    || wt_fail "first retry not scheduled ~5 s later"
wt_wait "the second attempt" 15 "SELECT count(*) >= 1 FROM dataflow.deliveries WHERE subscription = 'down' AND attempts = 2"
wt_sql "SELECT count(*) >= 2 FROM dataflow.delivery_attempt a JOIN dataflow.deliveries d ON d.id = a.delivery_id
         WHERE d.subscription = 'down'" | grep -qx t || wt_fail "attempts not recorded"
# Per-chunk order: later events of the same chunk wait behind the failing one.
wt_sql "SELECT count(*) = 0 FROM dataflow.deliveries d WHERE d.subscription = 'down' AND d.attempts > 0
          AND EXISTS (SELECT FROM dataflow.deliveries e WHERE e.subscription = 'down' AND e.key = d.key
                      AND e.id < d.id AND e.status = 'pending')" | grep -qx t || wt_fail "order not kept"
wt_sql "SELECT dataflow.unsubscribe('down')" >/dev/null

# redeliver(): a delivered message goes out again with the same webhook-id.
id=$(wt_sql "SELECT min(id) FROM dataflow.deliveries WHERE subscription = 'portal'")
before=$(wt_requests /hook/ok)
wt_sql "SELECT dataflow.redeliver($id)" >/dev/null
wt_wait "the redelivery" 5 "SELECT status = 'delivered' AND attempts = 1 FROM dataflow.delivery WHERE id = $id"
[ "$(wt_requests /hook/ok)" -gt "$before" ] || wt_fail "redeliver sent nothing"
grep -c "\"webhook-id\": \"msg_$id\"" "$WT_DIR/requests.jsonl" | grep -qx 2 || wt_fail "redelivery changed webhook-id"

grep -E "PANIC|TRAP|terminated by signal" "$WT_DIR/server.log" && wt_fail "server log shows a crash"
echo "ok: webhooks"
