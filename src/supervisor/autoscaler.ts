// --procs MIN:MAX: add a process while the front queue stays non-empty for
// scale-up-after; remove one that stayed idle for scale-down-after (php-fpm's
// dynamic pm, uWSGI's cheaper). Every change is logged with its reason.
import type { Logger } from 'pino';
import type { Pool } from '../pool/pool.js';
import type { Supervisor } from './supervisor.js';

export interface AutoscaleOptions {
  min: number;
  max: number;
  scaleUpAfterMs: number;
  scaleDownAfterMs: number;
  drainTimeoutMs: number;
}

const TICK_MS = 100;

export class Autoscaler {
  private timer: NodeJS.Timeout | null = null;
  private queuedSince = 0;
  /** Per backend id: the request count last seen and since when it has not moved while idle. */
  private idle = new Map<string, { requests: number; since: number }>();
  private changing = false;

  constructor(private readonly supervisor: Supervisor, private readonly pool: Pool, private readonly options: AutoscaleOptions, private readonly log: Logger) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    if (this.changing) return;
    const now = Date.now();
    const procs = this.supervisor.procs;
    if (this.pool.queue.length > 0) {
      if (this.queuedSince === 0) this.queuedSince = now;
      if (now - this.queuedSince >= this.options.scaleUpAfterMs && procs < this.options.max) {
        this.queuedSince = 0;
        this.change(procs + 1, `the queue was not empty for ${this.options.scaleUpAfterMs} ms (${this.pool.queue.length} waiting)`);
      }
      return;
    }
    this.queuedSince = 0;
    let idleLongest: string | null = null;
    const seen = new Set<string>();
    for (const b of this.pool.backends) {
      if (b.state !== 'ready') continue;
      seen.add(b.id);
      const entry = this.idle.get(b.id);
      if (b.inflight > 0 || !entry || entry.requests !== b.counters.requests) {
        this.idle.set(b.id, { requests: b.counters.requests, since: now });
        continue;
      }
      if (now - entry.since >= this.options.scaleDownAfterMs) idleLongest = b.id;
    }
    for (const id of this.idle.keys()) if (!seen.has(id)) this.idle.delete(id);
    if (idleLongest && procs > this.options.min) {
      this.idle.delete(idleLongest);
      this.change(procs - 1, `backend ${idleLongest} was idle for ${this.options.scaleDownAfterMs} ms`);
    }
  }

  private change(target: number, reason: string): void {
    this.changing = true;
    this.supervisor.scale(target, `autoscale: ${reason}`, this.options.drainTimeoutMs)
      .catch((err: Error) => this.log.warn({ err: err.message }, `autoscale to ${target} failed: ${err.message}`))
      .finally(() => { this.changing = false; });
  }
}
