import type { Backend } from '../backend.js';
import { eligible, type Policy } from './policy.js';

/**
 * The next backend in turn that can take the request. Blind to load: with slow
 * and fast requests mixed, a backend can be handed work while busy (in the
 * unlimited overflow modes) — nginx's default, kept for comparison.
 */
export class RoundRobin implements Policy {
  readonly name = 'round-robin';
  private next = 0;

  select(backends: readonly Backend[], pipelinable: boolean, unlimited: boolean): Backend | null {
    const n = backends.length;
    for (let k = 0; k < n; k++) {
      const b = backends[(this.next + k) % n];
      if (eligible(b, pipelinable, unlimited)) {
        this.next = (this.next + k + 1) % n;
        return b;
      }
    }
    return null;
  }
}
