// /healthz and /readyz for balancers and orchestrators. Alive: the front answers.
// Ready: not stopping, and every pool has a backend ready to take requests. From the
// moment a graceful stop begins /readyz answers 503, while the listener still
// accepts (for --shutdown-delay), so a balancer takes the host out before the port
// closes. Served on the admin listener, and on the public one with --health-on-public.
import type { Pool } from '../pool/pool.js';

export interface HealthAnswer {
  status: number;
  body: string;
}

export class FrontHealth {
  /** When the graceful stop began (Date.now()), or null. */
  stoppingSince: number | null = null;

  constructor(private readonly pools: readonly Pool[], private readonly startedAt: number) {}

  beginStop(): void {
    this.stoppingSince ??= Date.now();
  }

  /** The answer for `path` ("/healthz" or "/readyz"), or null for any other path. */
  answer(path: string): HealthAnswer | null {
    if (path === '/healthz') {
      return { status: 200, body: `{"status":"alive","uptimeSec":${Math.floor((Date.now() - this.startedAt) / 1000)}}\n` };
    }
    if (path !== '/readyz') return null;
    if (this.stoppingSince !== null) return { status: 503, body: '{"status":"stopping","ready":false}\n' };
    let ready = 0;
    let total = 0;
    let poolsWithout = 0;
    for (const pool of this.pools) {
      let here = 0;
      for (const b of pool.backends) {
        total++;
        if (b.state === 'ready') here++;
      }
      ready += here;
      if (here === 0) poolsWithout++;
    }
    const ok = poolsWithout === 0 && ready > 0;
    return { status: ok ? 200 : 503, body: `{"status":"${ok ? 'ready' : 'no backend ready'}","ready":${ok},"backends":{"ready":${ready},"total":${total}}}\n` };
  }
}

/** The path of a health request target ("/readyz?verbose" → "/readyz"), or null when it is not one. */
export function healthPath(target: string): '/healthz' | '/readyz' | null {
  if (target.length < 7 || target.charCodeAt(1) !== 104 /* h */ && target.charCodeAt(1) !== 114 /* r */) return null;
  const q = target.indexOf('?');
  const p = q < 0 ? target : target.slice(0, q);
  return p === '/healthz' || p === '/readyz' ? p : null;
}
