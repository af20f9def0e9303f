// The pool's pure logic, table-tested as Caddy's selectionpolicies_test.go does: a
// pool of backends whose transport is a stub that says whether it has room (selection
// never touches a socket), and each choice checked. Real sockets are elsewhere.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Backend, type BackendState } from '../src/pool/backend.js';
import { LeastConn } from '../src/pool/policies/leastConn.js';
import type { Policy } from '../src/pool/policies/policy.js';
import { RandomTwo } from '../src/pool/policies/randomTwo.js';
import { RoundRobin } from '../src/pool/policies/roundRobin.js';
import { Pool, type AcquireRefusal, type OverflowMode } from '../src/pool/pool.js';
import { WaitQueue, type Waiter } from '../src/pool/queue.js';
import type { Transport } from '../src/transport.js';

interface Fake { id: string; slots?: number; inflight?: number; state?: BackendState; room?: boolean; unavailable?: string }

/** A backend whose transport has room when `room` says so (default: while inflight < slots). */
function backend(f: Fake, index: number): Backend {
  let b: Backend | null = null;
  const transport: Transport = {
    protocol: 'fastcgi', needsBodyLength: true,
    canTake: () => f.room ?? (b!.inflight < b!.slots),
    prepare: () => {}, dispatch: () => true, suspend: () => {}, resume: () => {}, close: () => {},
    figures: { connectionsOpened: 0, openConnections: 0 },
  };
  b = new Backend(f.id, { path: `/nowhere/${f.id}.sock` }, { multithreaded: (f.slots ?? 1) > 1, multiplexed: false, slots: f.slots ?? 1, source: 'test', answersGetValues: false },
    { keepConn: true, pipelineDepth: 1 }, index, () => transport);
  b.state = f.state ?? 'ready';
  b.inflight = f.inflight ?? 0;
  b.unavailable = f.unavailable ?? null;
  return b;
}

const fleet = (fakes: Fake[]) => fakes.map(backend);

afterEach(() => { vi.restoreAllMocks(); });

describe('policies', () => {
  const cases: Array<{ name: string; policy: () => Policy; backends: Fake[]; unlimited?: boolean; expect: string | null }> = [
    { name: 'least-conn: the lowest load relative to slots', policy: () => new LeastConn(),
      backends: [{ id: 'a', slots: 4, inflight: 3 }, { id: 'b', slots: 1, inflight: 0 }, { id: 'c', slots: 8, inflight: 4 }], expect: 'b' },
    { name: 'least-conn: load is per slot, not absolute', policy: () => new LeastConn(),
      backends: [{ id: 'a', slots: 2, inflight: 1 }, { id: 'b', slots: 8, inflight: 2 }], expect: 'b' },
    { name: 'least-conn: a backend without room is skipped even when least loaded', policy: () => new LeastConn(),
      backends: [{ id: 'a', slots: 4, inflight: 0, room: false }, { id: 'b', slots: 4, inflight: 3 }], expect: 'b' },
    { name: 'least-conn: not ready is never chosen', policy: () => new LeastConn(),
      backends: [{ id: 'a', state: 'restarting' }, { id: 'b', state: 'draining' }, { id: 'c', inflight: 0 }], expect: 'c' },
    { name: 'least-conn: all full → none', policy: () => new LeastConn(),
      backends: [{ id: 'a', inflight: 1 }, { id: 'b', inflight: 1 }], expect: null },
    { name: 'least-conn, unlimited (nginx, retry): full ones too, least loaded first', policy: () => new LeastConn(),
      backends: [{ id: 'a', inflight: 3 }, { id: 'b', inflight: 2 }, { id: 'c', state: 'down' }], unlimited: true, expect: 'b' },
    { name: 'round-robin: the first eligible in turn', policy: () => new RoundRobin(),
      backends: [{ id: 'a', inflight: 1 }, { id: 'b' }, { id: 'c' }], expect: 'b' },
    { name: 'round-robin: none eligible → none', policy: () => new RoundRobin(),
      backends: [{ id: 'a', state: 'starting' }, { id: 'b', inflight: 1 }], expect: null },
    { name: 'random-two: the only eligible one', policy: () => new RandomTwo(),
      backends: [{ id: 'a', inflight: 1 }, { id: 'b' }, { id: 'c', state: 'down' }], expect: 'b' },
    { name: 'random-two: of two, the less loaded', policy: () => new RandomTwo(),
      backends: [{ id: 'a', slots: 4, inflight: 3 }, { id: 'b', slots: 4, inflight: 1 }], expect: 'b' },
    { name: 'random-two: none eligible → none', policy: () => new RandomTwo(),
      backends: [{ id: 'a', room: false }], expect: null },
  ];
  for (const c of cases) {
    it(c.name, () => {
      // Twenty draws (random-two and least-conn's ties are random), each from a fresh policy (round-robin remembers).
      for (let i = 0; i < 20; i++) expect(c.policy().select(fleet(c.backends), false, c.unlimited ?? false)?.id ?? null).toBe(c.expect);
    });
  }

  it('round-robin goes round, skipping the ineligible', () => {
    const rr = new RoundRobin();
    const bs = fleet([{ id: 'a', slots: 9 }, { id: 'b', slots: 9, state: 'restarting' }, { id: 'c', slots: 9 }, { id: 'd', slots: 9 }]);
    expect(Array.from({ length: 6 }, () => rr.select(bs, false, false)!.id)).toEqual(['a', 'c', 'd', 'a', 'c', 'd']);
  });

  it('least-conn breaks ties at random: each tied backend is chosen', () => {
    const lc = new LeastConn();
    const bs = fleet([{ id: 'a', slots: 2, inflight: 1 }, { id: 'b', slots: 4, inflight: 2 }, { id: 'c', slots: 4, inflight: 3 }]);
    const seen = new Set<string>();
    const draws = [0.1, 0.9, 0.3, 0.7];
    let k = 0;
    vi.spyOn(Math, 'random').mockImplementation(() => draws[k++ % draws.length]);
    for (let i = 0; i < 8; i++) seen.add(lc.select(bs, false, false)!.id);
    expect([...seen].sort()).toEqual(['a', 'b']);
  });

  it('random-two draws two distinct candidates', () => {
    const r2 = new RandomTwo();
    const bs = fleet([{ id: 'a', slots: 4, inflight: 2 }, { id: 'b', slots: 4, inflight: 0 }, { id: 'c', slots: 4, inflight: 1 }]);
    // Both draws land on index 0: the second must be moved to another candidate, not compare a with itself.
    vi.spyOn(Math, 'random').mockReturnValue(0);
    expect(r2.select(bs, false, false)!.id).toBe('b');
  });
});

/** Records what the pool tells one request. */
function acquirer() {
  const events: Array<{ granted?: string; refused?: AcquireRefusal; detail?: string }> = [];
  let resolveNext: (() => void) | null = null;
  return {
    events,
    onBackend(b: Backend) { events.push({ granted: b.id }); resolveNext?.(); },
    onRefused(reason: AcquireRefusal, detail: string) { events.push({ refused: reason, detail }); resolveNext?.(); },
    /** Resolves on the next event (or at once when one came already). */
    next(): Promise<void> { return events.length ? Promise.resolve() : new Promise((r) => { resolveNext = r; }); },
  };
}

function pool(fakes: Fake[], overflow: OverflowMode = 'queue', opts: { queueSize?: number; queueTimeoutMs?: number; noBackendWaitMs?: number } = {}) {
  const p = new Pool({ name: 'test', policy: new LeastConn(), overflow, queueSize: opts.queueSize ?? 4, queueTimeoutMs: opts.queueTimeoutMs ?? 10_000, noBackendWaitMs: opts.noBackendWaitMs ?? 1000 });
  fakes.forEach((f, i) => p.add(backend(f, i)));
  return p;
}

describe('pool: slots, queue and overflow', () => {
  it('grants a free slot at once and counts it', () => {
    const p = pool([{ id: 'a', slots: 2 }]);
    const r = acquirer();
    expect(p.acquire(false, r)).toBeNull();
    expect(r.events).toEqual([{ granted: 'a' }]);
    const a = p.backends[0];
    expect({ inflight: a.inflight, requests: a.counters.requests, active: p.activeBackends }).toEqual({ inflight: 1, requests: 1, active: 1 });
    p.release(a);
    expect({ inflight: a.inflight, active: p.activeBackends, maxActive: p.maxActiveBackends, maxInflight: a.maxInflight }).toEqual({ inflight: 0, active: 0, maxActive: 1, maxInflight: 1 });
  });

  it('queue: no slot free → FIFO; each release grants the head; whenIdle after the last', async () => {
    const p = pool([{ id: 'a', slots: 1 }]);
    const first = acquirer();
    p.acquire(false, first);
    const waiting = [acquirer(), acquirer(), acquirer()];
    for (const w of waiting) expect(p.acquire(false, w)).not.toBeNull();
    expect(p.queue.length).toBe(3);
    expect(p.slotsExhausted).toBe(3);
    const a = p.backends[0];
    const idle = a.whenIdle();
    let idleNow = false;
    void idle.then(() => { idleNow = true; });
    for (let i = 0; i < 3; i++) {
      p.release(a);
      expect(waiting.map((w) => w.events.length)).toEqual(waiting.map((_, k) => (k <= i ? 1 : 0)));
    }
    expect(p.queue.max).toBe(3);
    p.release(a);
    await idle;
    expect(idleNow).toBe(true);
    expect(p.queueWait.totalCount).toBe(3);
  });

  it('queue full → "full", naming queue-size', () => {
    const p = pool([{ id: 'a', slots: 1, inflight: 1 }], 'queue', { queueSize: 1 });
    p.acquire(false, acquirer());
    const r = acquirer();
    expect(p.acquire(false, r)).toBeNull();
    expect(r.events).toEqual([{ refused: 'full', detail: 'the queue is full (1 requests waiting, queue-size)' }]);
    expect(p.queue.full).toBe(1);
  });

  it('shed → 503 at once, naming the slots', () => {
    const p = pool([{ id: 'a', slots: 2, inflight: 2 }, { id: 'b', slots: 1, inflight: 1 }], 'shed');
    const r = acquirer();
    expect(p.acquire(false, r)).toBeNull();
    expect(r.events).toEqual([{ refused: 'shed', detail: 'all 3 slots are busy (overflow: shed)' }]);
  });

  it('nginx / retry: no slot limit, the least loaded accepting backend', () => {
    for (const mode of ['nginx', 'retry'] as const) {
      const p = pool([{ id: 'a', slots: 1, inflight: 3 }, { id: 'b', slots: 1, inflight: 1 }, { id: 'c', state: 'starting' }], mode);
      const r = acquirer();
      p.acquire(false, r);
      expect(r.events).toEqual([{ granted: 'b' }]);
    }
  });

  it('a client that leaves while queued is never granted', () => {
    const p = pool([{ id: 'a', slots: 1, inflight: 1 }]);
    const gone = acquirer();
    const stays = acquirer();
    const w = p.acquire(false, gone) as Waiter;
    p.acquire(false, stays);
    p.cancel(w);
    expect(p.queue.length).toBe(1);
    p.release(p.backends[0]);
    expect(gone.events).toEqual([]);
    expect(stays.events).toEqual([{ granted: 'a' }]);
  });

  it('closed → "shutdown"; rejectQueued empties the queue', () => {
    const p = pool([{ id: 'a', slots: 1, inflight: 1 }]);
    const queued = acquirer();
    p.acquire(false, queued);
    p.close();
    const late = acquirer();
    p.acquire(false, late);
    expect(late.events).toEqual([{ refused: 'shutdown', detail: 'the server is shutting down' }]);
    p.rejectQueued();
    expect(queued.events).toEqual([{ refused: 'shutdown', detail: 'the server is shutting down' }]);
  });

  it('queue-timeout → "timeout", counted', async () => {
    const p = pool([{ id: 'a', slots: 1, inflight: 1 }], 'queue', { queueTimeoutMs: 30 });
    const r = acquirer();
    p.acquire(false, r);
    await r.next();
    expect(r.events).toEqual([{ refused: 'timeout', detail: 'waited 30 ms in the queue for a free slot (queue-timeout)' }]);
    expect(p.queue.timeouts).toBe(1);
  });

  it('no backend ready and none about to be: "no-backend" after noBackendWaitMs, with every reason', async () => {
    const p = pool([{ id: 'a', state: 'restarting', unavailable: 'exited with code 1, 3 time(s) in a row' }, { id: 'b', state: 'down', unavailable: 'not reachable' }],
      'queue', { noBackendWaitMs: 20 });
    const r = acquirer();
    p.acquire(false, r);
    await r.next();
    expect(r.events).toEqual([{ refused: 'no-backend', detail: 'no backend ready: a restarting (exited with code 1, 3 time(s) in a row); b down (not reachable)' }]);
  });

  it('a backend that is merely restarting is waited for, and serves the queue once ready', () => {
    const p = pool([{ id: 'a', state: 'restarting' }], 'shed');
    const r = acquirer();
    expect(p.acquire(false, r)).not.toBeNull(); // not shed: nothing is accepting, so it waits
    p.backends[0].state = 'ready';
    p.serveQueue();
    expect(r.events).toEqual([{ granted: 'a' }]);
  });
});

describe('WaitQueue', () => {
  const waiter = (enqueuedAt: number): Waiter & { rejected: string[] } => {
    const rejected: string[] = [];
    return { pipelinable: false, enqueuedAt, done: false, rejected, reject: (r) => { rejected.push(r); } };
  };

  it('FIFO with a capacity; cancelled waiters are skipped and not counted', () => {
    const q = new WaitQueue(3);
    const [a, b, c, d] = [waiter(1), waiter(2), waiter(3), waiter(4)];
    expect([q.push(a), q.push(b), q.push(c), q.push(d)]).toEqual([true, true, true, false]);
    expect({ length: q.length, max: q.max, full: q.full }).toEqual({ length: 3, max: 3, full: 1 });
    q.cancel(a);
    q.cancel(a); // twice: counted once
    expect(q.length).toBe(2);
    expect(q.peek()).toBe(b);
    expect(q.shift()).toBe(b);
    expect(q.shift()).toBe(c);
    expect(q.shift()).toBeUndefined();
    expect(q.length).toBe(0);
  });

  it('expire takes the waiters enqueued up to a deadline, oldest first; expireWhere any', () => {
    const q = new WaitQueue(10);
    const ws = [waiter(10), waiter(20), waiter(30), waiter(40)];
    for (const w of ws) q.push(w);
    expect(q.expire(25)).toEqual([ws[0], ws[1]]);
    expect(q.timeouts).toBe(2);
    expect(q.expireWhere((w) => w.enqueuedAt === 40)).toEqual([ws[3]]);
    expect(q.timeouts).toBe(2);
    expect(q.drainAll()).toEqual([ws[2]]);
    expect(q.length).toBe(0);
  });

  it('stays correct past its compaction point', () => {
    const q = new WaitQueue(100_000);
    for (let i = 0; i < 5000; i++) q.push(waiter(i));
    for (let i = 0; i < 4000; i++) expect(q.shift()!.enqueuedAt).toBe(i);
    expect(q.length).toBe(1000);
    expect(q.peek()!.enqueuedAt).toBe(4000);
  });
});
