// Samples the kernel's accept queue of every backend unix socket (sock_diag,
// UNIX_DIAG_RQLEN: `ss -xl` Recv-Q / Send-Q), keeping current and max in its own
// map (stats read the rooms, they write into none of them). EAGAIN starts once a
// queue holds backlog+1: these numbers show it coming.
//
// The listen queue (php-fpm's word, one meaning everywhere): every request waiting
// for a backend process to take it — the front queue plus the backends' kernel
// accept queues.
import fs from 'node:fs';
import type { Logger } from 'pino';
import { acceptQueues } from '../native/sock.js';
import type { Backend } from '../pool/backend.js';
import type { Pool } from '../pool/pool.js';

export interface AcceptQueueFigures {
  current: number;
  max: number;
  backlog: number;
}

interface Entry extends AcceptQueueFigures {
  /** EAGAIN count of the backend when last looked at. */
  eagainSeen: number;
  /** Most seen since the last takeIntervalMax() (the sparkline's point). */
  intervalMax: number;
}

export class AcceptQueueSampler {
  private timer: NodeJS.Timeout | null = null;
  private failed = false;
  private readonly queues = new Map<Backend, Entry>();
  /** Most requests seen in each pool's front queue since the last takeQueueIntervalMax(). */
  private readonly queueIntervalMax = new Map<Pool, number>();
  /** The listen queue now and the most seen at a sample (php-fpm's "listen queue", "max listen queue"). */
  listenQueue = 0;
  listenQueueMax = 0;
  /** Its parts at the last sample. */
  frontQueued = 0;
  acceptQueued = 0;

  constructor(private readonly pools: Pool[], private readonly intervalMs: number, private readonly log: Logger) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The backend's accept queue as last sampled; null when it has no unix socket we can see. */
  of(backend: Backend): AcceptQueueFigures | null {
    const e = this.queues.get(backend);
    return e ? { current: e.current, max: e.max, backlog: e.backlog } : null;
  }

  /** The most seen in the backend's queue since the last call (null: not measured). */
  takeIntervalMax(backend: Backend): number | null {
    const e = this.queues.get(backend);
    if (!e) return null;
    const m = e.intervalMax;
    e.intervalMax = e.current;
    return m;
  }

  /** The most requests seen waiting in the pool's front queue since the last call. */
  takeQueueIntervalMax(pool: Pool): number {
    const m = Math.max(this.queueIntervalMax.get(pool) ?? 0, pool.queue.length);
    this.queueIntervalMax.set(pool, pool.queue.length);
    return m;
  }

  sample(): void {
    let byPath: Map<string, { queued: number; backlog: number }> | null = null;
    if (!this.failed) {
      try {
        byPath = new Map();
        for (const r of acceptQueues()) byPath.set(r.path, r);
      } catch (err) {
        this.failed = true;
        byPath = null;
        this.log.warn({ err: (err as Error).message }, 'cannot read accept queues from the kernel (sock_diag); acceptQueue stays null in stats');
      }
    }
    let accept = 0;
    let front = 0;
    const seen = new Set<Backend>();
    for (const pool of this.pools) {
      front += pool.queue.length;
      if (pool.queue.length > (this.queueIntervalMax.get(pool) ?? 0)) this.queueIntervalMax.set(pool, pool.queue.length);
      for (const b of pool.backends) {
        seen.add(b);
        if (byPath === null || !('path' in b.address)) continue;
        const q = byPath.get(b.address.path);
        let e = this.queues.get(b);
        if (!q) {
          if (e) e.current = 0; // no socket there now (between a crash and its restart)
          continue;
        }
        if (!e) {
          e = { current: 0, max: 0, backlog: q.backlog, eagainSeen: 0, intervalMax: 0 };
          this.queues.set(b, e);
        }
        e.current = q.queued;
        e.backlog = q.backlog;
        if (q.queued > e.max) e.max = q.queued;
        if (q.queued > e.intervalMax) e.intervalMax = q.queued;
        // Linux answers EAGAIN exactly when the accept queue holds backlog+1: the peak a
        // periodic sample would mostly miss. The backend's EAGAIN counter is that evidence.
        const eagain = b.counters.connectErrors.EAGAIN ?? 0;
        if (eagain > e.eagainSeen) {
          e.eagainSeen = eagain;
          if (e.max < e.backlog + 1) e.max = e.backlog + 1;
          if (e.intervalMax < e.backlog + 1) e.intervalMax = e.backlog + 1;
        }
        accept += q.queued;
      }
    }
    for (const b of this.queues.keys()) if (!seen.has(b)) this.queues.delete(b);
    this.frontQueued = front;
    this.acceptQueued = accept;
    this.listenQueue = front + accept;
    if (this.listenQueue > this.listenQueueMax) this.listenQueueMax = this.listenQueue;
  }
}

/** The kernel caps every listen backlog at net.core.somaxconn. */
export function somaxconn(): number | null {
  try {
    return Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
  } catch {
    return null;
  }
}
