#!/usr/bin/env node
// Kubernetes preStop hook: starts upfront's graceful stop and returns once it has
// drained, so the kubelet's own SIGTERM afterwards finds nothing left to cut.
//   lifecycle: { preStop: { exec: { command: ["node", "deploy/prestop.mjs"] } } }
//
//   node deploy/prestop.mjs [--pid N] [--admin HOST:PORT] [--timeout SECONDS]
//
// 1. SIGTERM to upfront (--pid, default 1: tini passes it on to upfront, or upfront itself).
//    upfront answers /readyz with 503 at once, keeps serving for --shutdown-delay (endpoints
//    and balancers drop the pod meanwhile), then stops accepting and finishes what is in flight.
// 2. Polls the admin listener (default 127.0.0.1:8081) every 250 ms, printing what is still in
//    flight, until it stops answering: upfront closes it last, once everything is done.
// Exits 0 when drained, 1 after --timeout seconds (default 60; keep it under the pod's
// terminationGracePeriodSeconds).
import http from 'node:http';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const pid = Number(opt('pid', process.env.UPFRONT_PID ?? '1'));
const admin = opt('admin', process.env.UPFRONT_ADMIN ?? '127.0.0.1:8081');
const timeoutMs = Number(opt('timeout', '60')) * 1000;
const [host, port] = [admin.slice(0, admin.lastIndexOf(':')), Number(admin.slice(admin.lastIndexOf(':') + 1))];

function get(path) {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path, agent: false, timeout: 2000, headers: { Host: admin } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ error: err.code ?? err.message }));
  });
}

try {
  process.kill(pid, 'SIGTERM');
} catch (err) {
  console.error(`prestop: cannot signal upfront (pid ${pid}): ${err.code ?? err.message}; set --pid`);
  process.exit(1);
}
console.log(`prestop: SIGTERM sent to pid ${pid}; waiting for upfront to drain (admin ${admin})`);
const deadline = Date.now() + timeoutMs;
let last = '';
while (Date.now() < deadline) {
  const stats = await get('/stats');
  if (stats.error) {
    console.log(`prestop: upfront is drained and stopped (admin ${admin}: ${stats.error})`);
    process.exit(0);
  }
  try {
    const s = JSON.parse(stats.body);
    let inflight = 0;
    let queued = 0;
    for (const p of s.pools) {
      queued += p.queue.current;
      for (const b of p.backends) inflight += b.inflight;
    }
    const line = `${inflight} request(s) in flight, ${queued} queued`;
    if (line !== last) console.log(`prestop: ${line}`);
    last = line;
  } catch { /* a partial answer while it closes */ }
  await new Promise((r) => setTimeout(r, 250));
}
console.error(`prestop: upfront still running after ${timeoutMs / 1000} s`);
process.exit(1);
