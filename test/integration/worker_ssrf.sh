#!/usr/bin/env bash
# SSRF: internal addresses in every spelling, used as webhook subscription URLs
# and as http-engine endpoints, must never reach an internal listener.
#
# The canary: a TCP listener on 127.0.0.1:P (and [::1]:P when IPv6 works), the
# loopback host most spellings below resolve to; it counts every connection. The
# allow-list opens exactly 127.0.0.2/32 (plus the host name "allowed"), where an
# ordinary receiver runs: allow entries are addresses, not ports, so the allowed
# receiver must live on another address than the canary. Linux routes all of
# 127.0.0.0/8 to the loopback interface, so 127.0.0.2 is a distinct, always
# present host, and nothing that reaches 127.0.0.1 or ::1 is allowed.
#
# Pass: the canary accepts 0 connections; each form is rejected when subscribed or
# created (SQLSTATE 22023), or its delivery/run records the refusal (the address
# policy naming the range, or a redirect not followed); while the allowed receiver
# gets its deliveries and runs. Forms whose names do not resolve here are skipped.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash
. test/integration/hostile_common.bash

wt_setup "dataflow.naptime = 60000" "dataflow.http_allow = '127.0.0.2/32, allowed'" \
    "dataflow.http_timeout = 2000" "dataflow.http_connect_timeout = 1000"
trap hs_cleanup EXIT
hs_start canary canary
hs_start ok http --host 127.0.0.2
P=$(hs_port canary port); V6=$(hs_port canary v6); Q=$(hs_port ok http)
OK="http://127.0.0.2:$Q"
SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
CRLF=$'\r\n'; TAB=$'\t'

# The forms: "SUBSCRIPTION_CLASS JOB_CLASS URL". Classes:
#   R  refused by the address policy when connecting (error names the range)
#   S  rejected by subscribe()/create_job() with SQLSTATE 22023
#   X  the allowed receiver redirects to the canary: HTTP 30x, not followed
#   D  like R, or "could not resolve host" where the resolver refuses the name
#      (a trailing dot: glibc resolves "localhost." on some systems, not on others)
forms=(
    "R R http://127.0.0.1:$P/"                "R R http://127.1:$P/"
    "R R http://127.0.1:$P/"                  "R R http://0x7f000001:$P/"
    "R R http://0x7f.0x0.0x0.0x1:$P/"         "R R http://0x7f.1:$P/"
    "R R http://2130706433:$P/"               "R R http://017700000001:$P/"
    "R R http://0177.0.0.1:$P/"               "R R http://0177.1:$P/"
    "R R http://127.000.000.001:$P/"          "D D http://127.0.0.1.:$P/"
    "R R http://127.127.127.127:$P/"          "R R http://0:$P/"
    "R R http://0.0.0.0:$P/"                  "R R http://[::]:$P/"
    "R R http://[::1]:$P/"                    "R R http://[0:0:0:0:0:0:0:1]:$P/"
    "R R http://[0000::0001]:$P/"             "R R http://[::ffff:127.0.0.1]:$P/"
    "R R http://[::ffff:7f00:1]:$P/"          "R R http://[0:0:0:0:0:ffff:7f00:1]:$P/"
    "R R http://[::ffff:0:7f00:1]:$P/"        "R R http://[::127.0.0.1]:$P/"
    "R R http://[::7f00:1]:$P/"               "R R http://[64:ff9b::7f00:1]:$P/"
    "R R http://[64:ff9b::127.0.0.1]:$P/"     "R R http://[2002:7f00:1::1]:$P/"
    "R R http://[fe80::1%25lo]:$P/"           "R R http://localhost:$P/"
    "D D http://localhost.:$P/"               "R R http://LOCALHOST:$P/"
    "R R https://127.0.0.1:$P/"               "R R http://169.254.169.254/latest/meta-data/"
    "R R http://[fd00:ec2::254]/"             "R R http://10.0.0.1:$P/"
    "R R http://172.16.0.1:$P/"               "R R http://172.31.255.254:$P/"
    "R R http://192.168.0.1:$P/"              "R R http://100.64.0.1:$P/"
    "R R http://[fc00::1]:$P/"                "R R http://224.0.0.1:$P/"
    "R R http://255.255.255.255:$P/"          "R R http://192.0.0.1:$P/"
    "R R http://%31%32%37.0.0.1:$P/"          "R R http://%6c%6f%63%61%6c%68%6f%73%74:$P/"
    "R S http://127.0.0.1:$P#@127.0.0.2:$Q/"  "R S http://127.0.0.1:$P?@127.0.0.2:$Q/"
    "S S http://allowed@127.0.0.1:$P/"        "S S http://127.0.0.2:$Q@127.0.0.1:$P/"
    "S S http://user:pw@127.0.0.1:$P/"        "S S http://127.0.0.2:$Q\\@127.0.0.1:$P/"
    "S S file:///etc/passwd"                  "S S gopher://127.0.0.1:$P/_GET%20/"
    "S S ftp://127.0.0.1:$P/"                 "S S dict://127.0.0.1:$P/info"
    "S S ldap://127.0.0.1:$P/"                "S S //127.0.0.1:$P/"
    "S S http:/127.0.0.1:$P/"                 "S S http://127.0.0.2:$Q/ok${CRLF}Host:127.0.0.1:$P"
    "S S http://127.0.0.2:$Q/ok${TAB}x"
    "X X $OK/redirect/302?to=http://127.0.0.1:$P/"  "X X $OK/redirect/301?to=http://%5B::1%5D:$P/"
    "X X $OK/redirect/307?to=http://localhost:$P/"  "X X $OK/redirect/308?to=http://0x7f000001:$P/"
    "X X $OK/redirect/303?to=gopher://127.0.0.1:$P/"
)
# Names that resolve to a loopback address here (from /etc/hosts): one more form each.
extra=
for name in localhost.localdomain ip6-localhost ip6-loopback "$(hostname)" metadata.google.internal; do
    addr=$(getent hosts "$name" 2>/dev/null | awk '{ print $1; exit }')
    [[ $addr == 127.* || $addr == ::1 ]] && { forms+=("R R http://$name:$P/"); extra+=" $name"; }
done
echo "names resolving to loopback here:${extra:- none} (plus localhost)"

# Allowed traffic next to it: a subscription and an http job on the allowed receiver,
# a URL whose path carries an encoded CR/LF, and an Airflow 3 connection whose token
# endpoint answers a token with CR/LF in it (it must never become a header).
wt_sql "SELECT dataflow.create_dataset('ssrf', 'int')" >/dev/null
wt_sql "CREATE TABLE public.form (n integer PRIMARY KEY, sub_class text, job_class text, url text,
                                  sub_result text, job_result text)"
wt_sql "CREATE FUNCTION public.try_form(n integer, sub_class text, job_class text, url text) RETURNS void
        LANGUAGE plpgsql AS \$\$
        DECLARE s text := 'created'; j text := 'created';
        BEGIN
          BEGIN PERFORM dataflow.subscribe('f' || n, url, datasets => '{ssrf}', statuses => '{ready}',
                                    secret => '$SECRET');
          EXCEPTION WHEN OTHERS THEN s := SQLSTATE; END;
          BEGIN
            PERFORM dataflow.create_dataset('o' || n, 'int');
            PERFORM dataflow.create_job('j' || n, 'o' || n, dispatch => 'http', endpoint => url, max_attempts => 1);
            PERFORM dataflow.add_input('j' || n, 'ssrf');
            PERFORM dataflow.expect('o' || n, '1', '1');
          EXCEPTION WHEN OTHERS THEN j := SQLSTATE; END;
          INSERT INTO public.form VALUES (n, sub_class, job_class, url, s, j);
        END \$\$"
{
    n=0
    for f in "${forms[@]}" "R R ${OK}/ok" "R R ${OK}/dispatch/ok" "R R ${OK}/ok%0d%0aX-Injected:%201"; do
        n=$((n + 1)); sc=${f%% *}; f=${f#* }; jc=${f%% *}; url=${f#* }   # a URL may hold CR/LF
        printf 'SELECT public.try_form(%d, %s, %s, $u$%s$u$);\n' "$n" "'$sc'" "'$jc'" "$url"
    done
} > "$WT_DIR/forms.sql"
df_as_user psql -X -q -v ON_ERROR_STOP=1 -d postgres -f "$WT_DIR/forms.sql" >/dev/null || wt_fail "loading the forms"
N_FORMS=${#forms[@]}; N_ALL=$(hs_num "SELECT count(*) FROM public.form")
ALLOWED_SUB="f$((N_FORMS + 1))"; ALLOWED_JOB="j$((N_FORMS + 2))"; ENCODED="f$((N_FORMS + 3))"

# Header injection through values: refused when the connection is defined, and a
# token from a hostile token endpoint is never sent.
for bad in "auth => 'bearer', secret => E'tok\\r\\nX-Injected: 1'" \
           "auth => 'basic', username => E'u\\r\\nX-Injected: 1', secret => 'pw'"; do
    got=$(wt_sql "DO \$\$ BEGIN PERFORM dataflow.create_connection('crlf', 'http', '$OK', $bad);
                  EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'sqlstate %', SQLSTATE; END \$\$" 2>&1 | grep -o 'sqlstate .*')
    [ "$got" = "sqlstate 22023" ] || wt_fail "create_connection($bad): $got, want 22023"
done
wt_sql "SELECT dataflow.create_connection('af3', 'airflow', '$OK', auth => 'basic', username => 'admin',
                                          secret => 'pw', api_version => 2)" >/dev/null
wt_sql "SELECT dataflow.create_dataset('af_out', 'int')" >/dev/null
wt_sql "SELECT dataflow.create_job('afjob', 'af_out', dispatch => 'airflow', connection => 'af3', target => 'dag1',
                                   max_attempts => 1)" >/dev/null
wt_sql "SELECT dataflow.add_input('afjob', 'ssrf'); SELECT dataflow.expect('af_out', '1', '1')" >/dev/null

# One event: every subscription gets a delivery, every job is dispatched.
wt_sql "SELECT dataflow.register('ssrf', '1')" >/dev/null
subs=$(hs_num "SELECT count(*) FROM public.form WHERE sub_result = 'created'")
jobs=$(hs_num "SELECT count(*) FROM public.form WHERE job_result = 'created'")
wt_wait "an attempt for every subscription" 20 "SELECT count(*) = $subs FROM dataflow.deliveries WHERE attempts >= 1"
wt_wait "a finished run for every job" 20 "SELECT count(*) = $jobs + 1 FROM dataflow.run WHERE status <> 'running'"
sleep 1   # anything still connecting would reach the canary now

# Per form: what subscribing/creating said, or what the attempt recorded.
df_as_user psql -X -tA -F $'\t' -d postgres -c "
  SELECT f.n, f.sub_class, f.job_class, replace(replace(replace(f.url, E'\r', '\r'), E'\n', '\n'), E'\t', '\t'),
         f.sub_result, coalesce(d.last_http_status::text, ''), coalesce(d.last_error, ''), coalesce(d.status, ''),
         f.job_result, coalesce(r.status, ''), coalesce(r.error, '')
    FROM public.form f
    LEFT JOIN dataflow.deliveries d ON d.subscription = 'f' || f.n
    LEFT JOIN dataflow.job j ON j.name = 'j' || f.n
    LEFT JOIN dataflow.run r ON r.job_id = j.id
   ORDER BY f.n" > "$WT_DIR/outcomes.tsv" || wt_fail "reading outcomes"
forms_ok=1
python3 - "$WT_DIR/outcomes.tsv" "$N_FORMS" <<'PY' || forms_ok=0
import re, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
n_forms = int(sys.argv[2])
refused = re.compile(r"^(request not sent: )?refused: destination \S+ is .+ and not listed in dataflow\.http_allow$")
redirect = re.compile(r"^HTTP 30[1-8] \(redirects are not followed\)")
unresolved = re.compile(r"^Could not resolve host: ")
bad = []
def check(kind, cls, created, status, error, state):
    if cls == "S":
        return created == "22023" or "%s: want SQLSTATE 22023, got %s" % (kind, created)
    if created != "created":
        return "%s: rejected with %s, want it created and refused when sent" % (kind, created)
    if state in ("delivered", "succeeded"):
        return "%s: %s" % (kind, state)
    if cls == "R" or (cls == "D" and not unresolved.match(error)):
        return bool(refused.match(error)) or "%s: want an address-policy refusal, got %r" % (kind, error)
    if cls == "D":
        return True
    return bool(redirect.match(error)) or "%s: want a redirect not followed, got %r" % (kind, error)
for n, sc, jc, url, sub_res, sub_http, sub_err, sub_state, job_res, run_state, run_err in rows:
    if int(n) > n_forms:
        continue
    for why in (check("subscription", sc, sub_res, sub_http, sub_err, sub_state),
                check("http job", jc, job_res, "", run_err, run_state)):
        if why is not True:
            bad.append("form %s %s -> %s  [%s]" % (n, url, why, " | ".join((sub_res, sub_http, sub_err, sub_state,
                                                                             job_res, run_state, run_err))))
for b in bad:
    print("FAIL:", b, file=sys.stderr)
counts = {}
for r in rows[:n_forms]:
    for cls, res in ((r[1], r[4]), (r[2], r[8])):
        counts[cls] = counts.get(cls, 0) + 1
print("forms: %d internal URL forms x (subscription, http job): %d refused on connect, %d rejected with 22023, "
      "%d redirects not followed, %d refused or unresolvable" % (n_forms, counts.get("R", 0), counts.get("S", 0),
                                                                 counts.get("X", 0), counts.get("D", 0)))
sys.exit(1 if bad else 0)
PY
hits=$(hs_eval canary "sum(1 for e in log if e['event'] == 'canary')")
echo "canary 127.0.0.1:$P$([ "$V6" = True ] && echo " and [::1]:$P"): $hits connections"
[ "$hits" = 0 ] || { hs_eval canary "'\n'.join(str(e) for e in log[:10])" >&2; wt_fail "$hits connections reached the canary"; }
[ "$forms_ok" = 1 ] || wt_fail "a form was not refused as it should be (see above)"

# The allowed traffic went through; the encoded CR/LF stayed in the path.
wt_sql "SELECT status = 'delivered' FROM dataflow.deliveries WHERE subscription = '$ALLOWED_SUB'" | grep -qx t \
    || wt_fail "the allowed subscription was not delivered"
wt_sql "SELECT r.status = 'succeeded' FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = '$ALLOWED_JOB'" \
    | grep -qx t || wt_fail "the allowed http job did not succeed"
wt_sql "SELECT status = 'pending' AND last_http_status = 404 FROM dataflow.deliveries WHERE subscription = '$ENCODED'" \
    | grep -qx t || wt_fail "the encoded CR/LF URL was not sent as a plain path"
[ "$(hs_eval ok "sum(1 for e in log if e['event'] == 'request' and 'x-injected' in e['headers'])")" = 0 ] \
    || wt_fail "a header was injected"
# The CR/LF token was never sent: no DAG run request arrived, and the run says why.
[ "$(hs_eval ok "sum(1 for e in log if e['event'] == 'request' and e['path'].startswith('/api/'))")" = 0 ] \
    || wt_fail "a request with the injected token went out"
wt_sql "SELECT r.error LIKE '%invalid header \"Authorization\"%' AND r.error NOT LIKE '%tok%'
          FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'afjob'" | grep -qx t \
    || wt_fail "Airflow token with CR/LF: $(wt_sql "SELECT r.error FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'afjob'")"
allowed=$(hs_eval ok "sum(1 for e in log if e['event'] == 'request')")
echo "allowed receiver $OK: $allowed requests ($N_ALL forms tried, $subs subscriptions and $jobs jobs created)"
[ "$(hs_eval canary "sum(1 for e in log if e['event'] == 'canary')")" = 0 ] || wt_fail "a late connection reached the canary"
grep -E "PANIC|TRAP|terminated by signal" "$WT_DIR/server.log" && wt_fail "server log shows a crash"
grep -q "$SECRET" "$WT_DIR/server.log" && wt_fail "a secret reached the server log"
echo "ok: ssrf"
