// Spawns and supervises the backend processes of one pool: their sockets
// (per-process, or one shared socket as spawn-fcgi -F N), readiness, the switches
// each one reports, restarts with exponential backoff, and the orderly stop.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Backend, BackendSwitches } from '../pool/backend.js';
import { decideSwitches, type SwitchSettings } from '../pool/switches.js';
import type { BackendAddress } from '../transport.js';
import type { Pool } from '../pool/pool.js';
import { Child, describeExit, resolveCommand } from './child.js';
import { probeBackend } from './readiness.js';
import { ListeningSocket } from './sockets.js';
import { resolveIdentity, type Identity } from './identity.js';
import { rssMb } from '../stats/proc.js';


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
  /** A backend for a process's socket, with its transport (the wiring knows the protocol). */
  makeBackend(id: string, address: BackendAddress, index: number): Backend;
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
  drainTimeoutMs: number;
  protocol: 'fastcgi' | 'http';
  /** Recycle a process whose resident memory exceeds this many MB (0: never). */
  maxRssMb: number;
  /** '0': the socket as fd 0 (FCGI_LISTENSOCK_FILENO); 'systemd': as fd 3 with LISTEN_FDS=1, LISTEN_PID. */
  socketFd: '0' | 'systemd';
  /** Drop the children's privileges to this user (and group) when upfront runs as root. */
  user?: string;
  group?: string;
}

export interface SupervisorCounters {
  recycles: number;
  reloads: number;
  scaleChanges: number;
}

interface Slot {
  id: string;
  backend: Backend;
  socket: ListeningSocket | null;
  socketPath: string;
  child: Child | null;
  failuresInRow: number;
  restartTimer: NodeJS.Timeout | null;
  /** Being removed (scale down): drained, then stopped, never restarted. */
  retiring?: boolean;
  /** Requests after which this process is recycled (0: never). */
  recycleAt: number;
  recycling?: boolean;
  /** The last lines the child wrote to stderr, for /stats when it keeps failing. */
  stderrTail: string[];
  lastExit: string | null;
}

export class Supervisor {
  private readonly slots: Slot[] = [];
  private nextIndex = 0;
  readonly counters: SupervisorCounters = { recycles: 0, reloads: 0, scaleChanges: 0 };
  private recycleTimer: NodeJS.Timeout | null = null;
  private sharedSocket: ListeningSocket | null = null;
  private sharedChildren: Array<{ index: number; child: Child | null; failuresInRow: number; timer: NodeJS.Timeout | null; ready: boolean }> = [];
  private stopping = false;
  private readonly ownsSocket: boolean;
  private readonly argsHaveSocket: boolean;

  constructor(private readonly options: SupervisorOptions, private readonly pool: Pool, private readonly log: Logger) {
    this.argsHaveSocket = options.args.some((a) => a.includes('{socket}')) || options.command.includes('{socket}');
    // HTTP apps bind UPFRONT_SOCKET (or {socket}) themselves; FastCGI apps get it as fd 0.
    this.ownsSocket = !this.argsHaveSocket && options.protocol === 'fastcgi';
  }

  /** Creates sockets and spawns every child; resolves once each is ready or has failed its first start. */
  private identity: Identity | null = null;

  async start(): Promise<void> {
    if (!this.options.command.includes('{socket}')) resolveCommand(this.options.command, this.options.cwd);
    if (this.options.user) this.identity = resolveIdentity(this.options.user, this.options.group);
    fs.mkdirSync(this.options.socketDir, { recursive: true, mode: 0o700 });
    // A child that binds {socket} itself, as another user, must be able to create it there.
    if (this.identity) fs.chownSync(this.options.socketDir, this.identity.uid, this.identity.gid);
    if (this.options.socketMode === 'shared') {
      await this.startShared();
      return;
    }
    const added: Slot[] = [];
    for (let i = 0; i < this.options.procs; i++) added.push(await this.addSlot());
    await Promise.all(added.map((s) => this.spawnSlot(s)));
    if (this.options.maxRequests > 0 || this.options.maxRssMb > 0) {
      // Checked off the request path: a counter compare per backend, 10 times a second.
      this.recycleTimer = setInterval(() => this.checkRecycle(), 100);
      this.recycleTimer.unref();
    }
  }

  private rssTick = 0;

  private checkRecycle(): void {
    const checkRss = this.options.maxRssMb > 0 && ++this.rssTick % 10 === 0; // once a second
    for (const slot of this.slots) {
      if (slot.retiring || slot.recycling || slot.backend.state !== 'ready') continue;
      let why: string | null = null;
      if (slot.recycleAt > 0 && slot.backend.counters.requests >= slot.recycleAt) {
        why = `served ${slot.backend.counters.requests} requests (max-requests)`;
      } else if (checkRss && slot.child?.pid) {
        const mb = rssMb(slot.child.pid); // 0 when gone
        if (mb > this.options.maxRssMb) why = `uses ${mb.toFixed(0)} MB of memory (max-rss ${this.options.maxRssMb} MB)`;
      }
      if (!why) continue;
      slot.recycling = true;
      this.counters.recycles++;
      this.log.info({ backend: slot.id, pid: slot.child?.pid, requests: slot.backend.counters.requests }, `backend ${slot.id} ${why}: recycling it`);
      void this.replace(slot, this.options.drainTimeoutMs);
    }
  }

  /**
   * --kill-stuck: a request exceeded the read timeout; kill the process that holds it
   * (uWSGI's harakiri, php-fpm's request_terminate_timeout). It is restarted as after a crash.
   */
  killStuck(backendId: string): void {
    const slot = this.slots.find((s) => s.id === backendId);
    const child = slot?.child;
    if (!slot || !child || child.exited || slot.retiring) return;
    this.log.error({ backend: slot.id, pid: child.pid }, `backend ${slot.id} (pid ${child.pid}): a request exceeded read-timeout; killing it (--kill-stuck)`);
    child.signal('SIGKILL');
  }

  /** A new process takes over from `previous`: started first, then `previous` is drained and stopped. */
  private async replace(previous: Slot, drainTimeoutMs: number): Promise<boolean> {
    try {
      return await this.replaceUnguarded(previous, drainTimeoutMs);
    } catch (err) {
      // Stopping while a replacement starts (socket dir gone...) is not worth a crash.
      if (!this.stopping) this.log.error({ backend: previous.id }, `could not replace backend ${previous.id}: ${(err as Error).message}`);
      previous.recycling = false;
      return false;
    }
  }

  private async replaceUnguarded(previous: Slot, drainTimeoutMs: number): Promise<boolean> {
    if (this.stopping) return false;
    const fresh = await this.addSlot();
    await this.spawnSlot(fresh);
    if (fresh.backend.state === 'ready') {
      await this.retire(previous, drainTimeoutMs);
      return true;
    }
    this.log.error({ backend: fresh.id }, `new backend ${fresh.id} did not get ready; keeping ${previous.id}`);
    previous.recycling = false;
    await this.retire(fresh, 0);
    return false;
  }

  private async addSlot(): Promise<Slot> {
    const index = this.nextIndex++;
    const id = `b${index}`;
    const socketPath = path.join(this.options.socketDir, `${id}.sock`);
    const socket = this.ownsSocket ? await ListeningSocket.create(socketPath, this.options.backlog) : null;
    const backend = this.options.makeBackend(id, { path: socketPath }, index);
    const jitter = this.options.maxRequestsJitter > 0 ? Math.floor(Math.random() * (this.options.maxRequestsJitter + 1)) : 0;
    const slot: Slot = { id, backend, socket, socketPath, child: null, failuresInRow: 0, restartTimer: null,
      recycleAt: this.options.maxRequests > 0 ? this.options.maxRequests + jitter : 0, stderrTail: [], lastExit: null };
    this.slots.push(slot);
    this.pool.add(backend);
    return slot;
  }

  /** Processes wanted now (not counting those being drained away). */
  get procs(): number {
    if (this.options.socketMode === 'shared') return this.sharedChildren.length;
    return this.slots.filter((s) => !s.retiring).length;
  }

  /**
   * Runs `target` processes: new ones start and get requests once ready; removed
   * ones stop getting requests, finish those in flight (bounded by drainTimeoutMs),
   * then get SIGTERM. Resolves when the change is under way (not when drained).
   */
  async scale(target: number, reason: string, drainTimeoutMs: number): Promise<{ from: number; to: number }> {
    if (this.stopping) throw new Error('stopping: cannot scale');
    if (this.options.socketMode === 'shared') throw new Error('scale works with --socket per-process only so far');
    const from = this.procs;
    if (target === from) return { from, to: target };
    this.counters.scaleChanges++;
    this.log.info({ from, to: target, reason }, `scaling from ${from} to ${target} process${target === 1 ? '' : 'es'} (${reason})`);
    if (target > from) {
      for (let i = from; i < target; i++) {
        const slot = await this.addSlot();
        this.spawnSlot(slot).catch((err: Error) => this.log.error({ backend: slot.id }, `could not start backend ${slot.id}: ${err.message}`));
      }
    } else {
      // Retire the least busy, newest first: their queues are the shortest to drain.
      const victims = this.slots.filter((s) => !s.retiring)
        .sort((a, b) => a.backend.inflight - b.backend.inflight || b.backend.index - a.backend.index)
        .slice(0, from - target);
      for (const slot of victims) {
        this.retire(slot, drainTimeoutMs).catch((err: Error) => this.log.error({ backend: slot.id }, `could not stop backend ${slot.id}: ${err.message}`));
      }
    }
    return { from, to: target };
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
   * ready leaves its old one in place. Resolves when every swap is done.
   */
  async reload(reason: string, drainTimeoutMs: number): Promise<{ replaced: number; failed: number }> {
    if (this.stopping) throw new Error('stopping: cannot reload');
    if (this.options.socketMode === 'shared') throw new Error('reload works with --socket per-process only so far');
    const old = this.slots.filter((s) => !s.retiring);
    this.log.info({ procs: old.length, reason }, `reloading ${old.length} process${old.length === 1 ? '' : 'es'} (${reason})`);
    let replaced = 0;
    let failed = 0;
    this.counters.reloads++;
    await Promise.all(old.map(async (previous) => {
      if (await this.replace(previous, drainTimeoutMs)) replaced++;
      else failed++;
    }));
    this.log.info({ replaced, failed }, `reload done: ${replaced} replaced, ${failed} kept because their replacement failed`);
    return { replaced, failed };
  }

  private async retire(slot: Slot, drainTimeoutMs: number): Promise<void> {
    slot.retiring = true;
    const backend = slot.backend;
    backend.state = 'draining';
    if (slot.restartTimer) { clearTimeout(slot.restartTimer); slot.restartTimer = null; }
    const drained = await Promise.race([backend.whenIdle().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), drainTimeoutMs).unref())]);
    if (!drained) this.log.warn({ backend: slot.id, inflight: backend.inflight }, `backend ${slot.id} still had ${backend.inflight} request(s) after ${drainTimeoutMs} ms of draining; stopping it anyway`);
    backend.transport.close(true);
    const pid = slot.child?.pid;
    if (slot.child) await slot.child.stop(this.options.killTimeoutMs);
    if (slot.socket) slot.socket.close();
    else { try { fs.unlinkSync(slot.socketPath); } catch { /* gone */ } }
    backend.state = 'down';
    this.pool.remove(backend);
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    this.log.info({ backend: slot.id, pid }, `backend ${slot.id} (pid ${pid}) drained and stopped`);
  }

  private childSpec(socketPath: string, listenFd: number | null) {
    const sub = (s: string) => s.split('{socket}').join(socketPath);
    const systemd = this.options.socketFd === 'systemd' && listenFd !== null;
    return {
      command: sub(this.options.command),
      args: this.options.args.map(sub),
      env: { ...process.env, ...this.options.env, UPFRONT_SOCKET: socketPath, ...(systemd ? { LISTEN_FDS: '1', LISTEN_FDNAMES: 'upfront' } : {}) },
      systemd,
      cwd: this.options.cwd,
      listenFd,
      identity: this.identity,
    };
  }

  private async spawnSlot(slot: Slot): Promise<void> {
    if (this.stopping) return;
    if (!this.ownsSocket) { try { fs.unlinkSync(slot.socketPath); } catch { /* none */ } }
    else if (slot.socket === null) {
      // Closed when the last process died: a fresh one, so that connections the dead
      // process never accepted (a readiness probe's, a request's) are not what the new one serves first.
      slot.socket = await ListeningSocket.create(slot.socketPath, this.options.backlog);
    }
    const child = new Child(slot.id, this.childSpec(slot.socketPath, slot.socket?.fd ?? null), this.log,
      (line) => { slot.stderrTail.push(line); if (slot.stderrTail.length > 10) slot.stderrTail.shift(); });
    slot.child = child;
    slot.backend.pid = child.pid;
    if (slot.backend.state !== 'down') slot.backend.state = slot.backend.restarts > 0 ? 'restarting' : 'starting';
    child.waitExit().then((exit) => this.onSlotExit(slot, child, exit));
    try {
      const result = await probeBackend({
        address: slot.backend.address,
        getValuesTimeoutMs: this.options.getValuesTimeoutMs,
        deadline: Date.now() + this.options.startTimeoutMs,
        isAlive: () => child.exited === null,
        fastcgi: this.options.protocol === 'fastcgi',
      });
      if (child.exited || this.stopping || slot.retiring) return;
      const switches = decideSwitches(this.options.switches, result.values, this.options.protocol);
      slot.backend.applySwitches(switches);
      slot.backend.transport.resume();
      slot.backend.state = 'ready';
      slot.backend.downReason = null;
      slot.backend.unavailable = null;
      this.log.info({
        backend: slot.id, pid: child.pid, address: slot.backend.addressText,
        multithreaded: switches.multithreaded, multiplexed: switches.multiplexed, slots: switches.slots,
        source: switches.source, getValues: result.values ? Object.fromEntries(result.values) : null,
      }, `backend ${slot.id} ready: pid ${child.pid}, ${switches.slots} slot${switches.slots === 1 ? '' : 's'}${switches.multiplexed ? ', multiplexed' : ''}`);
      this.pool.serveQueue();
    } catch (err) {
      if (child.exited || this.stopping) return;
      this.log.error({ backend: slot.id, pid: child.pid }, `backend ${slot.id} (pid ${child.pid}) was not ready: ${(err as Error).message}; killing it`);
      child.signal('SIGKILL');
    }
  }

  private onSlotExit(slot: Slot, child: Child, exit: import('./child.js').ChildExit): void {
    if (slot.child !== child) return;
    slot.child = null;
    if (slot.retiring) return; // stopped on purpose (scale down)
    const backend = slot.backend;
    const wasReady = backend.state === 'ready';
    backend.state = this.stopping ? 'down' : 'restarting';
    // Every connection of the dead process is useless, and one still waiting in the socket's accept
    // queue would be the first the new process accepts and serves until closed: drop them all.
    // Requests in flight on them fail as not started and are retried elsewhere.
    backend.transport.suspend();
    if (slot.socket) { slot.socket.close(); slot.socket = null; } // its accept queue goes with it
    if (this.stopping) return;
    const ranLong = exit.uptimeMs > 10_000 && wasReady;
    slot.failuresInRow = ranLong ? 1 : slot.failuresInRow + 1;
    const delay = this.backoffMs(slot.failuresInRow);
    backend.restarts++;
    slot.lastExit = describeExit(exit);
    if (slot.failuresInRow >= 2 || !wasReady) {
      // Not a process that ran well and is coming back: requests should not wait for it.
      const tail = slot.stderrTail.length ? `, stderr: ${slot.stderrTail[slot.stderrTail.length - 1].slice(0, 200)}` : '';
      backend.unavailable = `${slot.lastExit}${wasReady ? '' : ' before it was ready'}, ${slot.failuresInRow} time(s) in a row${tail}`;
    }
    if (slot.failuresInRow >= this.options.downAfterFailures) {
      backend.state = 'down'; // still retried, but shown as down with why (see /stats lastExit, stderrTail)
      backend.downReason = { lastExit: slot.lastExit, stderrTail: slot.stderrTail.slice() };
    }
    this.log.error({ backend: slot.id, pid: child.pid, code: exit.code, signal: exit.signal, uptimeMs: exit.uptimeMs, restartInMs: delay, failuresInRow: slot.failuresInRow },
      `backend ${slot.id} (pid ${child.pid}) ${describeExit(exit)} after ${(exit.uptimeMs / 1000).toFixed(2)} s; restarting in ${delay} ms (failure ${slot.failuresInRow} in a row)`);
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null;
      this.spawnSlot(slot).catch((err: Error) => { if (!this.stopping) this.log.error({ backend: slot.id }, `could not restart backend ${slot.id}: ${err.message}`); });
    }, delay);
  }

  /** Exponential restart backoff: restart-backoff doubling per failure in a row, up to restart-backoff-max. */
  private backoffMs(failuresInRow: number): number {
    return Math.min(this.options.restartBackoffMaxMs, this.options.restartBackoffMs * 2 ** (failuresInRow - 1));
  }

  // --- shared socket: spawn-fcgi -F N ---

  private async startShared(): Promise<void> {
    const socketPath = path.join(this.options.socketDir, 'shared.sock');
    if (this.ownsSocket) this.sharedSocket = await ListeningSocket.create(socketPath, this.options.backlog);
    else throw new Error('--socket shared hands one socket to every child as fd 0; a command with {socket} binds its own: use --socket per-process');
    const backend = this.options.makeBackend('shared', { path: socketPath }, 0);
    backend.state = 'starting';
    this.pool.add(backend);
    this.slots.push({ id: 'shared', backend, socket: this.sharedSocket, socketPath, child: null, failuresInRow: 0, restartTimer: null, recycleAt: 0, stderrTail: [], lastExit: null });
    for (let i = 0; i < this.options.procs; i++) this.sharedChildren.push({ index: i, child: null, failuresInRow: 0, timer: null, ready: false });
    await Promise.all(this.sharedChildren.map((c) => this.spawnShared(c)));
  }

  private perChildSwitches: BackendSwitches | null = null;

  private updateSharedSlots(): void {
    const backend = this.slots[0].backend;
    const alive = this.sharedChildren.filter((c) => c.child && !c.child.exited && c.ready).length;
    const per = this.perChildSwitches;
    if (!per || alive === 0) {
      backend.state = this.stopping ? 'down' : 'restarting';
      return;
    }
    // The kernel picks the child; the front bounds requests (and kept connections) to the sum of slots.
    // No multiplexing here: the kernel could hand one connection carrying every request to one child.
    backend.applySwitches({ ...per, multiplexed: false, slots: per.slots * alive,
      source: per.multiplexed ? `${per.source}; not multiplexed on a shared socket` : per.source });
    backend.state = 'ready';
    backend.pid = this.sharedChildren.find((c) => c.child && !c.child.exited)?.child?.pid;
    this.pool.serveQueue();
  }

  private async spawnShared(entry: { index: number; child: Child | null; failuresInRow: number; timer: NodeJS.Timeout | null; ready: boolean }): Promise<void> {
    if (this.stopping) return;
    const backend = this.slots[0].backend;
    const id = `shared#${entry.index}`;
    const child = new Child(id, this.childSpec(this.sharedSocket!.path, this.sharedSocket!.fd), this.log);
    entry.child = child;
    entry.ready = false;
    child.waitExit().then((exit) => {
      if (entry.child !== child) return;
      entry.child = null;
      entry.ready = false;
      this.updateSharedSlots();
      if (this.stopping) return;
      entry.failuresInRow = exit.uptimeMs > 10_000 ? 1 : entry.failuresInRow + 1;
      const delay = this.backoffMs(entry.failuresInRow);
      backend.restarts++;
      this.log.error({ backend: id, pid: child.pid, code: exit.code, signal: exit.signal, restartInMs: delay },
        `backend ${id} (pid ${child.pid}) ${describeExit(exit)} after ${(exit.uptimeMs / 1000).toFixed(2)} s; restarting in ${delay} ms (failure ${entry.failuresInRow} in a row)`);
      entry.timer = setTimeout(() => { entry.timer = null; void this.spawnShared(entry); }, delay);
    });
    if (this.perChildSwitches === null) {
      try {
        const result = await probeBackend({
          address: backend.address, getValuesTimeoutMs: this.options.getValuesTimeoutMs,
          deadline: Date.now() + this.options.startTimeoutMs, isAlive: () => child.exited === null,
        });
        if (this.perChildSwitches === null) {
          this.perChildSwitches = decideSwitches(this.options.switches, result.values);
          const s = this.perChildSwitches;
          this.log.info({ backend: 'shared', pid: child.pid, multithreaded: s.multithreaded, multiplexed: s.multiplexed, slotsPerChild: s.slots, source: s.source, getValues: result.values ? Object.fromEntries(result.values) : null },
            `shared socket ready (multithreaded=${s.multithreaded}, multiplexed=${s.multiplexed}, ${s.slots} slot(s) per child, from ${s.source})`);
        }
      } catch (err) {
        if (child.exited || this.stopping) return;
        this.log.error({ backend: id, pid: child.pid }, `backend ${id} was not ready: ${(err as Error).message}; killing it`);
        child.signal('SIGKILL');
        return;
      }
    }
    if (child.exited || this.stopping) return;
    entry.ready = true;
    this.updateSharedSlots();
  }

  /** Processes alive now (for stats and tests). */
  pids(): number[] {
    const out: number[] = [];
    for (const s of this.slots) if (s.child?.pid && !s.child.exited) out.push(s.child.pid);
    for (const c of this.sharedChildren) if (c.child?.pid && !c.child.exited) out.push(c.child.pid);
    return out;
  }

  children(): Array<{ id: string; pid: number | undefined }> {
    if (this.options.socketMode === 'shared') return this.sharedChildren.map((c) => ({ id: `shared#${c.index}`, pid: c.child?.pid }));
    return this.slots.map((s) => ({ id: s.id, pid: s.child?.pid }));
  }

  /** SIGTERM every child, SIGKILL after the kill timeout, remove the sockets. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.recycleTimer) clearInterval(this.recycleTimer);
    const all: Child[] = [];
    for (const s of this.slots) {
      if (s.restartTimer) clearTimeout(s.restartTimer);
      if (s.child) all.push(s.child);
      s.backend.state = 'down';
      s.backend.transport.close(true);
    }
    for (const c of this.sharedChildren) {
      if (c.timer) clearTimeout(c.timer);
      if (c.child) all.push(c.child);
    }
    await Promise.all(all.map((c) => c.stop(this.options.killTimeoutMs)));
    for (const s of this.slots) {
      if (s.socket) s.socket.close();
      else { try { fs.unlinkSync(s.socketPath); } catch { /* gone */ } }
    }
    try { fs.rmdirSync(this.options.socketDir); } catch { /* not empty or not ours */ }
  }
}
