// The backends serving one app, with one policy and one queue. acquire() hands out
// a backend with a free slot, or queues / sheds per the overflow mode; release()
// gives the slot back and serves the head of the queue.
import type { Backend } from './backend.js';
import type { Policy } from './policies/policy.js';
import { WaitQueue, type Waiter } from './queue.js';

export type OverflowMode = 'queue' | 'shed';
export const OVERFLOW_MODES: readonly OverflowMode[] = ['queue', 'shed'];

export interface PoolOptions {
  name: string;
  policy: Policy;
  overflow: OverflowMode;
  queueSize: number;
  queueTimeoutMs: number;
}

export type AcquireRefusal = 'full' | 'timeout' | 'shed' | 'shutdown';

export interface Acquirer {
  /** The caller now holds a slot on `backend` and must call pool.release(backend). */
  onBackend(backend: Backend): void;
  onRefused(reason: AcquireRefusal, detail: string): void;
}

export class Pool {
  readonly backends: Backend[] = [];
  readonly queue: WaitQueue;
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Queue wait samples (ms) since the last stats read, for p50/p99. */
  waitSamples: number[] = [];
  accepting = true;

  constructor(readonly options: PoolOptions) {
    this.queue = new WaitQueue(options.queueSize);
  }

  add(backend: Backend): void {
    this.backends.push(backend);
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
      const backend = this.options.policy.select(this.backends, pipelinable);
      if (backend) {
        this.take(backend);
        acquirer.onBackend(backend);
        return null;
      }
    }
    if (this.options.overflow === 'shed') {
      acquirer.onRefused('shed', `all ${this.totalSlots()} slots are busy (overflow: shed)`);
      return null;
    }
    const waiter: QueuedAcquirer = {
      pipelinable,
      enqueuedAt: Date.now(),
      done: false,
      grant: () => {},
      reject: (reason) => acquirer.onRefused(reason, reason === 'timeout'
        ? `waited ${this.options.queueTimeoutMs} ms in the queue for a free slot (queue-timeout)`
        : 'the server is shutting down'),
      acquirer,
    };
    if (!this.queue.push(waiter)) {
      acquirer.onRefused('full', `the queue is full (${this.options.queueSize} requests waiting, queue-size)`);
      return null;
    }
    this.ensureSweep();
    return waiter;
  }

  /** The client left while queued. */
  cancel(waiter: Waiter): void {
    this.queue.cancel(waiter);
  }

  private take(backend: Backend): void {
    const n = ++backend.inflight;
    if (n > backend.maxInflight) backend.maxInflight = n;
    backend.counters.requests++;
  }

  release(backend: Backend): void {
    backend.inflight--;
    this.serveQueue();
  }

  /** A backend became ready or gained slots. */
  serveQueue(): void {
    for (;;) {
      const head = this.queue.peek() as QueuedAcquirer | undefined;
      if (!head) return;
      const backend = this.options.policy.select(this.backends, head.pipelinable);
      if (!backend) return;
      this.queue.shift();
      head.done = true;
      this.take(backend);
      if (this.waitSamples.length < 100_000) this.waitSamples.push(Date.now() - head.enqueuedAt);
      head.acquirer.onBackend(backend);
    }
  }

  totalSlots(): number {
    let n = 0;
    for (const b of this.backends) if (b.accepting) n += b.switches.slots;
    return n;
  }

  private ensureSweep(): void {
    if (this.sweepTimer) return;
    const interval = Math.max(10, Math.min(250, Math.floor(this.options.queueTimeoutMs / 10)));
    this.sweepTimer = setInterval(() => {
      if (this.queue.length === 0) {
        clearInterval(this.sweepTimer!);
        this.sweepTimer = null;
        return;
      }
      for (const w of this.queue.expire(Date.now() - this.options.queueTimeoutMs)) w.reject('timeout');
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

interface QueuedAcquirer extends Waiter {
  acquirer: Acquirer;
}
