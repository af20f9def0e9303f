// The small native addon (native/upfront_sock.c): listening unix sockets the parent
// never accepts on, the kernel's accept queues (sock_diag), and the accepted end of a
// connection (sock_diag): whether the app accepted it yet, and which process serves it;
// a thread's CPU scheduling policy (the front's own threads; the children inherit the forking thread's at fork) and affinity.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface SockAddon {
  listenUnix(path: string, backlog: number): number;
  closeFd(fd: number): void;
  acceptQueues(): Array<[number, string, number, number]>;
  peerInode(fd: number): [number, number] | null;
  threadSched(tid?: number): [number, number];
  setThreadSched(policy: number, priority: number, tid?: number): void;
  threadAffinity(): number[];
  setThreadAffinity(cpus: number[]): void;
}

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let addon: SockAddon;
try {
  addon = require(path.join(root, 'build', 'Release', 'upfront_sock.node')) as SockAddon;
} catch (err) {
  throw new Error(`upfront's native addon is not built (${(err as Error).message.split('\n')[0]}); run "npm ci" or "npx node-gyp rebuild" in ${root}`);
}

export const listenUnix = addon.listenUnix;
/** A thread's scheduling policy (SCHED_OTHER 0, SCHED_BATCH 3, ...) and priority; tid 0 or none: the calling thread. */
export const threadSched = addon.threadSched;
/** Sets a thread's policy and priority (sched_setscheduler(tid, ...); tid 0 or none: the calling thread); throws with the errno. */
export const setThreadSched = addon.setThreadSched;
/** The CPUs the calling thread may run on (sched_getaffinity(0)), ascending. */
export const threadAffinity = addon.threadAffinity;
/** Restricts the calling thread to `cpus` (sched_setaffinity(0, ...)); throws with the errno. */
export const setThreadAffinity = addon.setThreadAffinity;
export const closeFd = addon.closeFd;

export interface AcceptQueue {
  inode: number;
  path: string;
  /** Connections waiting for accept() (ss -xl Recv-Q). */
  queued: number;
  /** The listen backlog (ss -xl Send-Q). */
  backlog: number;
}

export function acceptQueues(): AcceptQueue[] {
  return addon.acceptQueues().map(([inode, p, queued, backlog]) => ({ inode, path: p, queued, backlog }));
}

/** The accept queue of the listening socket bound at `socketPath`, or undefined. */
export function acceptQueueOf(socketPath: string): AcceptQueue | undefined {
  for (const row of addon.acceptQueues()) if (row[1] === socketPath) return { inode: row[0], path: row[1], queued: row[2], backlog: row[3] };
  return undefined;
}

/**
 * The inode of the socket at the other end of our connected unix socket `fd` (the
 * end a backend process accepted, as /proc/PID/fd shows it: socket:[INODE]); null
 * while no process accepted it yet, or when `fd` is not a connected unix socket.
 */
export function peerInode(fd: number): number | null {
  const r = addon.peerInode(fd);
  return r === null || r[1] === 0 ? null : r[1];
}
