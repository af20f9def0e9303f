// Samples the kernel's accept queue of every backend unix socket (sock_diag,
// UNIX_DIAG_RQLEN: `ss -xl` Recv-Q / Send-Q), keeping current and max. EAGAIN
// starts once a queue holds backlog+1: these numbers show it coming.
import fs from 'node:fs';
import type { Logger } from 'pino';
import { acceptQueues } from '../native/sock.js';
import type { Pool } from '../pool/pool.js';

export class AcceptQueueSampler {
  private timer: NodeJS.Timeout | null = null;
  private failed = false;
  /** Sum over backends of the queue, and the most seen at once (php-fpm's "max listen queue"). */
  totalCurrent = 0;
  totalMax = 0;

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

  sample(): void {
    if (this.failed) return;
    let rows;
    try {
      rows = acceptQueues();
    } catch (err) {
      this.failed = true;
      this.log.warn({ err: (err as Error).message }, 'cannot read accept queues from the kernel (sock_diag); acceptQueue stays null in stats');
      return;
    }
    const byPath = new Map<string, { queued: number; backlog: number }>();
    for (const r of rows) byPath.set(r.path, r);
    let total = 0;
    for (const pool of this.pools) {
      for (const b of pool.backends) {
        if (!('path' in b.address)) continue;
        const q = byPath.get(b.address.path);
        if (!q) {
          if (b.acceptQueue) b.acceptQueue.current = 0; // no socket there now (between a crash and its restart)
          continue;
        }
        if (!b.acceptQueue) b.acceptQueue = { current: 0, max: 0, backlog: q.backlog };
        b.acceptQueue.current = q.queued;
        b.acceptQueue.backlog = q.backlog;
        if (q.queued > b.acceptQueue.max) b.acceptQueue.max = q.queued;
        total += q.queued;
      }
    }
    this.totalCurrent = total;
    if (total > this.totalMax) this.totalMax = total;
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
