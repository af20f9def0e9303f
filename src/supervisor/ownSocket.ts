// --socket per-process: a child with a socket and a backend of its own; the front
// balances. The socket is made fresh for every spawn: connections a dead process
// never accepted (a readiness probe's, a request's) go with its accept queue instead
// of being what the new process serves first.
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { Backend } from '../pool/backend.js';
import type { Pool } from '../pool/pool.js';
import { decideSwitches, type SwitchSettings } from '../pool/switches.js';
import type { Child } from './child.js';
import type { ChildSeat, ManagedChild, SpawnSocket } from './managedChild.js';
import { probeBackend } from './readiness.js';
import { ListeningSocket } from './sockets.js';

export interface OwnSocketOptions {
  socketPath: string;
  /** upfront creates the socket and hands it over; false: the child binds socketPath itself ({socket}, HTTP apps). */
  createsSocket: boolean;
  backlog: number;
  switches: SwitchSettings;
  protocol: 'fastcgi' | 'http';
  getValuesTimeoutMs: number;
}

export class OwnSocket implements ChildSeat {
  private socket: ListeningSocket | null = null;

  constructor(readonly backend: Backend, private readonly options: OwnSocketOptions, private readonly pool: Pool, private readonly log: Logger) {}

  async prepare(): Promise<SpawnSocket> {
    const o = this.options;
    if (!o.createsSocket) {
      try { fs.unlinkSync(o.socketPath); } catch { /* none */ }
      return { path: o.socketPath, fd: null };
    }
    this.socket ??= await ListeningSocket.create(o.socketPath, o.backlog);
    return { path: o.socketPath, fd: this.socket.fd };
  }

  spawned(child: ManagedChild): void {
    this.backend.pid = child.pid;
    if (this.backend.state !== 'down') this.backend.state = child.restarts > 0 ? 'restarting' : 'starting';
  }

  async probe(_child: ManagedChild, process: Child, deadline: number): Promise<Map<string, string> | null> {
    const result = await probeBackend({
      address: this.backend.address,
      getValuesTimeoutMs: this.options.getValuesTimeoutMs,
      deadline,
      isAlive: () => process.exited === null,
      fastcgi: this.options.protocol === 'fastcgi',
    });
    return result.values;
  }

  ready(child: ManagedChild, values: Map<string, string> | null): void {
    const backend = this.backend;
    const s = decideSwitches(this.options.switches, values, this.options.protocol);
    backend.applySwitches(s);
    backend.transport.resume();
    backend.state = 'ready';
    backend.downReason = null;
    backend.unavailable = null;
    this.log.info({
      backend: child.id, pid: child.pid, address: backend.addressText,
      multithreaded: s.multithreaded, multiplexed: s.multiplexed, slots: s.slots, source: s.source, getValues: values ? Object.fromEntries(values) : null,
    }, `backend ${child.id} ready: pid ${child.pid}, ${s.slots} slot${s.slots === 1 ? '' : 's'}${s.multiplexed ? ', multiplexed' : ''}`);
    this.pool.serveQueue();
  }

  exited(child: ManagedChild): void {
    const backend = this.backend;
    backend.state = child.state === 'down' ? 'down' : 'restarting';
    backend.restarts = child.restarts;
    backend.unavailable = child.unavailable;
    backend.downReason = child.downReason;
    // Every connection of the dead process is useless, and one still waiting in the socket's accept
    // queue would be the first the new process accepts and serves until closed: drop them all.
    // Requests in flight on them fail as not started and are retried elsewhere.
    backend.transport.suspend();
    this.closeSocket(); // its accept queue goes with it
  }

  /** No new requests; resolves once those in flight are done (false: the timeout came first). */
  async drain(child: ManagedChild, timeoutMs: number): Promise<boolean> {
    child.drain();
    const backend = this.backend;
    backend.state = 'draining';
    const drained = await Promise.race([backend.whenIdle().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
    if (!drained) this.log.warn({ backend: child.id, inflight: backend.inflight }, `backend ${child.id} still had ${backend.inflight} request(s) after ${timeoutMs} ms of draining; stopping it anyway`);
    backend.transport.close(true);
    return drained;
  }

  /** After its process stopped: the socket goes, the backend leaves the pool. */
  remove(): void {
    this.backend.transport.close(true);
    this.closeSocket();
    this.backend.state = 'down';
    this.pool.remove(this.backend);
  }

  private closeSocket(): void {
    if (this.socket) { this.socket.close(); this.socket = null; return; }
    if (!this.options.createsSocket) { try { fs.unlinkSync(this.options.socketPath); } catch { /* gone */ } }
  }
}
