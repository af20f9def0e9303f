// One setting of every thread of this process (its scheduling policy, its nice), as
// `chrt -a -p` and `renice -p $(ls /proc/PID/task)` do; threads started later inherit it
// from the thread that starts them.
import fs from 'node:fs';

export interface ThreadSetting<S> {
  /** The thread's own setting; throws an ErrnoException (ESRCH: the thread ended). */
  read(tid: number): S;
  /** Whether `own` is already the wanted setting. */
  isWanted(own: S): boolean;
  /** Gives the thread the wanted setting; throws as read does. */
  setWanted(tid: number): void;
  /** Gives the thread its own back. */
  putBack(tid: number, own: S): void;
}

/**
 * Moves every thread of this process to the wanted setting. Returns how to put back the
 * setting each thread had, how many moved, and the refusal, if any (then the threads not
 * yet moved keep theirs). A thread that ends meanwhile is skipped.
 */
export function putEveryThread<S>(setting: ThreadSetting<S>): { restore: () => void; moved: number; error: NodeJS.ErrnoException | null } {
  const moved: Array<[tid: number, own: S]> = [];
  let error: NodeJS.ErrnoException | null = null;
  for (const name of fs.readdirSync('/proc/self/task')) {
    const tid = Number(name);
    try {
      const own = setting.read(tid);
      if (setting.isWanted(own)) continue;
      setting.setWanted(tid);
      moved.push([tid, own]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') continue; // the thread ended meanwhile
      error = err as NodeJS.ErrnoException;
      break;
    }
  }
  const restore = (): void => {
    for (const [tid, own] of moved) {
      // Only a thread still ours: a tid freed by a thread that ended may name another's by now.
      if (!fs.existsSync(`/proc/self/task/${tid}`)) continue;
      try { setting.putBack(tid, own); } catch { /* it ended meanwhile */ }
    }
    moved.length = 0;
  };
  return { restore, moved: moved.length, error };
}
