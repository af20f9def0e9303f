// The CPU scheduling policy the backend processes start under. By default SCHED_BATCH
// (sched(7), systemd's CPUSchedulingPolicy=batch): an app woken by a request then
// does not preempt whatever runs on that core — the front, which refills every app
// and answers every client, or the clients — it runs when that task's slice ends or
// it sleeps. Its share of the CPU is unchanged (same weight as nice 0). Measured on the
// seed load (bench/RESULTS.md, 2026-12-02): p99 at 2 and 4 processes lower, req/s unchanged.
import { setThreadSched, threadSched } from '../native/sock.js';
import { spawnAroundFork } from './aroundFork.js';

export type SchedPolicy = 'batch' | 'other';

const POLICY_NUMBER: Record<SchedPolicy, number> = { other: 0, batch: 3 };

/**
 * Calls `spawn` with the calling thread under `policy`, then puts the thread's own
 * policy back (spawnAroundFork: the child starts under it, as `chrt --batch 0 COMMAND`
 * would). The error, if any: the policy refused (a seccomp profile refusing
 * sched_setscheduler; the child runs under the front's own) or not restored.
 */
export function spawnUnderPolicy<T>(policy: SchedPolicy, spawn: () => T): { result: T; error: NodeJS.ErrnoException | null } {
  const wanted = POLICY_NUMBER[policy];
  return spawnAroundFork(() => {
    const [ownPolicy, ownPriority] = threadSched();
    if (ownPolicy === wanted) return null;
    setThreadSched(wanted, 0);
    return () => setThreadSched(ownPolicy, ownPriority);
  }, spawn);
}
