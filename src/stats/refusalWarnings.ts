// A warning when the front answers 503 because its queue is full, a request waited
// too long, or the pool sheds — rate-limited (at most one per cause every 10 s),
// with how many since the last warning and the limit to raise. Read from the
// counters once a second: nothing on the request path logs.
import type { Logger } from 'pino';
import type { Pool } from '../pool/pool.js';
import { zeroCauses, type CauseCounts, type FrontResponseCause, type FrontResponses } from './frontResponses.js';

const WARNED: FrontResponseCause[] = ['queue-full', 'queue-timeout', 'shed'];

export class RefusalWarnings {
  private readonly seen: CauseCounts = zeroCauses();
  private readonly warnedAt: Record<string, number> = {};

  constructor(private readonly responses: FrontResponses, private readonly pool: Pool, private readonly log: Logger,
    private readonly startedAt: number, private readonly everyMs = 10_000) {}

  check(now = Date.now()): void {
    const counts = this.responses.counts;
    for (const cause of WARNED) {
      const n = counts[cause] - this.seen[cause];
      if (n <= 0) continue;
      const last = this.warnedAt[cause] ?? 0;
      if (now - last < this.everyMs) continue;
      const sec = Math.max(1, Math.round((now - (last || this.startedAt)) / 1000));
      this.seen[cause] = counts[cause];
      this.warnedAt[cause] = now;
      const o = this.pool.options;
      const fields = { cause, refused: n, seconds: sec, total: counts[cause], status: 503 };
      const what = `${n} request${n === 1 ? '' : 's'} answered 503 in the last ${sec} s (${counts[cause]} since start)`;
      if (cause === 'queue-full') {
        this.log.warn({ ...fields, queueSize: o.queueSize }, `front queue full: ${what}; it holds ${o.queueSize} requests (--queue-size): raise it, or add processes (upfront scale N)`);
      } else if (cause === 'queue-timeout') {
        this.log.warn({ ...fields, queueTimeoutMs: o.queueTimeoutMs }, `front queue timeout: ${what} after waiting ${o.queueTimeoutMs} ms for a slot (--queue-timeout): add processes, or raise it`);
      } else {
        this.log.warn({ ...fields, slots: this.pool.totalSlots() }, `shed: ${what}, all ${this.pool.totalSlots()} slots busy (--overflow shed): add processes, or use --overflow queue`);
      }
    }
  }
}
