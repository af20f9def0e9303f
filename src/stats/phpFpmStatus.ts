// GET /status in php-fpm's status page formats — text, ?json, ?xml, ?html,
// ?openmetrics, each with ?full for a block per process — field for field, so
// php-fpm dashboards and exporters read it. "listen queue" means what it means in
// /stats and /metrics: every request waiting for a backend to take it (the front
// queue plus the backends' kernel accept queues).
import type { BackendStats, Stats } from './snapshot.js';

export type StatusFormat = 'text' | 'json' | 'xml' | 'html' | 'openmetrics';

export const STATUS_CONTENT_TYPES: Record<StatusFormat, string> = {
  text: 'text/plain',
  json: 'application/json',
  xml: 'text/xml',
  html: 'text/html',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
};

/** The pool's figures under php-fpm's names, in its order. */
export interface PoolStatus {
  pool: string;
  'process manager': string;
  'start time': number;
  'start since': number;
  'accepted conn': number;
  'listen queue': number;
  'max listen queue': number;
  'listen queue len': number;
  'idle processes': number;
  'active processes': number;
  'total processes': number;
  'max active processes': number;
  'max children reached': number;
  'slow requests': number;
}

/** One process under php-fpm's names ("request duration" in µs, as php-fpm). */
export interface ProcessStatus {
  pid: number;
  state: 'Idle' | 'Running';
  'start time': number;
  'start since': number;
  requests: number;
  'request duration': number;
  'request method': string;
  'request uri': string;
  'content length': number;
  user: string;
  script: string;
  /** The process's CPU % over the last second (upfront cannot see a single request's CPU). */
  'last request cpu': number;
  /** The process's resident memory in bytes (upfront cannot see a single request's peak). */
  'last request memory': number;
}

export function poolStatus(stats: Stats): PoolStatus {
  const pool = stats.pools[0];
  const backends = pool?.backends ?? [];
  const active = backends.filter((b) => b.inflight > 0).length;
  return {
    pool: pool?.name ?? '',
    'process manager': stats.processManager,
    'start time': stats.startTime,
    'start since': stats.uptimeSec,
    'accepted conn': stats.acceptedConn,
    'listen queue': stats.listenQueue.current,
    'max listen queue': stats.listenQueue.max,
    'listen queue len': stats.listenQueue.len,
    'idle processes': backends.length - active,
    'active processes': active,
    'total processes': backends.length,
    'max active processes': pool?.maxActiveBackends ?? 0,
    'max children reached': pool?.slotsExhausted ?? 0,
    'slow requests': backends.reduce((a, b) => a + b.slowRequests, 0),
  };
}

/** The per-process fields, in php-fpm's order. */
export const PROCESS_FIELDS: ReadonlyArray<keyof ProcessStatus> = [
  'pid', 'state', 'start time', 'start since', 'requests', 'request duration', 'request method', 'request uri',
  'content length', 'user', 'script', 'last request cpu', 'last request memory',
];

export function processStatus(b: BackendStats, nowSec: number): ProcessStatus {
  const running = b.current !== null;
  const r = b.current ?? b.last;
  const start = b.process?.startTime ?? 0;
  return {
    pid: b.pid ?? 0,
    state: running ? 'Running' : 'Idle',
    'start time': Math.floor(start),
    'start since': start > 0 ? Math.max(0, Math.floor(nowSec - start)) : 0,
    requests: b.requests,
    'request duration': r ? Math.round(r.durationMs * 1000) : 0,
    'request method': r?.method ?? '-',
    'request uri': r?.uri ?? '-',
    'content length': r?.contentLength ?? 0,
    user: '-',
    script: '-',
    'last request cpu': b.process?.cpuPercent ?? 0,
    'last request memory': b.process?.rssBytes ?? 0,
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** strftime "%d/%b/%Y:%H:%M:%S %z" in local time, as php-fpm's text and HTML pages. */
export function fpmTime(epochSec: number): string {
  const d = new Date(epochSec * 1000);
  const p2 = (n: number) => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const z = `${off >= 0 ? '+' : '-'}${p2(Math.floor(Math.abs(off) / 60))}${p2(Math.abs(off) % 60)}`;
  return `${p2(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${z}`;
}

function escHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const TEXT_WIDTH = 22; // "max active processes: " — php-fpm pads every name to it

function textLine(name: string, value: string | number): string {
  return `${(name + ':').padEnd(TEXT_WIDTH)}${value}\n`;
}

export function phpFpmStatus(stats: Stats, format: StatusFormat, full = false, nowSec = Date.now() / 1000): string {
  const s = poolStatus(stats);
  const procs = full ? stats.pools.flatMap((p) => p.backends).map((b) => processStatus(b, nowSec)) : [];
  switch (format) {
    case 'json': {
      const out: Record<string, unknown> = { ...s };
      if (full) out.processes = procs;
      return JSON.stringify(out);
    }
    case 'openmetrics':
      return openMetrics(s);
    case 'xml': {
      const tag = (k: string, v: string | number) => `<${k.replace(/ /g, '-').toLowerCase()}>${escHtml(String(v))}</${k.replace(/ /g, '-').toLowerCase()}>`;
      let out = `<?xml version="1.0" ?>\n<status>\n${Object.entries(s).map(([k, v]) => tag(k, v)).join('\n')}\n`;
      if (!full) return out + '</status>';
      out += '<processes>\n';
      for (const p of procs) out += `<process>${Object.entries(p).map(([k, v]) => tag(k, k === 'last request cpu' ? (v as number).toFixed(2) : v)).join('')}</process>\n`;
      return out + '</processes>\n</status>';
    }
    case 'html': {
      const row = (k: string, v: string | number) => `<tr><th>${escHtml(k)}</th><td>${escHtml(String(v))}</td></tr>\n`;
      let out = '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
        + '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n<head><title>PHP-FPM Status Page</title></head>\n<body>\n<table>\n'
        + Object.entries(s).map(([k, v]) => row(k, k === 'start time' ? fpmTime(v as number) : v)).join('') + '</table>\n';
      if (!full) return out + '</body></html>';
      out += `<table border="1">\n<tr>${PROCESS_FIELDS.map((c) => `<th>${escHtml(c)}</th>`).join('')}</tr>\n`;
      for (const p of procs) {
        out += `<tr>${Object.entries(p).map(([k, v]) => `<td>${escHtml(k === 'start time' ? fpmTime(v as number) : k === 'last request cpu' ? (v as number).toFixed(2) : String(v))}</td>`).join('')}</tr>\n`;
      }
      return out + '</table></body></html>';
    }
    default: {
      let out = Object.entries(s).map(([k, v]) => textLine(k, k === 'start time' ? fpmTime(v as number) : v)).join('');
      for (const p of procs) {
        out += '\n************************\n';
        for (const [k, v] of Object.entries(p)) {
          out += textLine(k === 'request uri' ? 'request URI' : k, k === 'start time' ? fpmTime(v as number) : k === 'last request cpu' ? (v as number).toFixed(2) : v);
        }
      }
      return out;
    }
  }
}

/** php-fpm's ?openmetrics page (PHP 8.1+): its names, HELP and TYPE lines, and no per-process block even with ?full. */
function openMetrics(s: PoolStatus): string {
  const m = (name: string, help: string, type: 'gauge' | 'counter', v: number, helpFirst = true) => (helpFirst
    ? `# HELP phpfpm_${name} ${help}\n# TYPE phpfpm_${name} ${type}\n`
    : `# TYPE phpfpm_${name} ${type}\n# HELP phpfpm_${name} ${help}\n`) + `phpfpm_${name} ${v}\n`;
  return m('up', `Could pool ${s.pool} using a ${s['process manager']} PM on PHP-FPM be reached?`, 'gauge', 1)
    + m('start_since', 'The number of seconds since FPM has started.', 'counter', s['start since'])
    + m('accepted_connections', 'The number of requests accepted by the pool.', 'counter', s['accepted conn'])
    + m('listen_queue', 'The number of requests in the queue of pending connections.', 'gauge', s['listen queue'])
    + m('max_listen_queue', 'The maximum number of requests in the queue of pending connections since FPM has started.', 'counter', s['max listen queue'])
    + m('listen_queue_length', 'The size of the socket queue of pending connections.', 'gauge', s['listen queue len'], false)
    + m('idle_processes', 'The number of idle processes.', 'gauge', s['idle processes'])
    + m('active_processes', 'The number of active processes.', 'gauge', s['active processes'])
    + m('total_processes', 'The number of idle + active processes.', 'gauge', s['total processes'])
    + m('max_active_processes', 'The maximum number of active processes since FPM has started.', 'counter', s['max active processes'])
    + m('max_children_reached', 'The number of times, the process limit has been reached, when pm tries to start more children (works only for pm \'dynamic\' and \'ondemand\').', 'counter', s['max children reached'])
    + m('slow_requests', 'The number of requests that exceeded your \'request_slowlog_timeout\' value.', 'counter', s['slow requests'])
    + '# EOF\n';
}
