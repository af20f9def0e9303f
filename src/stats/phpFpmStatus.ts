// GET /status in php-fpm's status page fields, text or ?json, so existing php-fpm
// dashboards and exporters read it. "listen queue" is honest here: the front
// queue plus the backends' kernel accept queues — every request waiting.
import type { Stats } from './snapshot.js';

export function phpFpmStatus(stats: Stats, format: 'text' | 'json'): string {
  const pool = stats.pools[0];
  const backends = pool?.backends ?? [];
  const active = backends.filter((b) => b.inflight > 0).length;
  const listenQueue = (pool?.queue.current ?? 0) + stats.listenQueue.current;
  const fields: Array<[string, string | number]> = [
    ['pool', pool?.name ?? ''],
    ['process manager', 'static'],
    ['start time', stats.startTime],
    ['start since', stats.uptimeSec],
    ['accepted conn', stats.acceptedConn],
    ['listen queue', listenQueue],
    ['max listen queue', Math.max(pool?.queue.max ?? 0, stats.listenQueue.max)],
    ['listen queue len', pool?.queue.size ?? 0],
    ['idle processes', backends.length - active],
    ['active processes', active],
    ['total processes', backends.length],
    ['max active processes', pool?.maxActiveBackends ?? 0],
    ['max children reached', pool?.slotsExhausted ?? 0],
    ['slow requests', backends.reduce((a, b) => a + b.slowRequests, 0)],
  ];
  if (format === 'json') {
    return JSON.stringify(Object.fromEntries(fields)) + '\n';
  }
  const width = Math.max(...fields.map(([k]) => k.length)) + 2;
  return fields.map(([k, v]) => `${(k + ':').padEnd(width)}${v}`).join('\n') + '\n';
}
