// The access log's own CPU per request, isolated from the rest of the request path
// (which on a shared machine varies more than the log costs): the work a logged
// response adds — the LoggedExchange wrapper, the line, the batched write to a file —
// against the same response unlogged, alternating in one process, CPU from
// process.cpuUsage() (all threads: libuv's pool does the writes).
//   npx tsc -p tsconfig.json && node bench/access-log-cost.mjs [rounds=5] [requests=200000]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AccessLog, LoggedExchange } from '../dist/server/accessLog.js';

const rounds = Number(process.argv[2] ?? 5);
const N = Number(process.argv[3] ?? 200_000);
const silent = { info() {}, warn() {}, error() {}, debug() {} };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'upfront-alcost-'));
const headers = ['Host', '127.0.0.1:8080', 'User-Agent', 'wrk/4.1.0 (like a browser would say more)', 'Accept', '*/*', 'Referer', 'http://127.0.0.1:8080/'];
const conn = { remoteAddress: '127.0.0.1', remotePort: 50000, localAddress: '127.0.0.1', localPort: 8080, encrypted: false };
const body = Buffer.alloc(2400, 'x');
/** What the HTTP/1.1 layer's exchange looks like to the wrapper, doing nothing. */
function rawExchange(i) {
  return {
    method: 'GET', target: `/Hello/100?i=${i & 1023}`, versionMinor: 1, headers, host: '127.0.0.1:8080', contentType: undefined, connection: conn,
    contentLength: 0, chunked: false, headersSent: false, finished: false,
    setClientEvents() {}, readBody() {}, pauseBody() {}, resumeBody() {},
    respond() { this.finished = true; }, writeHead() {}, write() { return true; }, end() { this.finished = true; }, destroy() {},
  };
}
const turn = () => new Promise((r) => setImmediate(r));

async function run(log) {
  const t0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    const raw = rawExchange(i);
    const ex = log === null ? raw : new LoggedExchange(raw, log);
    ex.respond(200, null, ['Content-Type', 'text/html'], body);
    if ((i & 511) === 511) await turn(); // the event loop turns as between requests: writes complete
  }
  if (log !== null) {
    log.flush();
    while (log.written + log.dropped < N) await turn();
  }
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / N;
}

const rows = [];
for (let r = 1; r <= rounds; r++) {
  for (const format of ['none', 'combined', 'json']) {
    const file = path.join(dir, `${format}.log`);
    const log = format === 'none' ? null : new AccessLog(file, format, silent);
    const us = await run(log);
    log?.close();
    if (log && log.dropped > 0) throw new Error(`${log.dropped} lines dropped`);
    rows.push({ r, format, us });
    try { fs.rmSync(file); } catch { /* none */ }
  }
}
fs.rmSync(dir, { recursive: true, force: true });
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
console.log('| round | log | CPU µs per response |');
console.log('|---:|---|---:|');
for (const row of rows) console.log(`| ${row.r} | ${row.format} | ${row.us.toFixed(2)} |`);
const base = med(rows.filter((x) => x.format === 'none').map((x) => x.us));
for (const f of ['combined', 'json']) {
  const m = med(rows.filter((x) => x.format === f).map((x) => x.us));
  console.log(`median ${f}: ${m.toFixed(2)} µs, ${(m - base).toFixed(2)} µs over none (${base.toFixed(2)})`);
}
console.log(`node bench/access-log-cost.mjs ${rounds} ${N}; ${new Date().toISOString()}; nproc ${os.cpus().length}; load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; node ${process.version}`);
