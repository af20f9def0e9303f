// Active health checks of --upstream backends, as Caddy's and HAProxy's: every
// interval each backend is probed (FastCGI: FCGI_GET_VALUES on a fresh connection,
// or the connection alone for an app that never answers it; HTTP: GET PATH, 2xx or
// 3xx); `fall` failures in a row take it out (state down, no requests), `rise`
// successes in a row bring it back. Some results prove nothing and count neither
// way: EAGAIN (a full accept queue is a busy backend, not a dead one), and no answer
// to GET_VALUES from an app the front holds a connection to (a single-threaded
// FastCGI app serves one connection at a time: ours). The state is shown in /stats.
import http from 'node:http';
import net from 'node:net';
import type { Logger } from 'pino';
import { getValues } from '../fastcgi/getValues.js';
import type { BackendAddress } from '../transport.js';
import type { Backend, BackendHealth } from './backend.js';
import type { Pool } from './pool.js';

export interface HealthCheckOptions {
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  protocol: 'fastcgi' | 'http';
  /** HTTP: the path to GET (default "/"). */
  path: string | null;
}

export type ProbeOutcome = { ok: true } | { ok: false; reason: string; inconclusive?: boolean };

export class HealthChecker {
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(private readonly pool: Pool, private readonly backends: readonly Backend[], private readonly options: HealthCheckOptions, private readonly log: Logger) {
    for (const b of backends) {
      b.health = { status: 'up', checks: 0, failures: 0, consecutiveOk: 0, consecutiveFailed: 0, lastError: null, lastCheck: null, since: Date.now() };
    }
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => void this.round(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One probe of every backend (a round still running is not overlapped). */
  async round(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await Promise.all(this.backends.map(async (b) => {
        // Still waiting for its first answer at start: the start-up probe owns it until then.
        if (b.state === 'starting') return;
        const outcome = await probe(b, this.options);
        this.apply(b, outcome);
      }));
    } finally {
      this.running = false;
    }
  }

  private apply(b: Backend, outcome: ProbeOutcome): void {
    const h = b.health!;
    h.checks++;
    h.lastCheck = new Date().toISOString();
    if (!outcome.ok && outcome.inconclusive) return;
    const o = this.options;
    if (outcome.ok) {
      h.consecutiveOk++;
      h.consecutiveFailed = 0;
      if (h.status === 'down' && h.consecutiveOk >= o.rise) {
        h.status = 'up';
        h.since = Date.now();
        h.lastError = null;
        b.state = 'ready';
        b.unavailable = null;
        this.log.info({ backend: b.id, address: b.addressText, rise: o.rise }, `health check: upstream ${b.id} ${b.addressText} is back (${o.rise} passing checks in a row); it gets requests again`);
        this.pool.serveQueue();
      }
      return;
    }
    h.failures++;
    h.consecutiveFailed++;
    h.consecutiveOk = 0;
    h.lastError = outcome.reason;
    if (h.status === 'up' && h.consecutiveFailed >= o.fall) {
      h.status = 'down';
      h.since = Date.now();
      b.state = 'down';
      b.unavailable = `health check failing: ${outcome.reason}`;
      this.log.warn({ backend: b.id, address: b.addressText, fall: o.fall, reason: outcome.reason },
        `health check: upstream ${b.id} ${b.addressText} taken out after ${o.fall} failed checks in a row (${outcome.reason})`);
    }
  }
}

/** One probe of one backend, bounded by the timeout. */
export function probe(b: Backend, o: HealthCheckOptions): Promise<ProbeOutcome> {
  return o.protocol === 'http' ? probeHttp(b.address, o.path ?? '/', o.timeoutMs)
    : probeFastcgi(b.address, b.caps.answersGetValues, o.timeoutMs, () => b.transport.figures.openConnections > 0);
}

function connectFailed(err: NodeJS.ErrnoException): ProbeOutcome {
  const code = err.code ?? 'error';
  if (code === 'EAGAIN') return { ok: false, reason: 'connect: EAGAIN (accept queue full)', inconclusive: true };
  return { ok: false, reason: `connect: ${code}` };
}

/** `servingUs`: the front holds connections to it now (silence may mean it is busy with them). */
export function probeFastcgi(address: BackendAddress, expectAnswer: boolean, timeoutMs: number, servingUs: () => boolean = () => false): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const socket = 'path' in address ? net.connect({ path: address.path }) : net.connect({ host: address.host, port: address.port });
    const done = (o: ProbeOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done(servingUs()
      ? { ok: false, reason: `no answer to FCGI_GET_VALUES within ${timeoutMs} ms while it serves the front's connections`, inconclusive: true }
      : { ok: false, reason: `no answer to FCGI_GET_VALUES within ${timeoutMs} ms` }), timeoutMs);
    socket.once('error', (err: NodeJS.ErrnoException) => done(connectFailed(err)));
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      socket.on('error', () => {});
      // An app that never answered GET_VALUES (at start) is healthy when it accepts.
      if (!expectAnswer) return done({ ok: true });
      // Accepted and closed unanswered: alive, at its connection limit (flup does this).
      void getValues(socket).then(() => done({ ok: true }));
    });
  });
}

export function probeHttp(address: BackendAddress, path: string, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (o: ProbeOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(o);
    };
    const req = http.request({
      ...('path' in address ? { socketPath: address.path } : { host: address.host, port: address.port }),
      path, method: 'GET', agent: false, headers: { Host: 'localhost', 'User-Agent': 'upfront-health-check', Connection: 'close' },
    }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      done(status >= 200 && status < 400 ? { ok: true } : { ok: false, reason: `GET ${path} answered ${status}` });
    });
    const timer = setTimeout(() => done({ ok: false, reason: `GET ${path}: no answer within ${timeoutMs} ms` }), timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'EAGAIN' ? connectFailed(err) : { ok: false, reason: `GET ${path}: ${err.code ?? err.message}` }));
    req.end();
  });
}
