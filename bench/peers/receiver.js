// Fast HTTP receiver for bench/worker_bench.sh (Node's built-in http only).
//   node receiver.js PORTFILE OUTFILE [SECRETFILE] [MAX_SECONDS=600]
// Listens on 127.0.0.1 (a free port, written to PORTFILE once listening), keep-alive on.
// Every request gets its arrival time stamped when its headers have arrived and is kept
// in memory (at most 1,000,000 of them). Arrival times are Unix seconds with microseconds:
// performance.now() (monotonic, sub-ms) plus the wall-clock offset calibrated per second
// from Date.now() samples taken every 5 ms (Date.now() is whole ms, and an origin fixed at
// start, performance.timeOrigin, was 5-9 ms off in two runs out of six). OUTFILE is written on
// SIGUSR2 (snapshot), on SIGTERM/SIGINT and after MAX_SECONDS (then it exits), as JSON
// lines {"t", "path", "id", "body"}; "id" is the webhook-id header (null for dispatches).
// Signatures are checked only when the file is written (off the hot path): the last
// line is {"summary": {"requests", "dropped", "connections", "verified", "unverified"}}
// (connections: TCP connections accepted so far; verified: null without SECRETFILE).
// Paths: /hook/*  200 "ok"
//        /dispatch/*  200 {"status":"succeeded","row_count":0} (completes an http run)
//        anything else 404.
"use strict";
const http = require("http");
const fs = require("fs");
const crypto = require("crypto");

const [portFile, outFile, secretFile, maxArg] = process.argv.slice(2);
if (!portFile || !outFile) {
  console.error("usage: node receiver.js PORTFILE OUTFILE [SECRETFILE] [MAX_SECONDS]");
  process.exit(2);
}
const MAX_SECONDS = Math.min(Math.max(parseInt(maxArg || "600", 10) || 600, 1), 3600);
const MAX_RECORDS = 1000000;
const MAX_BODY = 1 << 20;
const records = [];
let dropped = 0, connections = 0;

// Wall clock = performance.now() + offset. Date.now() = floor(wall ms), so each sample
// gives Date.now() - performance.now() <= offset; the largest value of a one-second
// window of samples (~200, at random phases of the millisecond) is the offset within
// microseconds, and per-window estimates follow any drift between the two clocks.
const calib = new Map();  // second of performance.now() -> max(Date.now() - performance.now())
function sample() {
  const p = performance.now(), d = Date.now() - p, w = Math.floor(p / 1000);
  if (!(calib.get(w) >= d)) calib.set(w, d);
}
setInterval(sample, 5).unref();
sample();
function wall(p) {
  const w = Math.floor(p / 1000);
  for (let k = 0; k < 5; k++) {   // this window, else the nearest one seen
    if (calib.has(w - k)) return (p + calib.get(w - k)) / 1000;
    if (calib.has(w + k)) return (p + calib.get(w + k)) / 1000;
  }
  return (p + Date.now() - performance.now()) / 1000;
}

function verify(secret, r) {
  if (!r.id || r.sig === undefined) return false;
  const key = Buffer.from(secret.split("_", 2)[1] || "", "base64");
  const want = "v1," + crypto.createHmac("sha256", key).update(`${r.id}.${r.ts}.${r.body}`).digest("base64");
  return r.sig.split(" ").some((s) => s === want);
}

function dump() {
  let secret = null;
  try { secret = secretFile ? fs.readFileSync(secretFile, "utf8").trim() : null; } catch (e) { secret = null; }
  let verified = 0, unverified = 0;
  const lines = records.map((r) => {
    if (secret && r.path.startsWith("/hook")) { if (verify(secret, r)) verified++; else unverified++; }
    return JSON.stringify({ t: wall(r.t), path: r.path, id: r.id, body: r.body });
  });
  lines.push(JSON.stringify({ summary: { requests: records.length, dropped, connections,
    verified: secret ? verified : null, unverified: secret ? unverified : null } }));
  const tmp = outFile + ".tmp";
  fs.writeFileSync(tmp, lines.join("\n") + "\n");
  fs.renameSync(tmp, outFile);
}

const ok = Buffer.from("ok");
const done = Buffer.from('{"status":"succeeded","row_count":0}');
const server = http.createServer((req, res) => {
  const t = performance.now();
  const chunks = [];
  let size = 0;
  req.on("data", (d) => { size += d.length; if (size <= MAX_BODY) chunks.push(d); });
  req.on("end", () => {
    if (records.length < MAX_RECORDS) {
      const h = req.headers;
      records.push({ t, path: req.url, id: h["webhook-id"] || null, ts: h["webhook-timestamp"],
                     sig: h["webhook-signature"], body: Buffer.concat(chunks).toString("utf8") });
    } else {
      dropped++;
    }
    if (req.url.startsWith("/hook")) {
      res.writeHead(200, { "content-type": "text/plain", "content-length": ok.length });
      res.end(ok);
    } else if (req.url.startsWith("/dispatch")) {
      res.writeHead(200, { "content-type": "application/json", "content-length": done.length });
      res.end(done);
    } else {
      res.writeHead(404, { "content-length": 0 });
      res.end();
    }
  });
});
server.keepAliveTimeout = 120000;   // the worker's curl pool keeps its connections
server.headersTimeout = 130000;
server.maxRequestsPerSocket = 0;    // unlimited requests per connection
server.on("connection", (s) => { connections++; s.setNoDelay(true); });

function finish(code) {
  try { dump(); } catch (e) { console.error("receiver: writing " + outFile + ": " + e.message); code = 1; }
  process.exit(code);
}
process.on("SIGUSR2", () => { try { dump(); } catch (e) { console.error("receiver: " + e.message); } });
process.on("SIGTERM", () => finish(0));
process.on("SIGINT", () => finish(0));
setTimeout(() => { console.error(`receiver: lifetime of ${MAX_SECONDS} s reached`); finish(0); }, MAX_SECONDS * 1000).unref();
// unref'd timer above does not keep the process alive; the listening server does.

server.listen({ host: "127.0.0.1", port: 0, backlog: 511 }, () => {
  const tmp = portFile + ".tmp";
  fs.writeFileSync(tmp, String(server.address().port));
  fs.renameSync(tmp, portFile);
});
