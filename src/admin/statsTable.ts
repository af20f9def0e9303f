// `upfront stats`: reads GET /stats from the admin listener and prints a table per pool.
import http from 'node:http';
import { parseAddress } from '../config/schema.js';
import type { Stats } from '../stats/snapshot.js';

export function fetchStats(admin: string, timeoutMs = 5000): Promise<Stats> {
  const a = parseAddress(admin);
  if (typeof a === 'string') return Promise.reject(new Error(`--admin: ${a}`));
  const where = a.kind === 'unix' ? `unix:${a.path}` : `${a.host}:${a.port}`;
  return new Promise((resolve, reject) => {
    const req = http.get(a.kind === 'unix' ? { socketPath: a.path, path: '/stats' } : { host: a.host, port: a.port, path: '/stats' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`admin ${where} answered ${res.statusCode} to GET /stats`));
        try { resolve(JSON.parse(body) as Stats); } catch { reject(new Error(`admin ${where} sent something that is not JSON`)); }
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`admin ${where} did not answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code === 'ECONNREFUSED' || err.code === 'ENOENT'
      ? `nothing answers on admin ${where} (${err.code}); is upfront running, with --admin ${admin}?` : `admin ${where}: ${err.message}`)));
  });
}

/** POST /scale to a running upfront. */
export async function postScale(admin: string, procs: number): Promise<{ from: number; to: number }> {
  const parsed = await postAdmin(admin, '/scale', JSON.stringify({ procs })) as { from?: number; to?: number };
  return { from: parsed.from ?? 0, to: parsed.to ?? procs };
}

/** POSTs `body` to `path` on the admin listener; resolves with the JSON answer of a 202. */
export function postAdmin(admin: string, urlPath: string, body: string, timeoutMs = 10_000): Promise<unknown> {
  const a = parseAddress(admin);
  if (typeof a === 'string') return Promise.reject(new Error(`--admin: ${a}`));
  const where = a.kind === 'unix' ? `unix:${a.path}` : `${a.host}:${a.port}`;
  return new Promise((resolve, reject) => {
    const target = a.kind === 'unix' ? { socketPath: a.path } : { host: a.host, port: a.port };
    const req = http.request({ ...target, path: urlPath, method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let parsed: { error?: string } = {};
        try { parsed = JSON.parse(text); } catch { /* reported below */ }
        if (res.statusCode === 202) resolve(parsed);
        else reject(new Error(parsed.error ?? `admin ${where} answered ${res.statusCode} to POST ${urlPath}`));
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`admin ${where} did not answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code === 'ECONNREFUSED' || err.code === 'ENOENT'
      ? `nothing answers on admin ${where} (${err.code}); is upfront running, with --admin ${admin}?` : `admin ${where}: ${err.message}`)));
    req.end(body);
  });
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}

export function formatStats(s: Stats): string {
  const out: string[] = [`up ${s.uptimeSec} s, ${s.acceptedConn} connections accepted`];
  for (const p of s.pools) {
    const q = p.queue;
    out.push('', `pool ${p.name}: policy ${p.policy}, overflow ${p.overflow}; queue ${q.current}/${q.size} (max ${q.max}, timeouts ${q.timeouts}, full ${q.full}, wait p50 ${q.waitMs.p50} ms p99 ${q.waitMs.p99} ms)`);
    const rows = [['backend', 'pid', 'state', 'slots', 'inflight', 'max', 'requests', '2xx', '4xx', '5xx', 'EAGAIN', 'conn err', 'accept q (cur/max/backlog)', 'restarts', 'mt', 'mpx', 'p50 ms', 'p99 ms']];
    for (const b of p.backends) {
      const connErr = Object.entries(b.connectErrors).filter(([k]) => k !== 'EAGAIN').reduce((a, [, v]) => a + v, 0);
      rows.push([b.id, String(b.pid ?? '-'), b.state, String(b.slots), String(b.inflight), String(b.maxInflight), String(b.requests),
        String(b.responses['2xx']), String(b.responses['4xx']), String(b.responses['5xx']), String(b.connectErrors.EAGAIN ?? 0), String(connErr),
        b.acceptQueue ? `${b.acceptQueue.current}/${b.acceptQueue.max}/${b.acceptQueue.backlog}` : '-', String(b.restarts),
        b.multithreaded ? 'yes' : 'no', b.multiplexed ? 'yes' : 'no', String(b.latencyMs.p50), String(b.latencyMs.p99)]);
    }
    out.push(table(rows));
  }
  return out.join('\n') + '\n';
}
