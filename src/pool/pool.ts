// The backends serving one app, with one policy and one queue. acquire() hands out
// a backend with a free slot, or queues / sheds per the overflow mode; release()
// gives the slot back and serves the head of the queue.
import type { Backend } from './backend.js';
import type { Policy } from './policies/policy.js';
import { WaitQueue, type Waiter } from './queue.js';
import { createHistogram } from '../stats/histogram.js';

/**
 * What happens when no slot is free:
 * - queue: hold the request in the front (FIFO, queue-size, queue-timeout → 503)
 * - shed: 503 at once
 * - nginx: no slot limit; connect anyway, a connection per request, EAGAIN → 502 (as nginx does)
 * - retry: no slot limit; on EAGAIN retry connect() with backoff until connect-timeout
 * In every mode, a request that finds no backend accepting at all (all restarting) waits in the queue.
 */
export const OVERFLOW_MODES = ['queue', 'shed', 'nginx', 'retry'] as const;
export type OverflowMode = typeof OVERFLOW_MODES[number];

export interface PoolOptions {
  name: string;
  policy: Policy;
  overflow: OverflowMode;
  queueSize: number;
  queueTimeoutMs: number;
  /** How long a request waits when no backend is ready and none is about to be (connect-timeout). */
  noBackendWaitMs: number;
}

export type AcquireRefusal = 'full' | 'timeout' | 'shed' | 'shutdown' | 'no-backend';

export interface Acquirer {
  /** The caller now holds a slot on `backend` and must call pool.release(backend). */
  onBackend(backend: Backend): void;
  onRefused(reason: AcquireRefusal, detail: string): void;
}

export class Pool {
  readonly backends: Backend[] = [];
  readonly queue: WaitQueue;
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Queue waits (µs). */
  readonly queueWait = createHistogram();
  accepting = true;
  /** Requests that found every slot busy (php-fpm's "max children reached"). */
  slotsExhausted = 0;
  /** Backends with a request in flight now, and the most at once. */
  activeBackends = 0;
  maxActiveBackends = 0;
  private readonly unlimited: boolean;

  constructor(readonly options: PoolOptions) {
    this.queue = new WaitQueue(options.queueSize);
    this.unlimited = options.overflow === 'nginx' || options.overflow === 'retry';
  }

  add(backend: Backend): void {
    this.backends.push(backend);
    backend.onRoom = this.serveQueue;
  }

  remove(backend: Backend): void {
    const i = this.backends.indexOf(backend);
    if (i >= 0) this.backends.splice(i, 1);
  }

  get inflight(): number {
    let n = 0;
    for (const b of this.backends) n += b.inflight;
    return n;
  }

  /** Grants at once when a slot is free and nobody waits; otherwise per the overflow mode. */
  acquire(pipelinable: boolean, acquirer: Acquirer): Waiter | null {
    if (!this.accepting) {
      acquirer.onRefused('shutdown', 'the server is shutting down');
      return null;
    }
    if (this.queue.length === 0) {
      const backend = this.options.policy.select(this.backends, pipelinable, this.unlimited);
      if (backend) {
        this.take(backend);
        acquirer.onBackend(backend);
        return null;
      }
    }
    let anyAccepting = false;
    for (let i = 0; i < this.backends.length; i++) if (this.backends[i].accepting) { anyAccepting = true; break; }
    if (anyAccepting) this.slotsExhausted++;
    if (this.options.overflow === 'shed' && anyAccepting) {
      acquirer.onRefused('shed', `all ${this.totalSlots()} slots are busy (overflow: shed)`);
      return null;
    }
    const now = Date.now();
    // No backend ready nor about to be: waiting the whole queue timeout would only delay the 503.
    const waiter = new QueuedAcquirer(this, acquirer, pipelinable, now, anyAccepting || !this.allUnavailable() ? 0 : now + this.options.noBackendWaitMs);
    this.prepareBackends();
    if (!this.queue.push(waiter)) {
      acquirer.onRefused('full', `the queue is full (${this.options.queueSize} requests waiting, queue-size)`);
      return null;
    }
    this.ensureSweep();
    return waiter;
  }

  /** Every backend is unavailable (or there is none): nothing will serve soon. */
  private allUnavailable(): boolean {
    for (const b of this.backends) if (b.accepting || b.unavailable === null) return false;
    return true;
  }

  describeUnavailable(): string {
    if (this.backends.length === 0) return 'the pool has no backends';
    return this.backends.map((b) => `${b.id} ${b.state}${b.unavailable ? ` (${b.unavailable})` : ''}`).join('; ');
  }

  /** The client left while queued. */
  cancel(waiter: Waiter): void {
    this.queue.cancel(waiter);
  }

  private take(backend: Backend): void {
    const n = ++backend.inflight;
    if (n > backend.maxInflight) backend.maxInflight = n;
    if (n === 1 && ++this.activeBackends > this.maxActiveBackends) this.maxActiveBackends = this.activeBackends;
    backend.counters.requests++;
  }

  release(backend: Backend): void {
    if (--backend.inflight === 0) {
      this.activeBackends--;
      backend.notifyIdle();
    }
    this.serveQueue();
  }

  /** A backend became ready, gained slots, or has room again. */
  readonly serveQueue = (): void => {
    for (;;) {
      const head = this.queue.peek() as QueuedAcquirer | undefined;
      if (!head) return;
      const backend = this.options.policy.select(this.backends, head.pipelinable, this.unlimited);
      if (!backend) {
        this.prepareBackends();
        return;
      }
      this.queue.shift();
      head.done = true;
      this.take(backend);
      this.queueWait.recordValue(Math.max(1, (Date.now() - head.enqueuedAt) * 1000));
      head.acquirer.onBackend(backend);
    }
  };

  /** Requests wait: let each ready backend's transport make room where it can (probe connections). */
  private prepareBackends(): void {
    for (const b of this.backends) if (b.accepting) b.transport.prepare();
  }

  totalSlots(): number {
    let n = 0;
    for (const b of this.backends) if (b.accepting) n += b.slots;
    return n;
  }

  private ensureSweep(): void {
    if (this.sweepTimer) return;
    const interval = Math.max(10, Math.min(250, Math.floor(this.options.queueTimeoutMs / 10), Math.floor(this.options.noBackendWaitMs / 5)));
    this.sweepTimer = setInterval(() => {
      if (this.queue.length === 0) {
        clearInterval(this.sweepTimer!);
        this.sweepTimer = null;
        return;
      }
      const now = Date.now();
      for (const w of this.queue.expire(now - this.options.queueTimeoutMs)) w.reject('timeout');
      if (!this.backends.some((b) => b.accepting) && this.allUnavailable()) {
        for (const w of this.queue.expireWhere((q) => (q as QueuedAcquirer).failFastAt !== 0 ? (q as QueuedAcquirer).failFastAt <= now : (q.enqueuedAt + this.options.noBackendWaitMs <= now))) w.reject('no-backend');
      }
    }, interval);
    this.sweepTimer.unref();
  }

  /** Stop taking new requests; queued ones still get served (they are in flight for their clients). */
  close(): void {
    this.accepting = false;
  }

  /** Grace is over: whatever still waits gets 503. */
  rejectQueued(): void {
    for (const w of this.queue.drainAll()) w.reject('shutdown');
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }
}

/** A request waiting in the front queue (one object, no closure per request). */
class QueuedAcquirer implements Waiter {
  done = false;

  constructor(private readonly pool: Pool, readonly acquirer: Acquirer, readonly pipelinable: boolean, readonly enqueuedAt: number,
    /** When to give up if still no backend is ready (0: it was queued while some backend was coming). */
    readonly failFastAt: number) {}

  reject(reason: 'timeout' | 'full' | 'shutdown' | 'no-backend'): void {
    const o = this.pool.options;
    this.acquirer.onRefused(reason, reason === 'timeout' ? `waited ${o.queueTimeoutMs} ms in the queue for a free slot (queue-timeout)`
      : reason === 'no-backend' ? `no backend ready: ${this.pool.describeUnavailable()}`
      : 'the server is shutting down');
  }
}
