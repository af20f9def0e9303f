// One backend process under supervision, in either socket mode: spawn, readiness,
// restart with exponential backoff after an exit, the log line that says why it
// died, a crash loop marked unavailable (the pool fails fast on it), and the stop.
// Where its connections come from — a socket of its own, or one shared with its
// siblings — and what its readiness changes in the pool is its seat's business
// (ownSocket.ts, sharedSocket.ts).
import type { Logger } from 'pino';
import type { Backend } from '../pool/backend.js';
import { Child, describeExit, type ChildExit, type ChildSpec } from './child.js';

/** starting → ready → (exit) restarting → ready …; down: failing `down-after-failures` times in a row (still retried). */
export type ChildState = 'starting' | 'ready' | 'restarting' | 'down' | 'draining' | 'stopped';

export interface SpawnSocket {
  path: string;
  /** The listening fd handed over as fd 0 (or 3 with systemd), or null: the child binds `path` itself. */
  fd: number | null;
}

/** Where a managed child gets its connections, and what its life changes in the pool. */
export interface ChildSeat {
  /** The pool backend its requests go through (its own, or the shared socket's). */
  readonly backend: Backend;
  /** The socket for the next spawn (a socket of its own is made fresh after an exit). */
  prepare(child: ManagedChild): Promise<SpawnSocket>;
  /** Its process runs (its pid is known). */
  spawned(child: ManagedChild): void;
  /** Resolves with what the process said (FCGI_GET_VALUES; null: nothing) once it serves; throws why it does not. */
  probe(child: ManagedChild, process: Child, deadline: number): Promise<Map<string, string> | null>;
  /** It serves now, or again after a restart. */
  ready(child: ManagedChild, values: Map<string, string> | null): void;
  /** Its process exited unasked; the restart is scheduled after this. */
  exited(child: ManagedChild): void;
  /** Stops giving it requests and waits until it has none in flight (false: the timeout came first). */
  drain(child: ManagedChild, timeoutMs: number): Promise<boolean>;
  /** Its process stopped for good: what it held goes (its socket, its place in the pool). */
  remove(child: ManagedChild): void;
}

export interface ChildLifecycle {
  /** The command line for a spawn on `socket` (a reload may have changed it since the last). */
  spec(socket: SpawnSocket, cpu: number | null): ChildSpec;
  startTimeoutMs: number;
  killTimeoutMs: number;
  restartBackoffMs: number;
  restartBackoffMaxMs: number;
  /** Failures in a row after which it shows as down (it is still retried, at the longest backoff). */
  downAfterFailures: number;
}

/** An exit after this long of serving is not part of a crash loop: the count starts again. */
const RAN_WELL_MS = 10_000;
const STDERR_TAIL_LINES = 10;

export class ManagedChild {
  state: ChildState = 'starting';
  process: Child | null = null;
  restarts = 0;
  failuresInRow = 0;
  /** How its last process ended ("exited with code 3"), for /stats and errors. */
  lastExit: string | null = null;
  /** Why its last start failed, for reload and scale to report; null after a start that worked. */
  lastFailure: string | null = null;
  /** The last lines its processes wrote to stderr. */
  readonly stderrTail: string[] = [];
  /**
   * Why it cannot serve and is not about to (a crash loop, a process that never got
   * ready); null while it serves or merely restarts after running well.
   */
  unavailable: string | null = null;
  /** Set once it is down: the last exit and stderr, shown in /stats. */
  downReason: { lastExit: string; stderrTail: string[] } | null = null;
  /** Recycling after this many requests (0: never); set by the supervisor. */
  recycleAt = 0;
  recycling = false;
  private restartTimer: NodeJS.Timeout | null = null;

  constructor(readonly id: string, readonly index: number, readonly seat: ChildSeat,
    private readonly lifecycle: ChildLifecycle, private readonly log: Logger,
    /** The CPU its processes are bound to (--cpu-affinity auto), or null. */
    readonly cpu: number | null = null) {}

  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** Not draining or stopped: counted among the processes wanted. */
  get wanted(): boolean {
    return this.state !== 'draining' && this.state !== 'stopped';
  }

  /**
   * Spawns its process and waits until it serves. Resolves true once it does, false
   * when this start failed (a process that exits is restarted with backoff).
   */
  async start(): Promise<boolean> {
    if (!this.wanted) return false;
    const socket = await this.seat.prepare(this);
    if (!this.wanted) return false;
    const proc = new Child(this.id, this.lifecycle.spec(socket, this.cpu), this.log, (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
    });
    this.process = proc;
    if (this.state !== 'down') this.state = this.restarts > 0 ? 'restarting' : 'starting';
    this.seat.spawned(this);
    void proc.waitExit().then((exit) => this.onExit(proc, exit));
    try {
      const values = await this.seat.probe(this, proc, Date.now() + this.lifecycle.startTimeoutMs);
      if (proc.exited || !this.wanted) return false;
      this.state = 'ready';
      this.unavailable = null;
      this.downReason = null;
      this.lastFailure = null;
      this.seat.ready(this, values);
      return true;
    } catch (err) {
      if (!this.wanted) return false;
      if (proc.exited) {
        await proc.waitExit();
        return false; // lastFailure says how it ended (onExit)
      }
      const why = `was not ready: ${(err as Error).message}`;
      this.log.error({ backend: this.id, pid: proc.pid }, `backend ${this.id} (pid ${proc.pid}) ${why}; killing it`);
      proc.signal('SIGKILL');
      await proc.waitExit();
      // Its exit said "was killed by SIGKILL before it was ready": that SIGKILL was ours, this is the why.
      this.lastFailure = why;
      return false;
    }
  }

  private onExit(proc: Child, exit: ChildExit): void {
    if (this.process !== proc) return;
    this.process = null;
    if (!this.wanted) return; // stopped on purpose (drained, scaled down, shutting down)
    const wasReady = this.state === 'ready';
    this.lastExit = describeExit(exit);
    const ranWell = wasReady && exit.uptimeMs > RAN_WELL_MS;
    this.failuresInRow = ranWell ? 1 : this.failuresInRow + 1;
    this.restarts++;
    this.state = 'restarting';
    const tail = this.stderrTail.length ? `, stderr: ${this.stderrTail[this.stderrTail.length - 1].slice(0, 200)}` : '';
    if (!wasReady) this.lastFailure = `${this.lastExit} before it was ready${tail}`;
    if (this.failuresInRow >= 2 || !wasReady) {
      // Not a process that ran well and is coming back: requests should not wait for it.
      this.unavailable = `${this.lastExit}${wasReady ? '' : ' before it was ready'}, ${this.failuresInRow} time(s) in a row${tail}`;
    }
    if (this.failuresInRow >= this.lifecycle.downAfterFailures) {
      this.state = 'down';
      this.downReason = { lastExit: this.lastExit, stderrTail: this.stderrTail.slice() };
    }
    this.seat.exited(this);
    const delay = this.backoffMs();
    // Before it was ready, its last stderr line is usually the why (a missing module, a bad option).
    this.log.error({ backend: this.id, pid: proc.pid, code: exit.code, signal: exit.signal, uptimeMs: exit.uptimeMs, restartInMs: delay, failuresInRow: this.failuresInRow },
      `backend ${this.id} (pid ${proc.pid}) ${this.lastExit} after ${(exit.uptimeMs / 1000).toFixed(2)} s${wasReady ? '' : `, before it was ready${tail}`}; restarting in ${delay} ms (failure ${this.failuresInRow} in a row)`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.start().catch((err: Error) => { if (this.wanted) this.log.error({ backend: this.id }, `could not restart backend ${this.id}: ${err.message}`); });
    }, delay);
  }

  /** Exponential restart backoff: restart-backoff doubling per failure in a row, up to restart-backoff-max. */
  private backoffMs(): number {
    const l = this.lifecycle;
    return Math.min(l.restartBackoffMaxMs, l.restartBackoffMs * 2 ** (this.failuresInRow - 1));
  }

  /** Gets no new requests from now on; it is stopped once drained (by its seat). */
  drain(): void {
    if (this.state === 'stopped') return;
    this.state = 'draining';
    this.cancelRestart();
  }

  /** No more restarts; SIGTERM to its process group, SIGKILL after the kill timeout. Resolves with the pid it stopped. */
  async stop(): Promise<number | undefined> {
    this.state = 'stopped';
    this.cancelRestart();
    const proc = this.process;
    if (!proc) return undefined;
    await proc.stop(this.lifecycle.killTimeoutMs);
    return proc.pid;
  }

  /** --kill-stuck: SIGKILL; it is restarted as after a crash. */
  kill(): void {
    this.process?.signal('SIGKILL');
  }

  private cancelRestart(): void {
    if (this.restartTimer) { clearTimeout(this.restartTimer); this.restartTimer = null; }
  }
}
