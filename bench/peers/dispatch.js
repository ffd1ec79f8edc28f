// pg_dataflow background-worker dispatch latency for bench/run.sh. Prints one JSON line.
//   node dispatch.js N GAP_MS
// A local HTTP receiver answers every dispatch with a terminal success; an http job
// consumes a source dataset; N sources are registered GAP_MS apart, one transaction each.
// Latency = request arrival - the moment the register() statement was sent (the same
// clock and the same convention as graphile.js's enqueue->start).
const http = require("http");
const { Client } = require("pg");
const [nArg, gapArg] = process.argv.slice(2);
const N = parseInt(nArg || "1000", 10), gap = parseInt(gapArg || "10", 10);
const deadline = setTimeout(() => { console.error("dispatch: timed out"); process.exit(2); }, 120000);
function pct(a, p) { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; }
async function main() {
  const sent = new Map(), lat = [];
  let finish; const finished = new Promise((r) => (finish = r));
  const server = http.createServer((req, res) => {
    const t = performance.now(); let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      try { const k = JSON.parse(body).key; if (sent.has(k)) { lat.push(t - sent.get(k)); sent.delete(k); } } catch (e) {}
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"status":"succeeded","row_count":0}');
      if (lat.length >= N) finish();
    });
  });
  server.keepAliveTimeout = 60000;
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}/dispatch`;
  const c = new Client({ host: process.env.PGHOST, port: +process.env.PGPORT, user: process.env.PGUSER || "postgres",
                         database: process.env.PGDATABASE || "postgres" });
  await c.connect();
  await c.query("SELECT dataflow.create_dataset('lat_src', 'int'), dataflow.create_dataset('lat_out', 'int')");
  await c.query("SELECT dataflow.create_job('lat_job', output => 'lat_out', dispatch => 'http', endpoint => $1)", [url]);
  await c.query("SELECT dataflow.add_input('lat_job', 'lat_src')");
  await c.query("SELECT dataflow.expect('lat_out', '1', $1)", [String(N)]);
  await new Promise((r) => setTimeout(r, 1000));
  for (let i = 1; i <= N; i++) {
    sent.set(String(i), performance.now());
    await c.query("SELECT dataflow.register('lat_src', $1)", [String(i)]);
    await new Promise((r) => setTimeout(r, gap));
  }
  await Promise.race([finished, new Promise((r) => setTimeout(r, 15000))]);
  const { rows } = await c.query("SELECT count(*)::int AS n FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'lat_out' AND c.status = 'ready'");
  console.log(JSON.stringify({ system: "pg_dataflow", mode: "dispatch", n: lat.length, ready: rows[0].n,
    p50_ms: lat.length ? pct(lat, 0.5) : null, p99_ms: lat.length ? pct(lat, 0.99) : null, max_ms: lat.length ? Math.max(...lat) : null }));
  await c.end(); server.close(); clearTimeout(deadline); process.exit(0);
}
main().catch((e) => { console.error(e); process.exit(1); });
