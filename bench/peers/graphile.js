// graphile-worker 0.17 driver for bench/run.sh. Prints one JSON line.
//   node graphile.js throughput N [batched]   N no-op jobs, concurrency 8
//   node graphile.js latency N GAP_MS         enqueue->start latency of N jobs, GAP_MS apart
// Connection from PGHOST/PGPORT/PGUSER/PGDATABASE (libpq-style environment).
const { run, runMigrations } = require("graphile-worker");
const { Client } = require("pg");

const [mode, nArg, extra] = process.argv.slice(2);
const N = parseInt(nArg, 10);
const connectionString = `postgres:///${process.env.PGDATABASE || "postgres"}?host=${process.env.PGHOST}&port=${process.env.PGPORT}&user=${process.env.PGUSER || "postgres"}`;
const deadline = setTimeout(() => { console.error("graphile: timed out"); process.exit(2); }, 240000);
const quiet = { logger: { scope: () => quietLogger }, };
const noop = () => {};
const quietLogger = { debug: noop, info: noop, warn: noop, error: (...a) => console.error(...a), scope: () => quietLogger };
const { Logger } = require("graphile-worker");
const logger = new Logger(() => (level, message) => { if (level === "error") console.error(message); });

function pct(a, p) { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; }

async function main() {
  await runMigrations({ connectionString, logger });
  const c = new Client({ connectionString });
  await c.connect();
  if (mode === "throughput") {
    const batched = extra === "batched";
    await c.query(`SELECT graphile_worker.add_jobs(array(SELECT ROW('noop', '{}'::json, NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec FROM generate_series(1, $1)))`, [N]);
    // the same as every other queue of the run gets after its bulk load (bench/run.sh):
    // without statistics the planner takes the 20,000-row table for a few rows and
    // get_jobs with LIMIT 10 becomes a seq scan + sort of the whole table (4 ms a fetch)
    await c.query("VACUUM ANALYZE graphile_worker._private_jobs");
    let done = 0, t0, finish;
    const finished = new Promise((r) => (finish = r));
    const preset = { worker: { concurrentJobs: 8, maxPoolSize: 10 } };
    if (batched) { preset.worker.localQueue = { size: 10 }; preset.worker.completeJobBatchDelay = 0; }
    t0 = performance.now();
    const runner = await run({ connectionString, concurrency: 8, noHandleSignals: true, logger, preset,
      taskList: { noop: async () => { if (++done === N) finish(); } } });
    await finished;
    // completions may still be in flight (batched): wait until the table is empty
    for (let i = 0; i < 2000; i++) {
      const { rows } = await c.query("SELECT count(*)::int AS n FROM graphile_worker.jobs");
      if (rows[0].n === 0) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const secs = (performance.now() - t0) / 1000;
    await runner.stop();
    console.log(JSON.stringify({ system: "graphile-worker", mode: batched ? "batched" : "defaults", jobs: N, seconds: secs, jobs_per_s: N / secs }));
  } else if (mode === "latency") {
    const gap = parseInt(extra || "10", 10);
    const sent = new Array(N), lat = [];
    let finish; const finished = new Promise((r) => (finish = r));
    const runner = await run({ connectionString, concurrency: 8, noHandleSignals: true, logger,
      taskList: { lat: async (p) => { lat.push(performance.now() - sent[p.i]); if (lat.length === N) finish(); } } });
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; i < N; i++) {
      sent[i] = performance.now();
      await c.query("SELECT graphile_worker.add_job('lat', json_build_object('i', $1::int))", [i]);
      await new Promise((r) => setTimeout(r, gap));
    }
    await Promise.race([finished, new Promise((r) => setTimeout(r, 10000))]);
    await runner.stop();
    console.log(JSON.stringify({ system: "graphile-worker", mode: "latency", n: lat.length, p50_ms: pct(lat, 0.5), p99_ms: pct(lat, 0.99), max_ms: Math.max(...lat) }));
  }
  await c.end();
  clearTimeout(deadline);
}
main().catch((e) => { console.error(e); process.exit(1); });
