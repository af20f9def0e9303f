import type { Backend } from '../backend.js';
import { eligible, type Policy } from './policy.js';

/**
 * Power of two choices: pick two eligible backends at random, take the less
 * loaded. Nearly as good as least-conn, without scanning every backend's count
 * under contention, and without least-conn's herd onto one fresh backend.
 */
export class RandomTwo implements Policy {
  readonly name = 'random-two';
  private readonly candidates: Backend[] = [];

  select(backends: readonly Backend[], pipelinable: boolean, unlimited: boolean): Backend | null {
    const c = this.candidates;
    c.length = 0;
    for (let i = 0; i < backends.length; i++) if (eligible(backends[i], pipelinable, unlimited)) c.push(backends[i]);
    if (c.length === 0) return null;
    if (c.length === 1) return c[0];
    const i = Math.floor(Math.random() * c.length);
    let j = Math.floor(Math.random() * (c.length - 1));
    if (j >= i) j++;
    const a = c[i];
    const b = c[j];
    return a.inflight / a.slots <= b.inflight / b.slots ? a : b;
  }
}
