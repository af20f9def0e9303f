// The CPU scheduling policy the backend processes start under, and the front's own. By
// default SCHED_BATCH for both (sched(7), systemd's CPUSchedulingPolicy=batch): a task
// woken by bytes then does not preempt whatever runs on that core, it runs when that
// task's slice ends or it sleeps. Its share of the CPU is unchanged (same weight as nice 0).
// An app woken by a request leaves the front, which refills every app and answers every
// client, on its core; the front woken by a client's or an app's bytes leaves that app
// running, and writes a batch of answers and requests per turn instead of being switched
// in and out once per response. Measured on the seed load (bench/RESULTS.md, 2026-12-02):
// the apps' policy lowered p99 at 2 and 4 processes; the front's raised req/s by 4-5.5 % and
// lowered p99 at 1, 2 and 4 (bench/results/front-sched-20261202.md).
import { setThreadSched, threadSched } from '../native/sock.js';
import { spawnAroundFork } from './aroundFork.js';
import { putEveryThread } from './everyThread.js';

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

/**
 * Puts every thread of this process under `policy`, as `chrt -a -p` does (threads started
 * later inherit it from the thread that starts them). Returns how to put back the policy
 * each thread had, and the refusal, if any (then the threads not yet moved keep theirs).
 */
export function putProcessUnder(policy: SchedPolicy): { restore: () => void; error: NodeJS.ErrnoException | null } {
  const wanted = POLICY_NUMBER[policy];
  const { restore, error } = putEveryThread<[policy: number, priority: number]>({
    read: (tid) => threadSched(tid),
    isWanted: ([own]) => own === wanted,
    setWanted: (tid) => setThreadSched(wanted, 0, tid),
    putBack: (tid, [own, priority]) => setThreadSched(own, priority, tid),
  });
  return { restore, error };
}
