// pg-boss 10 driver for bench/run.sh. Prints one JSON line.
//   node pgboss.js throughput N [refetch|defaults]  N no-op jobs, 8 work() loops, batch 100, 0.5 s polling;
//                                   refetch: a worker whose batch was full fetches again at once
//                                   (boss.notifyWorker(id), pg-boss's documented way past the poll sleep)
//                                   defaults: work() without options (batchSize 1, 2 s polling)
//   node pgboss.js latency N GAP_MS send->handler latency, same work() options
const PgBoss = require("pg-boss");
const [mode, nArg, extra] = process.argv.slice(2);
const N = parseInt(nArg, 10);
const deadline = setTimeout(() => { console.error("pg-boss: timed out"); process.exit(2); }, 240000);
function pct(a, p) { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; }
async function main() {
  const boss = new PgBoss({ host: process.env.PGHOST, port: +process.env.PGPORT, user: process.env.PGUSER || "postgres",
                            database: process.env.PGDATABASE || "postgres", max: 10, supervise: false, schedule: false });
  boss.on("error", (e) => console.error("pg-boss error", e.message));
  await boss.start();
  // defaults (not in make bench: 8 jobs per 2 s poll): work() with no options, batchSize 1, 2 s polling
  const opts = extra === "defaults" ? {} : { batchSize: 100, pollingIntervalSeconds: 0.5 };
  if (mode === "throughput") {
    await boss.createQueue("noop");
    for (let i = 0; i < N; i += 5000)
      await boss.insert(Array.from({ length: Math.min(5000, N - i) }, () => ({ name: "noop", data: {} })));
    let done = 0, finish; const finished = new Promise((r) => (finish = r));
    const t0 = performance.now();
    // pg-boss 10's worker loop sleeps pollingInterval minus the batch's duration after EVERY
    // fetch, full or not (src/worker.js): 8 loops x 100 jobs / 0.5 s caps it at 1,600 jobs/s.
    const refetch = extra === "refetch";
    for (let w = 0; w < 8; w++) {
      let id = null;
      id = await boss.work("noop", opts, async (jobs) => {
        done += jobs.length; if (done >= N) setImmediate(finish);
        if (refetch && id && jobs.length === opts.batchSize) boss.notifyWorker(id);
      });
    }
    await finished;
    for (let i = 0; i < 2000; i++) {   // the last batch is completed after its handler returns
      const n = await boss.getQueueSize("noop", { before: "completed" });
      if (n === 0) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const secs = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ system: "pg-boss", mode: extra === "refetch" ? "batch100_refetch" : extra === "defaults" ? "defaults" : "batch100", jobs: N, seconds: secs, jobs_per_s: N / secs }));
  } else {
    const gap = parseInt(extra || "10", 10);
    await boss.createQueue("lat");
    const sent = new Array(N), lat = [];
    let finish; const finished = new Promise((r) => (finish = r));
    for (let w = 0; w < 8; w++)
      await boss.work("lat", opts, async (jobs) => { const now = performance.now();
        for (const j of jobs) lat.push(now - sent[j.data.i]); if (lat.length >= N) finish(); });
    for (let i = 0; i < N; i++) { sent[i] = performance.now(); await boss.send("lat", { i }); await new Promise((r) => setTimeout(r, gap)); }
    await Promise.race([finished, new Promise((r) => setTimeout(r, 10000))]);
    console.log(JSON.stringify({ system: "pg-boss", mode: "latency", n: lat.length, p50_ms: pct(lat, 0.5), p99_ms: pct(lat, 0.99), max_ms: Math.max(...lat) }));
  }
  await boss.stop({ graceful: false, wait: true, timeout: 2000 });
  clearTimeout(deadline);
  process.exit(0);
}
main().catch((e) => { console.error(e); process.exit(1); });
