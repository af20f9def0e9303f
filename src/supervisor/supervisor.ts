// Spawns and supervises the backend processes of one pool, in either socket mode:
// a socket per process (ownSocket.ts) or one shared socket, spawn-fcgi -F N style
// (sharedSocket.ts). Each process is a ManagedChild (spawn, readiness, restart with
// backoff); here are the decisions over all of them: scale, rolling reload,
// recycling, --kill-stuck, and the orderly stop.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { resolveIdentity, type Identity } from '../config/identity.js';
import type { SchedPolicy } from './schedPolicy.js';
import { allowedCpus, leastTakenCpu, type CpuAffinity } from './cpuAffinity.js';
import type { BackendFactory, BackendSource } from '../pool/backendSource.js';
import type { Pool } from '../pool/pool.js';
import type { SwitchSettings } from '../pool/switches.js';
import { rssMb } from '../stats/proc.js';
import { resolveCommand } from '../config/command.js';
import type { ChildSpec } from './child.js';
import { ManagedChild, type ChildLifecycle, type ChildState, type SpawnSocket } from './managedChild.js';
import { OwnSocket } from './ownSocket.js';
import { SharedSocket } from './sharedSocket.js';
import { ListeningSocket, mkdirs } from './sockets.js';

export interface SupervisorOptions {
  command: string;
  args: string[];
  procs: number;
  socketMode: 'per-process' | 'shared';
  backlog: number;
  socketDir: string;
  cwd: string;
  env: Record<string, string>;
  switches: SwitchSettings;
  makeBackend: BackendFactory;
  startTimeoutMs: number;
  getValuesTimeoutMs: number;
  killTimeoutMs: number;
  restartBackoffMs: number;
  restartBackoffMaxMs: number;
  /** Recycle a process after this many requests (+ up to maxRequestsJitter), as gunicorn / php-fpm. 0: never. */
  maxRequests: number;
  maxRequestsJitter: number;
  /** Failures in a row after which a backend shows as down (it is still retried, at the longest backoff). */
  downAfterFailures: number;
  /** How long a process being removed may finish its requests (shutdown-grace). */
  drainTimeoutMs: number;
  protocol: 'fastcgi' | 'http';
  /** Recycle a process whose resident memory exceeds this many MB (0: never). */
  maxRssMb: number;
  /** '0': the socket as fd 0 (FCGI_LISTENSOCK_FILENO); 'systemd': as fd 3 with LISTEN_FDS=1, LISTEN_PID. */
  socketFd: '0' | 'systemd';
  /** The CPU scheduling policy the processes start under (schedPolicy.ts). */
  schedPolicy: SchedPolicy;
  /** auto: each process bound to one CPU, spread over the front's (cpuAffinity.ts); none: the kernel places them. */
  cpuAffinity: CpuAffinity;
  /** Drop the children's privileges to this user (and group) when upfront runs as root. */
  user?: string;
  group?: string;
}

export interface SupervisorCounters {
  recycles: number;
  reloads: number;
  scaleChanges: number;
}

/** A process as /stats lists it: in shared mode several serve one backend. */
export interface ChildRow {
  id: string;
  pid: number | undefined;
  /** The pool backend it serves. */
  backend: string;
  state: ChildState;
  restarts: number;
  /** The CPU it is bound to (--cpu-affinity auto), or null. */
  cpu: number | null;
}

export class Supervisor implements BackendSource {
  readonly counters: SupervisorCounters = { recycles: 0, reloads: 0, scaleChanges: 0 };
  private readonly managed: ManagedChild[] = [];
  private nextIndex = 0;
  private identity: Identity | null = null;
  /** --socket shared: the one socket and its backend. */
  private shared: SharedSocket | null = null;
  private sharedSocket: ListeningSocket | null = null;
  private recycleTimer: NodeJS.Timeout | null = null;
  private rssTick = 0;
  private stopping = false;
  /**
   * The scale or reload under way, or the last: they run one after another. Two at once
   * would each count the other's processes (a reload replaced the replacements another was
   * starting: a SIGHUP storm doubled the processes per signal).
   */
  private changing: Promise<unknown> = Promise.resolve();
  /** Changes asked for and not done yet; recycling waits while there are any. */
  private changesPending = 0;
  /** A reload asked for and not started yet: reloads asked meanwhile join it (one more is enough). */
  private pendingReload: Promise<{ replaced: number; failed: number; errors: string[] }> | null = null;
  /** Recycles under way (max-requests, max-rss): a scale or reload waits for them first. */
  private readonly recycles = new Set<Promise<unknown>>();
  /** upfront creates the sockets (FastCGI apps take them as fd 0); else each child binds UPFRONT_SOCKET / {socket}. */
  private readonly createsSockets: boolean;
  private readonly lifecycle: ChildLifecycle;
  /** --cpu-affinity auto: the CPUs the processes are spread over (the front's own, read at start); null: not bound. */
  private readonly cpus: number[] | null;

  constructor(private readonly options: SupervisorOptions, private readonly pool: Pool, private readonly log: Logger) {
    const argsHaveSocket = options.args.some((a) => a.includes('{socket}')) || options.command.includes('{socket}');
    this.createsSockets = !argsHaveSocket && options.protocol === 'fastcgi';
    this.cpus = options.cpuAffinity === 'auto' ? allowedCpus() : null;
    this.lifecycle = {
      spec: (socket, cpu) => this.childSpec(socket, cpu),
      startTimeoutMs: options.startTimeoutMs,
      killTimeoutMs: options.killTimeoutMs,
      restartBackoffMs: options.restartBackoffMs,
      restartBackoffMaxMs: options.restartBackoffMaxMs,
      downAfterFailures: options.downAfterFailures,
    };
  }

  /** Creates the sockets and spawns every child; resolves once each is ready or has failed its first start. */
  async start(): Promise<void> {
    const o = this.options;
    if (!o.command.includes('{socket}')) resolveCommand(o.command, o.cwd);
    if (o.user) this.identity = resolveIdentity(o.user, o.group);
    mkdirs(o.socketDir); // the front made and checked it (makeSocketDir); here for a supervisor used alone
    // A child that binds {socket} itself, as another user, must be able to create it there.
    if (this.identity) fs.chownSync(o.socketDir, this.identity.uid, this.identity.gid);
    if (o.socketMode === 'shared') {
      if (!this.createsSockets) throw new Error('--socket shared hands one socket to every child as fd 0; a command with {socket} binds its own: use --socket per-process');
      this.sharedSocket = await ListeningSocket.create(path.join(o.socketDir, 'shared.sock'), o.backlog);
      const backend = o.makeBackend('shared', { path: this.sharedSocket.path }, 0);
      this.pool.add(backend);
      this.shared = new SharedSocket(backend, this.sharedSocket, { switches: o.switches, getValuesTimeoutMs: o.getValuesTimeoutMs }, this.pool, this.log);
    }
    const fresh: ManagedChild[] = [];
    for (let i = 0; i < o.procs; i++) fresh.push(this.add());
    await Promise.all(fresh.map((c) => c.start()));
    if (o.maxRequests > 0 || o.maxRssMb > 0) {
      // Checked off the request path: a counter compare per backend, 10 times a second.
      this.recycleTimer = setInterval(() => this.checkRecycle(), 100);
      this.recycleTimer.unref();
    }
  }

  /**
   * A new child, with its seat: a socket and backend of its own, or a place on the shared
   * socket. Its CPU (--cpu-affinity auto): `cpu` (it replaces a process there), else the one
   * the fewest wanted processes are on.
   */
  private add(cpu: number | null = null): ManagedChild {
    const o = this.options;
    const index = this.nextIndex++;
    if (this.cpus !== null && cpu === null) cpu = leastTakenCpu(this.cpus, this.managed.filter((c) => c.wanted).map((c) => c.cpu));
    const id = `b${index}`;
    let child: ManagedChild;
    if (this.shared) {
      child = new ManagedChild(id, index, this.shared, this.lifecycle, this.log, cpu);
      this.shared.join(child);
    } else {
      const socketPath = path.join(o.socketDir, `${id}.sock`);
      const backend = o.makeBackend(id, { path: socketPath }, index);
      const seat = new OwnSocket(backend, { socketPath, createsSocket: this.createsSockets, backlog: o.backlog, switches: o.switches, protocol: o.protocol, getValuesTimeoutMs: o.getValuesTimeoutMs }, this.pool, this.log);
      child = new ManagedChild(id, index, seat, this.lifecycle, this.log, cpu);
      this.pool.add(backend);
      if (o.maxRequests > 0) child.recycleAt = o.maxRequests + (o.maxRequestsJitter > 0 ? Math.floor(Math.random() * (o.maxRequestsJitter + 1)) : 0);
    }
    this.managed.push(child);
    return child;
  }

  private childSpec(socket: SpawnSocket, cpu: number | null): ChildSpec {
    const o = this.options;
    const sub = (s: string) => s.split('{socket}').join(socket.path);
    const systemd = o.socketFd === 'systemd' && socket.fd !== null;
    return {
      command: sub(o.command),
      args: o.args.map(sub),
      env: { ...process.env, ...o.env, UPFRONT_SOCKET: socket.path, ...(systemd ? { LISTEN_FDS: '1', LISTEN_FDNAMES: 'upfront' } : {}) },
      systemd,
      cwd: o.cwd,
      listenFd: socket.fd,
      identity: this.identity,
      schedPolicy: o.schedPolicy,
      cpu,
    };
  }

  /** Processes wanted now (not counting those being drained away). */
  get procs(): number {
    let n = 0;
    for (const c of this.managed) if (c.wanted) n++;
    return n;
  }

  /**
   * Runs `target` processes: new ones start and get requests once ready; removed ones
   * stop getting requests, finish those in flight (bounded by drainTimeoutMs), then
   * get SIGTERM. Resolves once done; rejects with the reason when a new process did not
   * get ready (it is removed again: a failed scale leaves the processes as they were).
   */
  scale(target: number, reason: string, drainTimeoutMs = this.options.drainTimeoutMs): Promise<{ from: number; to: number }> {
    if (this.stopping) return Promise.reject(new Error('upfront is stopping: cannot scale'));
    return this.oneAtATime(() => this.scaleNow(target, reason, drainTimeoutMs));
  }

  /** Runs `change` once the changes asked before it (and recycles under way) are done. */
  private oneAtATime<T>(change: () => Promise<T>): Promise<T> {
    this.changesPending++;
    const run = this.changing.then(async () => {
      while (this.recycles.size > 0) await Promise.all(this.recycles);
      if (this.stopping) throw new Error('upfront is stopping');
      return change();
    }).finally(() => { this.changesPending--; });
    this.changing = run.catch(() => {});
    return run;
  }

  private async scaleNow(target: number, reason: string, drainTimeoutMs: number): Promise<{ from: number; to: number }> {
    const from = this.procs;
    if (target === from) return { from, to: target };
    this.counters.scaleChanges++;
    this.log.info({ from, to: target, reason }, `scaling from ${from} to ${target} process${target === 1 ? '' : 'es'} (${reason})`);
    if (target < from) {
      // Retire the least busy, newest first: their queues are the shortest to drain.
      const victims = this.managed.filter((c) => c.wanted)
        .sort((a, b) => this.busyness(a) - this.busyness(b) || b.index - a.index)
        .slice(0, from - target);
      await Promise.all(victims.map((c) => this.retire(c, drainTimeoutMs)));
      return { from, to: target };
    }
    const fresh: ManagedChild[] = [];
    for (let i = from; i < target; i++) fresh.push(this.add());
    const ready = await Promise.all(fresh.map((c) => c.start().catch((err: Error) => { c.lastFailure = err.message; return false; })));
    const failed = fresh.filter((_, i) => !ready[i]);
    if (failed.length === 0) return { from, to: target };
    await Promise.all(failed.map((c) => this.retire(c, 0)));
    throw new Error(`scaling to ${target} failed: ${this.describeFailures(failed)}; ${this.procs} process${this.procs === 1 ? '' : 'es'} run`);
  }

  /** Requests in flight at a child, as far as the front can tell (per-process: its backend's). */
  private busyness(child: ManagedChild): number {
    return this.shared ? 0 : child.seat.backend.inflight;
  }

  private describeFailures(failed: ManagedChild[]): string {
    return failed.map((c) => `new process ${c.id} ${c.lastFailure ?? 'did not get ready'}`).join('; ');
  }

  /** The command line (and environment) new processes start with, from a re-read config. */
  setCommand(command: string, args: string[], env: Record<string, string>, cwd: string): void {
    if (!command.includes('{socket}')) resolveCommand(command, cwd);
    this.options.command = command;
    this.options.args = args;
    this.options.env = env;
    this.options.cwd = cwd;
  }

  /**
   * Rolling reload: a new process for each current one; as each is ready it takes
   * traffic and an old one is drained and stopped. A new process that does not get
   * ready leaves its old one in place. Resolves when every swap is done, with why
   * each failed one did.
   */
  reload(reason: string, drainTimeoutMs = this.options.drainTimeoutMs): Promise<{ replaced: number; failed: number; errors: string[] }> {
    if (this.stopping) return Promise.reject(new Error('upfront is stopping: cannot reload'));
    if (this.pendingReload) {
      this.log.info({ reason }, `reload (${reason}) joins the reload waiting for the one under way`);
      return this.pendingReload;
    }
    const reload = this.oneAtATime(() => {
      this.pendingReload = null;
      return this.reloadNow(reason, drainTimeoutMs);
    });
    this.pendingReload = reload;
    reload.catch(() => {}).finally(() => { if (this.pendingReload === reload) this.pendingReload = null; });
    return reload;
  }

  private async reloadNow(reason: string, drainTimeoutMs: number): Promise<{ replaced: number; failed: number; errors: string[] }> {
    const old = this.managed.filter((c) => c.wanted);
    this.log.info({ procs: old.length, reason }, `reloading ${old.length} process${old.length === 1 ? '' : 'es'} (${reason})`);
    this.counters.reloads++;
    const errors: string[] = [];
    const outcomes = await Promise.all(old.map((previous) => this.replace(previous, drainTimeoutMs).then((error) => {
      if (error !== null) errors.push(error);
      return error === null;
    })));
    const replaced = outcomes.filter(Boolean).length;
    const failed = outcomes.length - replaced;
    this.log.info({ replaced, failed }, `reload done: ${replaced} replaced${failed ? `, ${failed} kept because their replacement failed: ${errors.join('; ')}` : ''}`);
    return { replaced, failed, errors };
  }

  /** A new process takes over from `previous`: started first, then `previous` is drained and stopped. Returns null, or why it could not. */
  private async replace(previous: ManagedChild, drainTimeoutMs: number): Promise<string | null> {
    if (this.stopping) return 'upfront is stopping';
    let fresh: ManagedChild | null = null;
    try {
      fresh = this.add(previous.cpu);
      if (await fresh.start()) {
        await this.retire(previous, drainTimeoutMs);
        return null;
      }
      const why = this.describeFailures([fresh]);
      this.log.error({ backend: fresh.id, keeping: previous.id }, `${why}; keeping ${previous.id}`);
      await this.retire(fresh, 0);
      return why;
    } catch (err) {
      // Stopping while a replacement starts (socket dir gone...) is not worth a crash.
      const why = `could not replace backend ${previous.id}: ${(err as Error).message}`;
      if (!this.stopping) this.log.error({ backend: previous.id }, why);
      if (fresh) await this.retire(fresh, 0).catch(() => {});
      return why;
    } finally {
      previous.recycling = false;
    }
  }

  /** Drains a child (bounded), stops its process and removes it. */
  private async retire(child: ManagedChild, drainTimeoutMs: number): Promise<void> {
    const seat = child.seat;
    let drained = true;
    if (child.process) drained = await seat.drain(child, drainTimeoutMs);
    else child.drain(); // no process (restarting): nothing to drain, no restart either
    const pid = await child.stop();
    seat.remove(child);
    const i = this.managed.indexOf(child);
    if (i >= 0) this.managed.splice(i, 1);
    const what = pid === undefined ? `backend ${child.id} removed (no process ran${child.lastExit ? `; its last ${child.lastExit}` : ''})`
      : `backend ${child.id} (pid ${pid}) ${drained && drainTimeoutMs > 0 ? 'drained and ' : ''}stopped`;
    this.log.info({ backend: child.id, pid }, what);
  }

  private checkRecycle(): void {
    if (this.changesPending > 0) return; // the next check after the scale or reload
    const checkRss = this.options.maxRssMb > 0 && ++this.rssTick % 10 === 0; // once a second
    for (const child of this.managed) {
      if (child.state !== 'ready' || child.recycling) continue;
      const requests = this.shared ? 0 : child.seat.backend.counters.requests;
      let why: string | null = null;
      if (child.recycleAt > 0 && requests >= child.recycleAt) {
        why = `served ${requests} requests (max-requests)`;
      } else if (checkRss && child.pid) {
        const mb = rssMb(child.pid); // 0 when gone
        if (mb > this.options.maxRssMb) why = `uses ${mb.toFixed(0)} MB of memory (max-rss ${this.options.maxRssMb} MB)`;
      }
      if (!why) continue;
      child.recycling = true;
      this.counters.recycles++;
      this.log.info({ backend: child.id, pid: child.pid, requests }, `backend ${child.id} ${why}: recycling it`);
      const recycle = this.replace(child, this.options.drainTimeoutMs);
      this.recycles.add(recycle);
      void recycle.finally(() => this.recycles.delete(recycle));
    }
  }

  /**
   * --kill-stuck: a request exceeded the read timeout; kill the process that holds it
   * (uWSGI's harakiri, php-fpm's request_terminate_timeout). It is restarted as after a crash.
   * Per-process sockets only: on a shared one the front cannot tell which child it is.
   */
  killStuck(backendId: string): void {
    const child = this.managed.find((c) => c.id === backendId);
    if (!child || !child.process || !child.wanted) return;
    this.log.error({ backend: child.id, pid: child.pid }, `backend ${child.id} (pid ${child.pid}): a request exceeded read-timeout; killing it (--kill-stuck)`);
    child.kill();
  }

  /** Processes alive now (for stats and tests). */
  pids(): number[] {
    const out: number[] = [];
    for (const c of this.managed) if (c.pid !== undefined) out.push(c.pid);
    return out;
  }

  children(): ChildRow[] {
    return this.managed.map((c) => ({ id: c.id, pid: c.pid, backend: c.seat.backend.id, state: c.state, restarts: c.restarts, cpu: c.cpu }));
  }

  /** SIGTERM every child, SIGKILL after the kill timeout, remove the sockets. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.recycleTimer) clearInterval(this.recycleTimer);
    const all = this.managed.splice(0);
    for (const c of all) {
      c.seat.backend.state = 'down';
      c.seat.backend.transport.close(true);
    }
    await Promise.all(all.map((c) => c.stop()));
    for (const c of all) c.seat.remove(c);
    this.sharedSocket?.close();
    try { fs.rmdirSync(this.options.socketDir); } catch { /* not empty or not ours */ }
  }
}
