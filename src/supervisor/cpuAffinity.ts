// Which CPU each backend process runs on. With `auto`, each process starts on one CPU,
// spread over the CPUs the front may use (nginx's `worker_cpu_affinity auto`, or
// `taskset -c CPU COMMAND`); a process that replaces another (restart, reload, recycle)
// takes its CPU. A process bound to its CPU keeps its cache and is never moved by the
// kernel's load balancer between requests. `none` leaves placement to the kernel.
import { setThreadAffinity, threadAffinity } from '../native/sock.js';
import { spawnAroundFork } from './aroundFork.js';

export type CpuAffinity = 'auto' | 'none';

/** The CPUs the calling thread may run on, or null when the kernel does not say (the processes are then not bound). */
export function allowedCpus(): number[] | null {
  try {
    const cpus = threadAffinity();
    return cpus.length > 0 ? cpus : null;
  } catch {
    return null;
  }
}

/** The CPU of `cpus` that the fewest of `taken` are on (the first such), for the next process. */
export function leastTakenCpu(cpus: readonly number[], taken: ReadonlyArray<number | null>): number {
  let best = cpus[0];
  let bestCount = Infinity;
  for (const cpu of cpus) {
    let count = 0;
    for (const t of taken) if (t === cpu) count++;
    if (count < bestCount) { best = cpu; bestCount = count; }
  }
  return best;
}

/**
 * Calls `spawn` with the calling thread bound to `cpu`, then puts the thread's own CPUs
 * back (spawnAroundFork: the child starts on `cpu`, as `taskset -c CPU COMMAND` would).
 * With `cpu` null, just spawns. The error, if any: the mask refused (a cpuset without that
 * CPU, a seccomp profile; the child runs where the front may) or not restored.
 */
export function spawnOnCpu<T>(cpu: number | null, spawn: () => T): { result: T; error: NodeJS.ErrnoException | null } {
  if (cpu === null) return { result: spawn(), error: null };
  return spawnAroundFork(() => {
    const own = threadAffinity();
    setThreadAffinity([cpu]);
    return () => setThreadAffinity(own);
  }, spawn);
}
