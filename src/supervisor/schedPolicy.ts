// The CPU scheduling policy the backend processes start under. By default SCHED_BATCH
// (sched(7), systemd's CPUSchedulingPolicy=batch): an app woken by a request then
// does not preempt whatever runs on that core — the front, which refills every app
// and answers every client, or the clients — it runs when that task's slice ends or
// it sleeps. Its share of the CPU is unchanged (same weight as nice 0). Measured on the
// seed load (bench/RESULTS.md, 2026-12-02): p99 at 2 and 4 processes lower, req/s unchanged.
import { setThreadSched, threadSched } from '../native/sock.js';

export type SchedPolicy = 'batch' | 'other';

const POLICY_NUMBER: Record<SchedPolicy, number> = { other: 0, batch: 3 };

/**
 * Calls `spawn` with the calling thread under `policy`, then puts the thread's own
 * policy back. fork() copies the calling thread's policy, so the child starts under it
 * with no window (as `chrt --batch 0 COMMAND` would); libuv forks in this thread.
 * Returns what spawn returned and, if the policy could not be set (a seccomp profile
 * refusing sched_setscheduler), the error: the child then runs under the front's own policy.
 */
export function spawnUnderPolicy<T>(policy: SchedPolicy, spawn: () => T): { result: T; error: NodeJS.ErrnoException | null } {
  const wanted = POLICY_NUMBER[policy];
  let ownPolicy: number, ownPriority: number;
  try {
    [ownPolicy, ownPriority] = threadSched();
    if (ownPolicy !== wanted) setThreadSched(wanted, 0);
  } catch (err) {
    return { result: spawn(), error: err as NodeJS.ErrnoException };
  }
  if (ownPolicy === wanted) return { result: spawn(), error: null };
  let restoreError: NodeJS.ErrnoException | null = null;
  let result: T;
  try {
    result = spawn();
  } finally {
    try {
      setThreadSched(ownPolicy, ownPriority);
    } catch (err) {
      restoreError = err as NodeJS.ErrnoException; // the front's own thread stays under `policy`: the caller warns
    }
  }
  return { result, error: restoreError };
}
