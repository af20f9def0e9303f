// `upfront stats`: a table per pool from GET /stats (read by adminClient.ts).
import type { Stats } from '../stats/snapshot.js';

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}

export function formatStats(s: Stats): string {
  const lq = s.listenQueue;
  const out: string[] = [`up ${s.uptimeSec} s, ${s.acceptedConn} connections accepted; listen queue ${lq.current} (front ${lq.frontQueue} + accept queues ${lq.acceptQueues}, max ${lq.max} of ${lq.len})`];
  const causes = Object.entries(s.frontResponses ?? {}).filter(([, n]) => n > 0);
  out.push(`front-generated responses: ${causes.length ? causes.map(([c, n]) => `${c} ${n}`).join(', ') : 'none'}`);
  for (const p of s.pools) {
    const q = p.queue;
    out.push('', `pool ${p.name}: policy ${p.policy}, overflow ${p.overflow}; queue ${q.current}/${q.size} (max ${q.max}, timeouts ${q.timeouts}, full ${q.full}, wait p50 ${q.waitMs.p50} ms p99 ${q.waitMs.p99} ms)`);
    const rows = [['backend', 'pid', 'state', 'slots', 'inflight', 'max', 'requests', '2xx', '4xx', '5xx', 'EAGAIN', 'conn err', 'accept q (cur/max/backlog)', 'restarts', 'mt', 'mpx', 'p50 ms', 'p99 ms', 'rss MB', 'cpu %']];
    for (const b of p.backends) {
      const connErr = Object.entries(b.connectErrors).filter(([k]) => k !== 'EAGAIN').reduce((a, [, v]) => a + v, 0);
      rows.push([b.id, String(b.pid ?? '-'), b.state, String(b.slots), b.pipelined > 0 ? `${b.inflight} (${b.pipelined} pipelined)` : String(b.inflight), String(b.maxInflight), String(b.requests),
        String(b.responses['2xx']), String(b.responses['4xx']), String(b.responses['5xx']), String(b.connectErrors.EAGAIN ?? 0), String(connErr),
        b.acceptQueue ? `${b.acceptQueue.current}/${b.acceptQueue.max}/${b.acceptQueue.backlog}` : '-', String(b.restarts),
        b.multithreaded ? 'yes' : 'no', b.multiplexed ? 'yes' : 'no', String(b.latencyMs.p50), String(b.latencyMs.p99),
        b.process ? (b.process.rssBytes / (1 << 20)).toFixed(1) : '-', b.process ? b.process.cpuPercent.toFixed(1) : '-']);
    }
    out.push(table(rows));
  }
  // A shared socket: one backend, several processes behind it (the kernel picks): a row per process.
  const behindShared = (s.children ?? []).filter((c) => c.backend !== undefined && c.backend !== c.id);
  if (behindShared.length > 0) {
    const rows = [['process', 'pid', 'backend', 'state', 'restarts']];
    for (const c of behindShared) rows.push([c.id, String(c.pid ?? '-'), c.backend, c.state, String(c.restarts)]);
    out.push('', table(rows));
  }
  return out.join('\n') + '\n';
}
