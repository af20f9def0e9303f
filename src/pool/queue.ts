// The front-side FIFO: requests wait here, not in a backend's accept queue, when
// no slot is free. Array with a moving head: O(1) push/shift without reallocation churn.

export interface Waiter {
  pipelinable: boolean;
  enqueuedAt: number;
  /** Set when the waiter left the queue (granted, timed out, or the client went away). */
  done: boolean;
  reject(reason: 'timeout' | 'full' | 'shutdown' | 'no-backend'): void;
}

export class WaitQueue {
  private items: Array<Waiter | undefined> = [];
  private head = 0;
  private live = 0;
  max = 0;
  timeouts = 0;
  full = 0;

  constructor(public capacity: number) {}

  get length(): number {
    return this.live;
  }

  push(waiter: Waiter): boolean {
    if (this.live >= this.capacity) {
      this.full++;
      return false;
    }
    this.items.push(waiter);
    this.live++;
    if (this.live > this.max) this.max = this.live;
    return true;
  }

  /** The oldest waiter still waiting, without removing it. */
  peek(): Waiter | undefined {
    while (this.head < this.items.length) {
      const w = this.items[this.head];
      if (w && !w.done) return w;
      this.items[this.head++] = undefined;
    }
    this.compact();
    return undefined;
  }

  shift(): Waiter | undefined {
    const w = this.peek();
    if (w) {
      this.items[this.head++] = undefined;
      this.live--;
      this.compact();
    }
    return w;
  }

  /** A waiter that left by itself (client closed): it is skipped later. */
  cancel(waiter: Waiter): void {
    if (waiter.done) return;
    waiter.done = true;
    this.live--;
  }

  /** Removes and returns the waiters enqueued before `deadline`. */
  expire(deadline: number): Waiter[] {
    const expired: Waiter[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const w = this.items[i];
      if (!w || w.done) continue;
      if (w.enqueuedAt > deadline) break; // FIFO: the rest are younger
      w.done = true;
      this.items[i] = undefined;
      this.live--;
      this.timeouts++;
      expired.push(w);
    }
    return expired;
  }

  /** Removes and returns the waiters for which `pred` holds (not counted as timeouts). */
  expireWhere(pred: (w: Waiter) => boolean): Waiter[] {
    const out: Waiter[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const w = this.items[i];
      if (!w || w.done || !pred(w)) continue;
      w.done = true;
      this.items[i] = undefined;
      this.live--;
      out.push(w);
    }
    return out;
  }

  drainAll(): Waiter[] {
    const all: Waiter[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const w = this.items[i];
      if (w && !w.done) { w.done = true; all.push(w); }
    }
    this.items = [];
    this.head = 0;
    this.live = 0;
    return all;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
