// GET /metrics: the /stats figures in Prometheus text format 0.0.4, names prefixed
// upfront_, written from the same snapshot so they agree. Conventions: base units
// (seconds, bytes), durations as histograms (_bucket, _sum, _count), counters end
// in _total and are present at 0 for every known cause, errno and kind, so that a
// rate() has a series before the first event. The front's own process figures use
// the standard process_ names. Window rates are not exported: Prometheus computes
// its own from the counters.
import { CAUSE_STATUS, FRONT_RESPONSE_CAUSES } from './frontResponses.js';
import type { SecondsHistogram } from './histogram.js';
import type { Stats } from './snapshot.js';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** connect() errnos every backend reports, at 0 until seen (others appear when they happen). */
export const KNOWN_CONNECT_ERRNOS = ['EAGAIN', 'ECONNREFUSED', 'ENOENT', 'EACCES', 'ETIMEDOUT', 'ECONNRESET', 'EMFILE'] as const;
/** Failures after connecting, by kind (the transports' error kinds other than connect and request), and abort-ignored: a connection closed because the app did not end a request it was told to abort. */
export const KNOWN_FAILURE_KINDS = ['closed', 'protocol', 'head', 'length', 'timeout', 'cant-mpx', 'overloaded', 'unknown-role', 'abort-ignored'] as const;

type Labels = Record<string, string | number>;
type Kind = 'gauge' | 'counter' | 'histogram';

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function fmtValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Families in order of first use, each with HELP and TYPE once, samples grouped under it. */
class Exposition {
  private readonly families = new Map<string, { help: string; kind: Kind; lines: string[] }>();

  private family(name: string, help: string, kind: Kind): string[] {
    let f = this.families.get(name);
    if (!f) {
      f = { help, kind, lines: [] };
      this.families.set(name, f);
    }
    return f.lines;
  }

  private static labels(labels: Labels): string {
    const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`);
    return parts.length ? `{${parts.join(',')}}` : '';
  }

  gauge(name: string, help: string, labels: Labels, value: number): void {
    this.family(name, help, 'gauge').push(`${name}${Exposition.labels(labels)} ${fmtValue(value)}`);
  }

  counter(name: string, help: string, labels: Labels, value: number): void {
    this.family(name, help, 'counter').push(`${name}${Exposition.labels(labels)} ${fmtValue(value)}`);
  }

  histogram(name: string, help: string, labels: Labels, h: SecondsHistogram): void {
    const lines = this.family(name, help, 'histogram');
    for (const [le, n] of h.buckets) lines.push(`${name}_bucket${Exposition.labels({ ...labels, le })} ${n}`);
    lines.push(`${name}_sum${Exposition.labels(labels)} ${fmtValue(h.sum)}`);
    lines.push(`${name}_count${Exposition.labels(labels)} ${h.count}`);
  }

  text(): string {
    const out: string[] = [];
    for (const [name, f] of this.families) {
      out.push(`# HELP ${name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${f.kind}`, ...f.lines);
    }
    return out.join('\n') + '\n';
  }
}

/** Known keys at 0, then whatever else was counted. */
function withKnown(counts: Record<string, number>, known: readonly string[]): Array<[string, number]> {
  const out = new Map<string, number>(known.map((k) => [k, 0]));
  for (const [k, v] of Object.entries(counts)) out.set(k, v);
  return [...out];
}

export function renderPrometheus(stats: Stats): string {
  const e = new Exposition();
  e.gauge('upfront_start_time_seconds', 'Unix time upfront started', {}, stats.startTime);
  e.gauge('upfront_uptime_seconds', 'Seconds since upfront started', {}, stats.uptimeSec);
  e.counter('upfront_accepted_connections_total', 'Client connections accepted on the public listener', {}, stats.acceptedConn);
  e.gauge('upfront_listen_queue', 'Requests waiting for a backend to take them: the front queues plus the backends\' kernel accept queues (php-fpm\'s listen queue)', {}, stats.listenQueue.current);
  e.gauge('upfront_listen_queue_max', 'Most requests seen waiting in the listen queue at a sample', {}, stats.listenQueue.max);
  e.gauge('upfront_listen_queue_length', 'Requests the listen queue holds at most: queue-size plus the backlogs of the backend sockets', {}, stats.listenQueue.len);
  for (const cause of FRONT_RESPONSE_CAUSES) {
    e.counter('upfront_front_responses_total', 'Responses the front wrote itself, by cause (not counted in any backend\'s responses)',
      { cause, code: CAUSE_STATUS[cause] }, stats.frontResponses[cause]);
  }
  e.counter('upfront_process_recycles_total', 'Backend processes replaced after max-requests or max-rss', {}, stats.processes.recycles);
  e.counter('upfront_process_reloads_total', 'Rolling reloads done', {}, stats.processes.reloads);
  e.counter('upfront_process_scale_changes_total', 'Changes of the process count (scale, autoscale)', {}, stats.processes.scaleChanges);
  if (stats.front) {
    e.counter('process_cpu_seconds_total', 'Total user and system CPU time of the upfront process in seconds', {}, stats.front.cpuSeconds);
    e.gauge('process_resident_memory_bytes', 'Resident memory of the upfront process in bytes', {}, stats.front.rssBytes);
    e.gauge('process_start_time_seconds', 'Start time of the upfront process since the epoch in seconds', {}, stats.front.startTime);
  }
  for (const p of stats.pools) {
    const pl = { pool: p.name };
    e.gauge('upfront_queue_requests', 'Requests waiting in the front queue now (qcur)', pl, p.queue.current);
    e.gauge('upfront_queue_requests_max', 'Most requests waiting in the front queue at once (qmax)', pl, p.queue.max);
    e.gauge('upfront_queue_size', 'Requests the front queue holds at most (queue-size)', pl, p.queue.size);
    e.counter('upfront_queue_timeouts_total', 'Requests answered 503 after waiting queue-timeout', pl, p.queue.timeouts);
    e.counter('upfront_queue_full_total', 'Requests answered 503 because the queue was full', pl, p.queue.full);
    e.histogram('upfront_queue_wait_seconds', 'Time requests that got a slot waited in the front queue (qtime)', pl, p.queue.waitSeconds);
    e.counter('upfront_slots_exhausted_total', 'Requests that found every slot busy (php-fpm max children reached)', pl, p.slotsExhausted);
    e.gauge('upfront_active_backends', 'Backends with a request in flight now', pl, p.activeBackends);
    e.gauge('upfront_active_backends_max', 'Most backends with a request in flight at once', pl, p.maxActiveBackends);
    for (const b of p.backends) {
      const bl = { pool: p.name, backend: b.id };
      e.gauge('upfront_backend_up', 'Backend is ready to take requests (1) or not (0)', bl, b.state === 'ready' || b.state === 'busy' ? 1 : 0);
      e.gauge('upfront_backend_slots', 'Requests the backend may have in flight (its capacity now)', bl, b.slots);
      e.gauge('upfront_backend_slots_claimed', 'Slots the backend said it has (GET_VALUES) or the flags gave', bl, b.slotsClaimed);
      if (b.slotsLearned !== null) e.gauge('upfront_backend_slots_learned', 'Slots the backend was seen to serve at once', bl, b.slotsLearned);
      e.gauge('upfront_backend_inflight', 'Requests in flight at the backend (scur), pipelined ones included', bl, b.inflight);
      e.gauge('upfront_backend_pipelined', 'Requests in flight beyond the slots, written behind another on a connection', bl, b.pipelined);
      e.gauge('upfront_backend_inflight_max', 'Most requests in flight at once (smax)', bl, b.maxInflight);
      e.counter('upfront_backend_requests_total', 'Requests sent to the backend', bl, b.requests);
      for (const [code, v] of Object.entries(b.responses)) e.counter('upfront_backend_responses_total', 'Responses from the backend by status class', { ...bl, code }, v);
      for (const [errno, v] of withKnown(b.connectErrors, KNOWN_CONNECT_ERRNOS)) e.counter('upfront_backend_connect_errors_total', 'Failed connect() attempts by errno (econ)', { ...bl, errno }, v);
      for (const [kind, v] of withKnown(b.failures, KNOWN_FAILURE_KINDS)) e.counter('upfront_backend_failures_total', 'Requests failed after connecting, by kind', { ...bl, kind }, v);
      e.counter('upfront_backend_retries_total', 'Requests retried on another backend (wretr)', bl, b.retried);
      e.counter('upfront_backend_restarts_total', 'Times the backend process was restarted', bl, b.restarts);
      e.counter('upfront_backend_slow_requests_total', 'Requests slower than slow-request', bl, b.slowRequests);
      e.counter('upfront_backend_connections_opened_total', 'Connections opened to the backend', bl, b.connectionsOpened);
      if (b.acceptQueue) {
        e.gauge('upfront_backend_accept_queue', 'Connections in the backend socket\'s kernel accept queue (ss -xl Recv-Q)', bl, b.acceptQueue.current);
        e.gauge('upfront_backend_accept_queue_max', 'Most connections seen in the accept queue (backlog+1 once connect() failed with EAGAIN)', bl, b.acceptQueue.max);
        e.gauge('upfront_backend_accept_queue_backlog', 'Listen backlog of the backend socket (ss -xl Send-Q)', bl, b.acceptQueue.backlog);
      }
      e.histogram('upfront_backend_response_seconds', 'Time from getting a slot to the end of the response (rtime)', bl, b.latencySeconds);
      if (b.process) {
        e.counter('upfront_backend_process_cpu_seconds_total', 'User and system CPU time of the backend process in seconds', bl, b.process.cpuSeconds);
        e.gauge('upfront_backend_process_resident_memory_bytes', 'Resident memory of the backend process in bytes', bl, b.process.rssBytes);
        e.gauge('upfront_backend_process_start_time_seconds', 'Start time of the backend process since the epoch in seconds', bl, b.process.startTime);
      }
    }
  }
  return e.text();
}
