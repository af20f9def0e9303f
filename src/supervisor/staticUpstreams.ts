// The other BackendSource: --upstream backends, which upfront does not spawn
// (php-fpm, an app started by hand, another port on loopback). Each is probed as a
// spawned process is (readiness.ts) until it answers, in the background: an upstream
// is not ours to wait for forever. stop() ends the probing.
import type { Logger } from 'pino';
import type { BackendFactory, BackendSource } from '../pool/backendSource.js';
import type { Backend } from '../pool/backend.js';
import type { Pool } from '../pool/pool.js';
import { decideSwitches, type SwitchSettings } from '../pool/switches.js';
import type { BackendAddress } from '../transport.js';
import { probeBackend } from './readiness.js';

export interface StaticUpstreamsOptions {
  addresses: BackendAddress[];
  makeBackend: BackendFactory;
  switches: SwitchSettings;
  protocol: 'fastcgi' | 'http';
  getValuesTimeoutMs: number;
  startTimeoutMs: number;
  /** Between two probes of an upstream that did not answer. */
  retryMs?: number;
}

export class StaticUpstreams implements BackendSource {
  readonly backends: Backend[] = [];
  private stopped = false;
  private readonly sleepers = new Set<() => void>();
  /** The probe loops still running (one per upstream until it answers). */
  private readonly loops = new Set<Promise<void>>();

  constructor(private readonly options: StaticUpstreamsOptions, private readonly pool: Pool, private readonly log: Logger) {}

  /** Adds every upstream; waits briefly so the first requests find them ready, never for a dead one. */
  async start(): Promise<void> {
    const probes = this.options.addresses.map((address, i) => {
      const backend = this.options.makeBackend(`u${i}`, address, this.pool.backends.length);
      this.pool.add(backend);
      this.backends.push(backend);
      const loop = this.probeUntilReady(backend).finally(() => this.loops.delete(loop));
      this.loops.add(loop);
      return loop;
    });
    await Promise.race([Promise.all(probes), this.sleep(this.options.getValuesTimeoutMs + 500)]);
  }

  private async probeUntilReady(backend: Backend): Promise<void> {
    const o = this.options;
    while (!this.stopped) {
      try {
        const result = await probeBackend({
          address: backend.address, getValuesTimeoutMs: o.getValuesTimeoutMs, deadline: Date.now() + o.startTimeoutMs,
          isAlive: () => !this.stopped, fastcgi: o.protocol === 'fastcgi',
        });
        if (this.stopped) return;
        const s = decideSwitches(o.switches, result.values, o.protocol);
        backend.applySwitches(s);
        backend.state = 'ready';
        backend.unavailable = null;
        this.log.info({ backend: backend.id, address: backend.addressText, multithreaded: s.multithreaded, multiplexed: s.multiplexed, slots: s.slots, source: s.source },
          `upstream ${backend.id} ${backend.addressText} ready: ${s.slots} slot${s.slots === 1 ? '' : 's'}${s.multiplexed ? ', multiplexed' : ''}`);
        this.pool.serveQueue();
        return;
      } catch (err) {
        if (this.stopped) return;
        backend.unavailable = `not reachable: ${(err as Error).message}`;
        this.log.warn({ backend: backend.id, address: backend.addressText }, `upstream ${backend.addressText} not reachable: ${(err as Error).message}; trying again`);
        await this.sleep(o.retryMs ?? 1000);
      }
    }
  }

  /** Upstreams still being probed. */
  get probing(): number {
    return this.loops.size;
  }

  /** A timer stop() cancels (and resolves at once). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => { clearTimeout(timer); this.sleepers.delete(done); resolve(); };
      const timer = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  /** Ends the probing (resolves once every loop has), closes the connections. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const wake of [...this.sleepers]) wake();
    await Promise.all(this.loops);
    for (const b of this.backends) {
      b.state = 'down';
      b.transport.close(true);
    }
  }
}
