// Slots, policies, the front queue and the overflow modes, against real slow
// backends (the Python example's /sleep/MS route).
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { PY_HELLO, getStats, request, startTestFront, waitUntil, type TestFront } from './helpers.js';

let front: TestFront | null = null;
afterEach(async () => { await front?.stop(); front = null; });

const py = (...args: string[]) => ['python3', PY_HELLO, ...args];

async function pidOf(f: TestFront, path = '/pid'): Promise<number> {
  const r = await request(`${f.url}${path}`);
  expect(r.status).toBe(200);
  return Number(r.body.toString().trim());
}

describe('policies', () => {
  for (const policy of ['least-conn', 'random-two']) {
    it(`${policy}: a request goes to the backend with fewer in flight`, async () => {
      front = await startTestFront({ procs: 2, policy, command: py('--multithreaded', 'true', '--max-threads', '4') });
      const f = front;
      for (let k = 0; k < 5; k++) {
        const slow = request(`${f.url}/sleep/300`);
        await waitUntil(() => f.pool.inflight === 1, 'the slow request is in flight');
        const busy = f.pool.backends.find((b) => b.inflight === 1)!;
        expect(await pidOf(f)).not.toBe(busy.pid);
        expect((await slow).status).toBe(200);
      }
    });
  }

  it('round-robin: backends in turn', async () => {
    front = await startTestFront({ procs: 3, policy: 'round-robin', command: py() });
    const pids = [];
    for (let i = 0; i < 6; i++) pids.push(await pidOf(front));
    expect(new Set(pids.slice(0, 3)).size).toBe(3);
    expect(pids.slice(3)).toEqual(pids.slice(0, 3));
  });

  it('a single-threaded backend of slow requests never has more than one request plus one pipelined', async () => {
    front = await startTestFront({ procs: 2, command: py() });
    await Promise.all(Array.from({ length: 40 }, () => request(`${front!.url}/sleep/5`)));
    const stats = await getStats(front);
    for (const b of stats.pools[0].backends) {
      expect(b.slots).toBe(1);
      expect(b.maxInflight).toBeLessThanOrEqual(2);
      expect(b.connectionsOpened).toBe(1); // one kept-alive connection, reused
    }
    expect(stats.pools[0].queue.max).toBeGreaterThan(0);
  });

  it('a single-threaded backend of fast requests gets up to 2 ms of its pace pipelined, within --pipeline-depth', async () => {
    front = await startTestFront({ procs: 1, 'pipeline-depth': 6, command: py() });
    const keep = new http.Agent({ keepAlive: true, maxSockets: 48 });
    try {
      // 48 clients in a loop until 3,000 answers: the pace (ms per request, over 100 ms windows) is learned
      // in the first few hundred, the rest are written as deep as it allows.
      let left = 3000;
      const statuses = new Map<number, number>();
      await Promise.all(Array.from({ length: 48 }, async () => {
        while (left-- > 0) {
          const r = await request(`${front!.url}/Hello/1`, { agent: keep });
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        }
      }));
      expect([...statuses]).toEqual([[200, 3000]]);
    } finally {
      keep.destroy();
    }
    const b = (await getStats(front)).pools[0].backends[0];
    expect(b.slots).toBe(1);
    expect(b.connectionsOpened).toBe(1);
    expect(b.maxInflight).toBeGreaterThan(2); // deeper than the slow app's 2 above
    expect(b.maxInflight).toBeLessThanOrEqual(6); // never beyond --pipeline-depth
  });
});

describe('the front queue', () => {
  it('serves waiting requests in arrival order (FIFO)', async () => {
    front = await startTestFront({ procs: 1, 'pipeline-depth': 1, command: py() });
    const f = front;
    const done: number[] = [];
    const first = request(`${f.url}/sleep/200`);
    await waitUntil(() => f.pool.inflight === 1, 'the first request holds the slot');
    const waiting: Promise<unknown>[] = [];
    for (let i = 0; i < 6; i++) {
      waiting.push(request(`${f.url}/Hello/1?n=${i}`).then(() => done.push(i)));
      await waitUntil(() => f.pool.queue.length === i + 1, `request ${i} is queued`);
    }
    await Promise.all([first, ...waiting]);
    expect(done).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('waited too long → 503 with Retry-After, naming queue-timeout', async () => {
    front = await startTestFront({ procs: 1, 'pipeline-depth': 1, 'queue-timeout': 200, command: py() });
    const f = front;
    const slow = request(`${f.url}/sleep/1500`);
    await waitUntil(() => f.pool.inflight === 1, 'the slow request holds the slot');
    const started = Date.now();
    const r = await request(`${f.url}/Hello/1`);
    expect(r.status).toBe(503);
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
    expect(r.headers['retry-after']).toBe('1');
    expect(r.body.toString()).toMatch(/queue-timeout/);
    expect((await getStats(f)).pools[0].queue.timeouts).toBe(1);
    expect((await slow).status).toBe(200);
  });

  it('a full queue → 503 at once, naming queue-size', async () => {
    front = await startTestFront({ procs: 1, 'pipeline-depth': 1, 'queue-size': 1, command: py() });
    const f = front;
    const slow = request(`${f.url}/sleep/500`);
    await waitUntil(() => f.pool.inflight === 1, 'the slow request holds the slot');
    const queued = request(`${f.url}/Hello/1`);
    await waitUntil(() => f.pool.queue.length === 1, 'one request waits');
    const r = await request(`${f.url}/Hello/2`);
    expect(r.status).toBe(503);
    expect(r.body.toString()).toMatch(/queue is full.*queue-size/);
    expect(r.headers['retry-after']).toBeDefined();
    expect((await queued).status).toBe(200);
    expect((await slow).status).toBe(200);
    expect((await getStats(f)).pools[0].queue.full).toBe(1);
  });

  it('by default the queue holds the requests of thousands of connections: 1,100 waiting at once, every one answered 200', async () => {
    front = await startTestFront({ procs: 1, 'pipeline-depth': 1, command: py() });
    const f = front;
    const app = f.pool.backends[0].pid!;
    process.kill(app, 'SIGSTOP'); // the app holds its one slot until every request is queued
    const many = new http.Agent({ keepAlive: false, maxSockets: Infinity });
    try {
      const first = request(`${f.url}/Hello/1`, { agent: many });
      await waitUntil(() => f.pool.inflight === 1, 'the first request holds the slot');
      const waiting = Array.from({ length: 1100 }, (_, i) => request(`${f.url}/Hello/${1 + (i % 3)}`, { agent: many }));
      await waitUntil(() => f.pool.queue.length + f.pool.queue.full === 1100, '1,100 requests wait in the front queue or were refused', 20_000);
      process.kill(app, 'SIGCONT');
      const replies = await Promise.all([first, ...waiting]);
      expect(replies.filter((r) => r.status !== 200).map((r) => r.status)).toEqual([]);
      expect(replies[1100].body.toString()).toContain('line 2<');
    } finally {
      process.kill(app, 'SIGCONT');
      many.destroy();
    }
    const { queue } = (await getStats(f)).pools[0];
    expect(queue).toMatchObject({ full: 0, timeouts: 0 });
    expect(queue.max).toBeGreaterThanOrEqual(1100);
  });

  it('overflow shed: 503 at once when every slot is busy', async () => {
    front = await startTestFront({ procs: 1, 'pipeline-depth': 1, overflow: 'shed', command: py() });
    const f = front;
    let slowDone = false;
    const slow = request(`${f.url}/sleep/400`).then((x) => { slowDone = true; return x; });
    await waitUntil(() => f.pool.inflight === 1, 'the slow request holds the slot');
    const r = await request(`${f.url}/Hello/1`);
    expect(r.status).toBe(503);
    expect(slowDone, 'the 503 came while the slot was still taken, not after a wait').toBe(false);
    expect(r.body.toString()).toMatch(/shed/);
    expect((await slow).status).toBe(200);
  });
});

/** 200 concurrent requests, each on its own connection; resolves with the statuses. */
function burst(url: string, n: number): Promise<number[]> {
  return Promise.all(Array.from({ length: n }, () => new Promise<number>((resolve) => {
    http.get(url, { agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); })
      .on('error', () => resolve(-1));
  })));
}

describe('EAGAIN, as behind nginx, and without it', () => {
  it('overflow nginx + backlog 4 + 200 concurrent: 502s, EAGAIN counted, nginx\'s log line, accept queue at backlog+1', async () => {
    // retries 0 and a 20 ms route: the single-threaded app cannot drain a 4-deep queue under a 200-wide burst.
    front = await startTestFront({ procs: 1, backlog: 4, overflow: 'nginx', retries: 0, 'sample-interval': 5, command: py() });
    const statuses = await burst(`${front.url}/sleep/20`, 200);
    const b = (await getStats(front)).pools[0].backends[0];
    const counts = statuses.reduce<Record<number, number>>((a, s) => ({ ...a, [s]: (a[s] ?? 0) + 1 }), {});
    expect(counts[502], JSON.stringify(counts)).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200 || s === 502), JSON.stringify(counts)).toBe(true);
    expect(b.connectErrors.EAGAIN).toBeGreaterThan(0);
    expect(b.acceptQueue).toMatchObject({ backlog: 4 });
    expect(b.acceptQueue.max).toBe(5);
    const line = await front.log.waitFor((l) => l.level === 50 && /^connect\(\) to unix:\S+b0\.sock failed \(11: Resource temporarily unavailable\) while connecting to upstream/.test(l.msg), 'nginx\'s EAGAIN line');
    expect(line.code).toBe('EAGAIN');
  });

  it('the same load with overflow queue: zero non-2xx, no EAGAIN', async () => {
    front = await startTestFront({ procs: 1, backlog: 4, overflow: 'queue', 'sample-interval': 5, command: py() });
    const statuses = await burst(`${front.url}/Hello/100`, 200);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const b = (await getStats(front)).pools[0].backends[0];
    expect(b.connectErrors).toEqual({});
    expect(b.acceptQueue.max).toBeLessThanOrEqual(1);
  });

  it('overflow retry: EAGAIN is retried until it connects, zero non-2xx', async () => {
    // A 20 ms route: the single-threaded app cannot drain a 4-deep queue under a 100-wide burst.
    front = await startTestFront({ procs: 1, backlog: 4, overflow: 'retry', 'connect-timeout': 30_000, command: py() });
    const statuses = await burst(`${front.url}/sleep/20`, 100);
    expect(statuses.filter((s) => s !== 200), JSON.stringify(front.log.lines.filter((l) => l.level >= 50).slice(-3))).toEqual([]);
    expect((await getStats(front)).pools[0].backends[0].connectErrors.EAGAIN).toBeGreaterThan(0);
  });
});

describe('a backend killed under load', () => {
  it('SIGKILL: no request hangs, unsent ones go elsewhere, the restart shows in stats', async () => {
    front = await startTestFront({ procs: 2, command: py() });
    const f = front;
    const victim = f.pool.backends[0];
    const victimPid = victim.pid!;
    let sent = 0;
    const statuses: number[] = [];
    const worker = async () => {
      while (sent < 400) {
        sent++;
        statuses.push((await request(`${f.url}/sleep/5`)).status);
        if (sent === 100) process.kill(victimPid, 'SIGKILL');
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
    expect(statuses).toHaveLength(400);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    await f.log.waitFor((l) => /backend b0 \(pid \d+\) was killed by SIGKILL/.test(l.msg), 'about the kill');
    await waitUntil(() => victim.state === 'ready' && victim.pid !== victimPid, 'b0 is back with a new process', 20_000)
      .catch((err) => { throw new Error(`${err.message}; state ${victim.state}; log:\n${f.log.lines.filter((l) => l.backend === 'b0' || l.level >= 40).slice(-12).map((l) => JSON.stringify(l)).join('\n')}`); });
    const b0 = (await getStats(f)).pools[0].backends[0];
    expect(b0.restarts).toBe(1);
    expect((await request(`${f.url}/Hello/1`)).status).toBe(200);
  });
});

describe('Server-Timing', () => {
  it('is added when asked for', async () => {
    front = await startTestFront({ procs: 1, 'server-timing': true, command: py() });
    const r = await request(`${front.url}/Hello/1`);
    expect(r.headers['server-timing']).toMatch(/^queue;dur=[\d.]+, connect;dur=[\d.]+, backend;dur=[\d.]+$/);
  });
});
