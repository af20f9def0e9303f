// The front's nice value (its CPU weight), as nginx's `worker_priority`. By default the weight
// of the processes it feeds (niceForProcesses). Why a lower nice at all: with -10 (64a2ce0),
// under the seed load a wrk thread woken by an answer preempted the front 0.25-0.8 times a
// request (98 % of its preemptions, the sched_switch tracepoint), each a switch out and back
// in the middle of a turn that refills every app; at nice -10 it is preempted ~0.01 times a
// request and served 2.5-12 % more at 2 and 4 processes, p99 level at 1 and 4 but 0.6-3.3 ms
// higher at 2 (bench/results/front-nice-20261202.md). Its processes start at the nice the
// front was started with (set around fork, as the scheduling policy is): the apps do not
// take the front's weight. Under autogroup scheduling those A/Bs (fronts started inside the
// load tool's session) were the only case where a thread's nice counts against the load
// tool; a front leading its own session sets the session's nice too (SessionNice).
import fs from 'node:fs';
import os from 'node:os';
import { sessionNiceOf, statFields } from '../stats/proc.js';
import { spawnAroundFork } from './aroundFork.js';
import { putEveryThread } from './everyThread.js';

/** The nice of the thread that forks the processes before the front changed it; null: unchanged. */
let startedAt: number | null = null;

/** The calling thread's nice, or the thread `tid`'s (Linux keeps one per thread). */
function niceOf(tid = 0): number {
  return os.getPriority(tid);
}

/** An errno-carrying error from os.setPriority's SystemError (code ERR_SYSTEM_ERROR, info.code the errno). */
function errnoError(err: unknown): NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException & { info?: { code?: string; message?: string } };
  const code = e.info?.code ?? e.code;
  const out = new Error(e.info?.message ? `${e.info.message} (${code})` : e.message) as NodeJS.ErrnoException;
  out.code = code;
  return out;
}

/**
 * Sets every thread of this process to `nice`, as `renice -n NICE -p $(ls /proc/PID/task)`
 * does (threads started later inherit it). Returns how to put each thread's own back, and
 * the refusal, if any (EACCES without CAP_SYS_NICE or RLIMIT_NICE: the threads keep theirs).
 */
export function putProcessAtNice(nice: number): { restore: () => void; error: NodeJS.ErrnoException | null } {
  const self = niceOf();
  const put = putEveryThread<number>({
    read: (tid) => { try { return niceOf(tid); } catch (err) { throw errnoError(err); } },
    isWanted: (own) => own === nice,
    setWanted: (tid) => { try { os.setPriority(tid, nice); } catch (err) { throw errnoError(err); } },
    putBack: (tid, own) => os.setPriority(tid, own),
  });
  if (put.error !== null) {
    put.restore();
    return { restore: put.restore, error: put.error };
  }
  if (self !== nice && startedAt === null) startedAt = self;
  let forgetStart = put.moved > 0;
  const restore = (): void => {
    put.restore();
    if (forgetStart) startedAt = null;
    forgetStart = false;
  };
  return { restore, error: null };
}

/**
 * Calls `spawn` with the calling thread at the nice the front was started with (when the
 * front changed its own), then puts the front's back: the child starts there, as under
 * `nice -n N COMMAND`. The error, if any: the thread's nice not moved there, or not back.
 */
export function spawnAtStartNice<T>(spawn: () => T): { result: T; error: NodeJS.ErrnoException | null } {
  return spawnAroundFork(() => {
    const wanted = startedAt;
    if (wanted === null) return null;
    const own = niceOf();
    if (own === wanted) return null;
    try { os.setPriority(0, wanted); } catch (err) { throw errnoError(err); }
    return () => {
      try { os.setPriority(0, own); } catch (err) { throw errnoError(err); }
    };
  }, spawn);
}

const AUTOGROUP = '/proc/self/autogroup';

/**
 * The front's nice when --front-nice is not given: as much CPU weight as the processes it
 * feeds (each nice step is ~1.25x, so N processes' weight is nice -log(N)/log(1.25)):
 * 0 for one, -3 for 2, -6 for 4, -9 for 8, at most -10. Every request of every app passes
 * through the front: while it waits for a core, all of them may run dry. With one app it
 * is one of two stages of a pipeline and more weight only takes the app's CPU. Measured
 * with fronts in sessions of their own (bench/results/session-nice-20261202.md): at 2
 * processes -3 served more than -10 (5 of 6 rounds), at 4 -6 as much as -10, and both
 * far more than 0; at 1, 0 cost the front less CPU per request than -10.
 */
export function niceForProcesses(n: number): number {
  return n <= 1 ? 0 : Math.max(-10, -Math.round(Math.log(n) / Math.log(1.25)));
}

/** Whether this process leads its session (field 6 of /proc/self/stat is its own pid). */
function leadsSession(): boolean {
  return Number(statFields('self')?.[3]) === process.pid;
}

/**
 * Under autogroup scheduling (kernel.sched_autogroup_enabled, on by default in most
 * distributions' kernels) every session is a task group, and a thread's nice counts only
 * against the threads of its own session (sched(7)): not against the apps, each in a
 * session of its own (they are spawned with setsid), nor a load tool started elsewhere.
 * What those see is the session's nice, `/proc/self/autogroup`. A front that leads its
 * session (as systemd, `setsid` or `upfront bench` start it) sets that one too; a front
 * started inside a shell's session leaves the shell's alone. Lowering
 * it needs CAP_SYS_NICE or a matching RLIMIT_NICE, as for a thread (EPERM otherwise).
 */
export class SessionNice {
  /** The session's nice before the front changed it; null: not changed. */
  private own: number | null = null;

  /** Sets the session's nice where the front leads one; returns the refusal, if any. */
  put(nice: number): NodeJS.ErrnoException | null {
    const now = sessionNiceOf('self');
    if (now === null || now === nice || !leadsSession()) return null;
    try {
      fs.writeFileSync(AUTOGROUP, String(nice));
    } catch (err) {
      return err as NodeJS.ErrnoException;
    }
    if (this.own === null) this.own = now;
    return null;
  }

  restore(): void {
    if (this.own === null) return;
    const own = this.own;
    this.own = null;
    // EAGAIN: the kernel takes one such write every 100 ms from a process without
    // CAP_SYS_ADMIN; the session ends with the front anyway (its processes lead their own).
    try { fs.writeFileSync(AUTOGROUP, String(own)); } catch { /* see above */ }
  }
}
