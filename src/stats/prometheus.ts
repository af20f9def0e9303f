// GET /metrics: the /stats figures in Prometheus text format (prom-client), names
// prefixed upfront_. Filled from the same snapshot at each scrape, so they agree.
import client from 'prom-client';
import type { Stats } from './snapshot.js';

type Labels = Record<string, string>;

export class PrometheusExporter {
  readonly registry = new client.Registry();
  private readonly gauges = new Map<string, client.Gauge<string>>();
  private readonly counters = new Map<string, client.Counter<string>>();

  private gauge(name: string, help: string, labelNames: string[]): client.Gauge<string> {
    let g = this.gauges.get(name);
    if (!g) {
      g = new client.Gauge({ name, help, labelNames, registers: [this.registry] });
      this.gauges.set(name, g);
    }
    return g;
  }

  private counter(name: string, help: string, labelNames: string[]): client.Counter<string> {
    let c = this.counters.get(name);
    if (!c) {
      c = new client.Counter({ name, help, labelNames, registers: [this.registry] });
      this.counters.set(name, c);
    }
    return c;
  }

  async render(stats: Stats): Promise<string> {
    for (const g of this.gauges.values()) g.reset();
    for (const c of this.counters.values()) c.reset();
    const set = (name: string, help: string, labels: Labels, value: number) => this.gauge(name, help, Object.keys(labels)).set(labels, value);
    const add = (name: string, help: string, labels: Labels, value: number) => this.counter(name, help, Object.keys(labels)).inc(labels, value);

    set('upfront_uptime_seconds', 'Seconds since upfront started', {}, stats.uptimeSec);
    add('upfront_accepted_connections_total', 'Client connections accepted on the public listener', {}, stats.acceptedConn);
    set('upfront_listen_queue', 'Connections waiting in the backends\' kernel accept queues now', {}, stats.listenQueue.current);
    set('upfront_listen_queue_max', 'Most connections seen waiting in the kernel accept queues at once', {}, stats.listenQueue.max);
    for (const p of stats.pools) {
      const pl = { pool: p.name };
      set('upfront_queue_current', 'Requests waiting in the front queue (qcur)', pl, p.queue.current);
      set('upfront_queue_max', 'Most requests waiting in the front queue at once (qmax)', pl, p.queue.max);
      set('upfront_queue_size', 'Capacity of the front queue (queue-size)', pl, p.queue.size);
      add('upfront_queue_timeouts_total', 'Requests answered 503 after queue-timeout', pl, p.queue.timeouts);
      add('upfront_queue_full_total', 'Requests answered 503 because the queue was full', pl, p.queue.full);
      for (const [q, v] of Object.entries(p.queue.waitMs)) set('upfront_queue_wait_ms', 'Time spent in the front queue (qtime), by quantile', { ...pl, quantile: q.slice(1) }, v);
      add('upfront_slots_exhausted_total', 'Requests that found every slot busy (php-fpm max children reached)', pl, p.slotsExhausted);
      for (const b of p.backends) {
        const bl = { pool: p.name, backend: b.id };
        set('upfront_backend_up', 'Backend is ready to take requests (1) or not (0)', bl, b.state === 'ready' || b.state === 'busy' ? 1 : 0);
        set('upfront_backend_slots', 'Requests the backend may have in flight', bl, b.slots);
        set('upfront_backend_inflight', 'Requests in flight at the backend (scur)', bl, b.inflight);
        set('upfront_backend_max_inflight', 'Most requests in flight at once (smax)', bl, b.maxInflight);
        add('upfront_backend_requests_total', 'Requests sent to the backend', bl, b.requests);
        for (const [cls, v] of Object.entries(b.responses)) add('upfront_backend_responses_total', 'Responses from the backend by status class', { ...bl, code: cls }, v);
        for (const [errno, v] of Object.entries(b.connectErrors)) add('upfront_backend_connect_errors_total', 'Failed connect() attempts by errno (econ)', { ...bl, errno }, v);
        for (const [kind, v] of Object.entries(b.failures)) add('upfront_backend_failures_total', 'Requests failed after connecting, by kind', { ...bl, kind }, v);
        add('upfront_backend_retries_total', 'Requests retried on another backend (wretr)', bl, b.retried);
        add('upfront_backend_restarts_total', 'Times the backend process was restarted', bl, b.restarts);
        if (b.acceptQueue) {
          set('upfront_backend_accept_queue', 'Connections in the backend socket\'s kernel accept queue (ss -xl Recv-Q)', bl, b.acceptQueue.current);
          set('upfront_backend_accept_queue_max', 'Most connections seen in the accept queue', bl, b.acceptQueue.max);
          set('upfront_backend_accept_queue_backlog', 'Listen backlog of the backend socket (ss -xl Send-Q)', bl, b.acceptQueue.backlog);
        }
        for (const [q, v] of Object.entries(b.latencyMs)) set('upfront_backend_latency_ms', 'Time from slot to end of response (rtime), by quantile', { ...bl, quantile: q.slice(1) }, v);
      }
    }
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
