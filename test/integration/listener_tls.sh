#!/usr/bin/env bash
# The callback listener over TLS (dataflow.callback_tls_cert / _key, docs/worker.md,
# "Callback listener"): with a self-signed certificate for 127.0.0.1 it answers HTTPS
# that verifies against that certificate (a complete lands), refuses plain HTTP on the
# same port, and never serves in the clear. A cluster given only the certificate logs
# why and serves nothing.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

TLS=$(df_tmpdir)
trap 'rm -rf "$TLS"; wt_cleanup' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName = IP:127.0.0.1" -keyout "$TLS/key.pem" -out "$TLS/cert.pem" \
    >/dev/null 2>&1 || { echo "FAIL: openssl could not make a certificate"; exit 1; }
[ "$(id -u)" -eq 0 ] && chown "$DF_USER" "$TLS/key.pem" "$TLS/cert.pem"
chmod 600 "$TLS/key.pem"

LPORT=$(df_free_port $((30000 + RANDOM % 20000)))
ADDR="127.0.0.1:$LPORT"
wt_setup "dataflow.callback_listen = '$ADDR'" "dataflow.callback_role = 'df_callback'" \
    "dataflow.callback_tls_cert = '$TLS/cert.pem'" "dataflow.callback_tls_key = '$TLS/key.pem'" \
    "dataflow.enabled = off"
trap 'rm -rf "$TLS"; wt_cleanup' EXIT
wt_sql "CREATE ROLE df_callback LOGIN; GRANT dataflow_worker TO df_callback" >/dev/null
client() { python3 "$ROOT/test/integration/callback_client.py" "$ADDR" "$@"; }

for ((i = 0; i < 150; i++)); do
    out=$(client /v1/runs/heartbeat --tls "$TLS/cert.pem")
    [ "${out:0:3}" = 401 ] && break
    sleep 0.1
done
[ "${out:0:3}" = 401 ] || wt_fail "the listener did not serve HTTPS: $out"
grep -q "pg_dataflow listener: serving https on $ADDR" "$WT_DIR/server.log" || wt_fail "no 'serving https' log line"
echo "ok: HTTPS, verified against the listener's certificate"

wt_sql "SELECT dataflow.create_dataset('out', 'int');
        SELECT dataflow.create_job('j', output => 'out', lease_for => '1 hour');
        SELECT dataflow.expect('out', '1')" >/dev/null
token=$(wt_sql "SELECT token FROM dataflow.lease('j', 'engine')")
out=$(client /v1/runs/complete --tls "$TLS/cert.pem" --token "$token" --body '{"row_count": 5}')
[ "$out" = '200 {"status":"ready"}' ] || wt_fail "complete over HTTPS: $out"
[ "$(wt_sql "SELECT status || ' ' || row_count FROM dataflow.chunks WHERE dataset = 'out'")" = "ready 5" ] \
    || wt_fail "the HTTPS complete did not land"
echo "ok: a complete over HTTPS lands"

token2=$(wt_sql "SELECT dataflow.expect('out', '2'); SELECT token FROM dataflow.lease('j', 'engine')" | tail -1)
out=$(client /v1/runs/complete --token "$token2" --body '{"row_count": 5}')
[ "${out:0:3}" != 200 ] || wt_fail "plain HTTP was served on the TLS port: $out"
[ "$(wt_sql "SELECT status FROM dataflow.chunks WHERE dataset = 'out' AND key = '2'")" = running ] \
    || wt_fail "a plain-HTTP complete changed the chunk"
echo "ok: plain HTTP on the TLS port is refused ($out)"

# only the certificate: nothing is served, the log says why
wt_cleanup
trap 'rm -rf "$TLS"; wt_cleanup' EXIT
LPORT=$(df_free_port $((30000 + RANDOM % 20000)))
ADDR="127.0.0.1:$LPORT"
wt_setup "dataflow.callback_listen = '$ADDR'" "dataflow.callback_role = 'df_callback'" \
    "dataflow.callback_tls_cert = '$TLS/cert.pem'" "dataflow.enabled = off"
trap 'rm -rf "$TLS"; wt_cleanup' EXIT
wt_sql "CREATE ROLE df_callback LOGIN; GRANT dataflow_worker TO df_callback" >/dev/null
for ((i = 0; i < 150; i++)); do
    grep -q "pg_dataflow listener: cannot serve on $ADDR: dataflow.callback_tls_cert and dataflow.callback_tls_key must be set together" \
        "$WT_DIR/server.log" && break
    sleep 0.1
done
[ "$i" -lt 150 ] || wt_fail "no log line says the key is missing"
out=$(client /v1/runs/heartbeat)
[ "${out:0:3}" = 000 ] || wt_fail "the listener served without its key: $out"
echo "ok: a certificate without a key serves nothing and the log says why"
echo "PASS listener_tls"
