// The front's nice value (its CPU weight), as nginx's `worker_priority`. By default -10:
// under the seed load a wrk thread woken by an answer preempted the front 0.2-0.8 times a
// request (perf sched: 98 % of its preemptions), each a switch out and back in the middle
// of a turn that refills every app; at nice -10 the front is preempted ~0.005 times a
// request, spends fewer µs on each and serves 12 % more at 2 and 4 processes
// (bench/results/front-nice-20261202.md). Its processes start at the nice the front was
// started with (set around fork, as the scheduling policy is): the apps do not take the
// front's weight.
import os from 'node:os';
import fs from 'node:fs';
import { spawnAroundFork } from './aroundFork.js';

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
  const moved: Array<[tid: number, own: number]> = [];
  let error: NodeJS.ErrnoException | null = null;
  const self = niceOf();
  for (const name of fs.readdirSync('/proc/self/task')) {
    const tid = Number(name);
    try {
      const own = niceOf(tid);
      if (own === nice) continue;
      os.setPriority(tid, nice);
      moved.push([tid, own]);
    } catch (err) {
      const e = errnoError(err);
      if (e.code === 'ESRCH') continue; // the thread ended meanwhile
      error = e;
      break;
    }
  }
  if (error === null && self !== nice && startedAt === null) startedAt = self;
  const restore = (): void => {
    for (const [tid, own] of moved) {
      // Only a thread still ours: a tid freed by a thread that ended may name another's by now.
      if (!fs.existsSync(`/proc/self/task/${tid}`)) continue;
      try { os.setPriority(tid, own); } catch { /* it ended meanwhile */ }
    }
    if (moved.length > 0) startedAt = null;
    moved.length = 0;
  };
  if (error !== null) restore();
  return { restore, error };
}

/**
 * Calls `spawn` with the calling thread at the nice the front was started with (when the
 * front changed its own), then puts the front's back: the child starts there, as under
 * `nice -n N COMMAND`. The error, if any: the front's nice not restored.
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
