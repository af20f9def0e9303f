// --socket shared (spawn-fcgi -F N): one listening socket handed to every child as
// fd 0, one backend in the pool; the kernel picks which child accepts. The front
// still bounds requests (and kept connections) to the sum of the ready children's
// slots. Which child serves a connection is found from the accepted end (peers.ts):
// that is how a starting child is known to serve, and how a child is drained — its
// kept connections get no new request and are closed once idle, so the kernel hands
// new ones to the others — before it is stopped.
import net from 'node:net';
import type { Logger } from 'pino';
import { getValues } from '../fastcgi/getValues.js';
import { peerInode } from '../native/sock.js';
import type { Backend, BackendSwitches } from '../pool/backend.js';
import type { Pool } from '../pool/pool.js';
import { decideSwitches, type SwitchSettings } from '../pool/switches.js';
import type { Child } from './child.js';
import type { ChildSeat, ManagedChild, SpawnSocket } from './managedChild.js';
import { socketInodesOf } from './peers.js';
import type { ListeningSocket } from './sockets.js';

export interface SharedSocketOptions {
  switches: SwitchSettings;
  getValuesTimeoutMs: number;
}

interface Waiting {
  process: Child;
  deadline: number;
  resolve(values: Map<string, string> | null): void;
  reject(err: Error): void;
}

const POLL_MS = 10;
const DRAIN_POLL_MS = 50;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function fdOf(socket: net.Socket): number {
  return (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
}

export class SharedSocket implements ChildSeat {
  /** Every child on the socket (starting, ready, restarting, draining). */
  private readonly members = new Set<ManagedChild>();
  /** One child's switches; the backend has them times the ready children. */
  private perChild: BackendSwitches | null = null;
  private readonly waiting = new Map<ManagedChild, Waiting>();
  private probing = false;
  /** The switches last applied to the backend (its learned capabilities are kept while they hold). */
  private applied: BackendSwitches | null = null;
  /** Restarts of children no longer on the socket (drained, scaled down). */
  private pastRestarts = 0;

  constructor(readonly backend: Backend, private readonly socket: ListeningSocket, private readonly options: SharedSocketOptions,
    private readonly pool: Pool, private readonly log: Logger) {}

  join(child: ManagedChild): void {
    this.members.add(child);
  }

  async prepare(): Promise<SpawnSocket> {
    return { path: this.socket.path, fd: this.socket.fd };
  }

  spawned(): void {
    this.update();
  }

  /**
   * A child serves once a probe connection it accepted is answered (GET_VALUES) or
   * silently held. Probes are kept open until every starting child is found, so that
   * a single-threaded sibling busy with one lets the next land elsewhere.
   */
  probe(child: ManagedChild, process: Child, deadline: number): Promise<Map<string, string> | null> {
    return new Promise((resolve, reject) => {
      this.waiting.set(child, { process, deadline, resolve, reject });
      if (!this.probing) void this.probeLoop();
    });
  }

  ready(child: ManagedChild, values: Map<string, string> | null): void {
    // Found serving one of the pool's connections instead of a probe: it runs what its siblings run.
    const s = values === null && this.perChild !== null ? this.perChild : decideSwitches(this.options.switches, values);
    const p = this.perChild;
    const changed = p === null || p.slots !== s.slots || p.multithreaded !== s.multithreaded || p.multiplexed !== s.multiplexed
      || p.answersGetValues !== s.answersGetValues;
    if (changed) this.perChild = s; // the same switches keep what the backend learned since
    const message = `backend ${child.id} ready on the shared socket: pid ${child.pid}, ${s.slots} slot${s.slots === 1 ? '' : 's'} per child${s.multiplexed ? ', multiplexed' : ''}`;
    const fields = { backend: child.id, pid: child.pid, multithreaded: s.multithreaded, multiplexed: s.multiplexed, slotsPerChild: s.slots, source: s.source, getValues: values ? Object.fromEntries(values) : null };
    if (changed) this.log.info(fields, message);
    else this.log.debug(fields, message);
    this.update();
  }

  exited(): void {
    this.update();
  }

  /**
   * Drains one child: no new request on the connections it serves, each closed once
   * idle; resolves when it holds none of ours (false: the timeout came first). Stop it
   * then: a connection the kernel has not handed out yet stays in the socket's queue
   * for the others.
   */
  async drain(child: ManagedChild, timeoutMs: number): Promise<boolean> {
    child.drain();
    this.update();
    const transport = this.backend.transport;
    const until = Date.now() + timeoutMs;
    for (;;) {
      const pid = child.pid;
      if (pid === undefined) return true; // exited meanwhile
      const open = transport.retireConnections?.(this.connectionsServedBy([child])) ?? 0;
      if (open === 0) return true;
      if (Date.now() > until) {
        this.log.warn({ backend: child.id, pid, connections: open }, `backend ${child.id} still served ${open} busy connection(s) after ${timeoutMs} ms of draining; stopping it anyway`);
        return false;
      }
      await sleep(DRAIN_POLL_MS);
    }
  }

  /** The fds of our connections whose accepted end one of `children`'s processes holds. */
  private connectionsServedBy(children: ManagedChild[]): Set<number> {
    const fds = new Set<number>();
    const pids = children.map((c) => c.pid).filter((p): p is number => p !== undefined);
    if (pids.length === 0) return fds;
    const held = socketInodesOf(pids);
    for (const fd of this.backend.transport.connectionFds?.() ?? []) {
      const peer = peerInode(fd);
      if (peer !== null && held.has(peer)) fds.add(fd);
    }
    return fds;
  }

  /** After its process stopped. */
  remove(child: ManagedChild): void {
    this.pastRestarts += child.restarts;
    this.members.delete(child);
    this.update();
  }

  /** The backend's state, slots and reasons from its children's. */
  private update(): void {
    const backend = this.backend;
    let ready = 0;
    let restarts = this.pastRestarts;
    const unavailable: string[] = [];
    let wanted = 0;
    let down: ManagedChild | null = null;
    for (const c of this.members) {
      restarts += c.restarts;
      if (!c.wanted) continue;
      wanted++;
      if (c.state === 'ready') ready++;
      if (c.unavailable !== null) unavailable.push(`${c.id}: ${c.unavailable}`);
      if (c.state === 'down') down ??= c;
    }
    backend.restarts = restarts;
    backend.pid = undefined; // one row per child in /stats (children), not one pid
    const per = this.perChild;
    if (per === null || ready === 0) {
      backend.state = wanted === 0 || (down !== null && unavailable.length === wanted) ? 'down' : 'restarting';
      backend.unavailable = wanted > 0 && unavailable.length === wanted ? unavailable.join('; ') : null;
      backend.downReason = down?.downReason ?? null;
      return;
    }
    const slots = per.slots * ready;
    if (this.applied !== per) {
      // No multiplexing here: the kernel could hand the one connection carrying every request to one child.
      backend.applySwitches({ ...per, multiplexed: false, slots,
        source: per.multiplexed ? `${per.source}; not multiplexed on a shared socket` : per.source });
      this.applied = per;
    } else if (backend.caps.slotsClaimed !== slots) {
      // A child came or went: the same app, so what was learned about it (keep-conn, pipelining)
      // holds; the slots follow the children (a measured count was for the others).
      const caps = backend.caps;
      caps.slotsClaimed = slots;
      caps.slots = slots;
      caps.slotsLearned = null;
    }
    backend.transport.resume();
    backend.state = 'ready';
    backend.unavailable = null;
    backend.downReason = null;
    this.pool.serveQueue();
  }

  // --- finding which child accepted a probe ---

  private async probeLoop(): Promise<void> {
    this.probing = true;
    const held: net.Socket[] = [];
    try {
      while (this.expireWaiting() > 0) {
        if (!(await this.probeOnce(held))) await sleep(25);
      }
    } finally {
      for (const s of held) s.destroy();
      this.probing = false;
    }
  }

  /** Rejects the waiting children that exited or ran out of time; returns how many still wait. */
  private expireWaiting(): number {
    const now = Date.now();
    for (const [child, w] of this.waiting) {
      if (w.process.exited) { this.waiting.delete(child); w.reject(new Error('exited before it was ready')); }
      else if (now > w.deadline) { this.waiting.delete(child); w.reject(new Error('it accepted no connection on the shared socket before the start timeout')); }
    }
    return this.waiting.size;
  }

  /** One probe: returns whether some child accepted it (it is then kept open in `held`). */
  private async probeOnce(held: net.Socket[]): Promise<boolean> {
    const socket = await new Promise<net.Socket | null>((resolve) => {
      const s = net.connect({ path: this.socket.path });
      s.once('connect', () => { s.removeAllListeners('error'); s.on('error', () => {}); resolve(s); });
      s.once('error', () => resolve(null)); // EAGAIN: its queue is full; try again shortly
    });
    if (!socket) return false;
    let answer: Array<[string, string]> | null | undefined;
    void getValues(socket).then((pairs) => { answer = pairs; });
    const fd = fdOf(socket);
    let holder: ManagedChild | null = null;
    let acceptedAt = 0;
    for (let tick = 1; ; tick++) {
      await sleep(POLL_MS);
      if (this.expireWaiting() === 0) { socket.destroy(); return true; }
      if (holder === null) {
        const peer = peerInode(fd);
        if (peer === null) {
          if (answer === null) { socket.destroy(); return false; } // accepted and closed at once (a child at its limit)
          // Not accepted yet: every child is busy, or a new one took a connection of the pool's
          // queued ahead of this probe (a single-threaded one then serves that one, and is ready).
          if (tick % 10 === 0) this.findServingPoolConnections();
          continue;
        }
        holder = this.holderOf(peer);
        acceptedAt = Date.now();
        if (holder === null) { held.push(socket); return true; } // a process not ours, or gone: try another probe
        if (!this.waiting.has(holder)) { held.push(socket); return true; } // a sibling that serves already: keep it busy
      }
      // The child accepted it: ready once it answered, closed, or stayed silent for get-values-timeout.
      if (answer !== undefined || Date.now() - acceptedAt >= this.options.getValuesTimeoutMs) {
        const w = this.waiting.get(holder);
        this.waiting.delete(holder);
        held.push(socket);
        w?.resolve(answer ? new Map(answer) : null);
        return true;
      }
    }
  }

  /** Waiting children that serve a connection of the pool's are ready (they said nothing: values null). */
  private findServingPoolConnections(): void {
    const waiting = [...this.waiting.keys()];
    for (const child of waiting) {
      if (this.connectionsServedBy([child]).size === 0) continue;
      const w = this.waiting.get(child);
      this.waiting.delete(child);
      w?.resolve(null);
    }
  }

  private holderOf(peer: number): ManagedChild | null {
    const byPid = new Map<number, ManagedChild>();
    for (const c of this.members) if (c.pid !== undefined) byPid.set(c.pid, c);
    const group = socketInodesOf(byPid.keys()).get(peer);
    return group === undefined ? null : byPid.get(group) ?? null;
  }
}
