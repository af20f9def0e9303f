#!/usr/bin/env node
// Soak (not a test): 200 concurrent clients for a while against upfront with 4 Python
// backends, one of them killed with SIGKILL every few seconds. Every request must get
// an answer: 2xx, or a 502/503/504 with a body that says why (a response already under
// way when its backend dies is cut, and counted apart). The front's RSS and open fds
// must stay flat. Prints a summary; exits 1 when a request got anything else.
//
//   node bench/soak.mjs [seconds=600] [concurrency=200] [killEveryMs=3000]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { shebangNodeFlags } from '../dist/nodeFlags.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const seconds = Number(process.argv[2] ?? 600);
const concurrency = Number(process.argv[3] ?? 200);
const killEveryMs = Number(process.argv[4] ?? 3000);

function freePort() {
  return new Promise((resolve) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); });
}

const port = await freePort();
const adminPort = await freePort();
const front = spawn(process.execPath, [...shebangNodeFlags(path.join(ROOT, 'dist/cli.js')), path.join(ROOT, 'dist/cli.js'), 'run', '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${adminPort}`,
  '-n', '4', '--log-level', 'warn', '--log-format', 'json', '--', 'python3', path.join(ROOT, 'examples/python/hello.py')], { stdio: ['ignore', 'pipe', 'inherit'] });
let logLines = 0;
const logKinds = new Map();
front.stdout.on('data', (c) => {
  for (const line of c.toString().split('\n')) {
    if (!line) continue;
    logLines++;
    try { const l = JSON.parse(line); const k = (l.msg ?? '').replace(/\d+/g, 'N').slice(0, 90); logKinds.set(k, (logKinds.get(k) ?? 0) + 1); } catch { /* not JSON */ }
  }
});

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
function get(p, opts = {}) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, agent: opts.agent ?? agent, method: opts.method ?? 'GET', timeout: 60_000 }, (res) => {
      let bytes = 0;
      let body = '';
      res.on('data', (d) => { bytes += d.length; if (body.length < 200) body += d.toString('latin1'); });
      res.on('end', () => resolve({ status: res.statusCode, bytes, body, complete: res.complete }));
      res.on('error', () => resolve({ status: res.statusCode, bytes, body, cut: true }));
      res.on('aborted', () => resolve({ status: res.statusCode, bytes, body, cut: true }));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout (60 s)')));
    req.on('error', (err) => resolve({ status: 0, error: err.message }));
    req.end(opts.body);
  });
}

async function stats() {
  const r = await get('/stats', { agent: false }).catch(() => null);
  return r;
}
function adminStats() {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: adminPort, path: '/stats' }, (res) => {
      let t = '';
      res.on('data', (d) => { t += d; });
      res.on('end', () => { try { resolve(JSON.parse(t)); } catch (e) { reject(e); } });
    }).on('error', reject);
  });
}
void stats;

// Wait for the front.
for (let i = 0; ; i++) {
  const r = await get('/Hello/1', { agent: false });
  if (r.status === 200) break;
  if (i > 200) { console.error('upfront did not come up'); front.kill('SIGKILL'); process.exit(2); }
  await new Promise((r) => setTimeout(r, 100));
}

const counts = { ok: 0, clear5xx: 0, cut: 0, other: 0 };
const others = new Map();
const byStatus = new Map();
const deadline = Date.now() + seconds * 1000;
const paths = ['/Hello/10', '/Hello/100', '/bytes/100000', '/sleep/20'];
let n = 0;
async function client() {
  while (Date.now() < deadline) {
    const k = n++ % 10;
    const r = k === 9 ? await get('/sha256', { method: 'POST', body: Buffer.alloc(20_000, k) }) : await get(paths[k % paths.length]);
    byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
    if (r.cut) counts.cut++;
    else if (r.status >= 200 && r.status < 300) counts.ok++;
    else if ([502, 503, 504].includes(r.status) && /^5\d\d [A-Za-z ]+: ./.test(r.body)) counts.clear5xx++;
    else {
      counts.other++;
      const key = `${r.status} ${r.error ?? r.body.slice(0, 80)}`;
      others.set(key, (others.get(key) ?? 0) + 1);
    }
  }
}

const samples = [];
function sample() {
  try {
    const rss = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${front.pid}/status`, 'utf8'))[1]) / 1024;
    const fds = fs.readdirSync(`/proc/${front.pid}/fd`).length;
    samples.push({ t: Math.round((Date.now() - started) / 1000), rssMb: Math.round(rss), fds });
  } catch { /* gone */ }
}
const started = Date.now();
let kills = 0;
const killer = setInterval(async () => {
  try {
    const s = await adminStats();
    const pids = s.pools[0].backends.map((b) => b.pid).filter((p) => p);
    const victim = pids[Math.floor(Math.random() * pids.length)];
    if (victim) { process.kill(victim, 'SIGKILL'); kills++; }
  } catch { /* admin busy */ }
}, killEveryMs);
const sampler = setInterval(sample, 10_000);
sample();
await Promise.all(Array.from({ length: concurrency }, client));
clearInterval(killer);
clearInterval(sampler);
// Quiet for a moment so the last restarts finish, then the final sample.
await new Promise((r) => setTimeout(r, 3000));
sample();
const finalStats = await adminStats();
front.kill('SIGTERM');
await new Promise((r) => front.once('exit', r));

const total = counts.ok + counts.clear5xx + counts.cut + counts.other;
const first = samples[1] ?? samples[0];
const last = samples[samples.length - 1];
console.log(JSON.stringify({
  command: `node bench/soak.mjs ${seconds} ${concurrency} ${killEveryMs}`,
  seconds, concurrency, kills, requests: total, ...counts,
  byStatus: Object.fromEntries(byStatus), others: Object.fromEntries(others),
  rssMb: { start: first?.rssMb, end: last?.rssMb, max: Math.max(...samples.map((s) => s.rssMb)) },
  fds: { start: first?.fds, end: last?.fds, max: Math.max(...samples.map((s) => s.fds)) },
  restarts: finalStats.pools[0].backends.reduce((a, b) => a + b.restarts, 0),
  logLines, topLogLines: [...logKinds].sort((a, b) => b[1] - a[1]).slice(0, 8),
  samples,
}, null, 2));
process.exit(counts.other > 0 ? 1 : 0);
