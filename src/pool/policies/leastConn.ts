import type { Backend } from '../backend.js';
import type { Policy } from './policy.js';

/**
 * Fewest requests in flight (not connections: a multiplexed backend has one
 * connection and many requests). Ties broken at random so that equal backends share
 * the load instead of the first one taking every burst.
 */
export class LeastConn implements Policy {
  readonly name = 'least-conn';

  select(backends: readonly Backend[], pipelinable: boolean): Backend | null {
    let best: Backend | null = null;
    let bestLoad = Infinity;
    let ties = 0;
    for (let i = 0; i < backends.length; i++) {
      const b = backends[i];
      if (!b.hasRoom(pipelinable)) continue;
      // Load relative to slots, so a backend with 8 slots counts as less busy than one with 1.
      const load = b.inflight / b.switches.slots;
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
