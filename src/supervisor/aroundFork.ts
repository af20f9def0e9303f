// A setting of the calling thread that fork() copies into the child (its scheduling
// policy, its CPU mask), set just around spawn() and put back: libuv forks in this
// thread, so the child starts under it with no window, and the front keeps its own.

/**
 * Calls `spawn` inside `enter`'s setting. `enter` reads the thread's own setting, sets the
 * wanted one and returns how to put the own back — or null when the thread already has it —
 * and throws if the kernel refuses. Returns what spawn returned and the error, if any: a
 * refused setting (the child then runs under the thread's own), or a failed restore (the
 * thread keeps the child's); the caller warns. spawn runs exactly once in every path.
 */
export function spawnAroundFork<T>(enter: () => (() => void) | null, spawn: () => T): { result: T; error: NodeJS.ErrnoException | null } {
  let restore: (() => void) | null;
  try {
    restore = enter();
  } catch (err) {
    return { result: spawn(), error: err as NodeJS.ErrnoException };
  }
  if (restore === null) return { result: spawn(), error: null };
  let restoreError: NodeJS.ErrnoException | null = null;
  let result: T;
  try {
    result = spawn();
  } finally {
    try {
      restore();
    } catch (err) {
      restoreError = err as NodeJS.ErrnoException;
    }
  }
  return { result, error: restoreError };
}
