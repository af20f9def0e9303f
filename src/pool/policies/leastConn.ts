import type { Backend } from '../backend.js';
import { eligible, type Policy } from './policy.js';

/**
 * Fewest requests in flight relative to slots (requests, not connections: a
 * multiplexed backend has one connection and many requests). Ties broken at
 * random so equal backends share a burst instead of the first one taking it.
 */
export class LeastConn implements Policy {
  readonly name = 'least-conn';

  select(backends: readonly Backend[], pipelinable: boolean, unlimited: boolean): Backend | null {
    let best: Backend | null = null;
    let bestLoad = Infinity;
    let ties = 0;
    for (let i = 0; i < backends.length; i++) {
      const b = backends[i];
      if (!eligible(b, pipelinable, unlimited)) continue;
      const load = b.inflight / b.slots;
      if (load < bestLoad) {
        best = b;
        bestLoad = load;
        ties = 1;
      } else if (load === bestLoad && Math.random() * ++ties < 1) {
        best = b; // reservoir sampling: each tied backend equally likely
      }
    }
    return best;
  }
}
