// Window figures over a real front's pool: a history of our own, ticked by hand at
// chosen times around requests the test sends, gives rates over the seconds each
// window covers and percentiles of exactly the requests inside it.
import { afterEach, describe, expect, it } from 'vitest';
import { percentilesMs } from '../src/stats/histogram.js';
import { StatsHistory } from '../src/stats/history.js';
import { PY_HELLO, request, startTestFront, type TestFront } from './helpers.js';

describe('StatsHistory', () => {
  let front: TestFront | null = null;
  afterEach(async () => { await front?.stop(); front = null; });

  it('rates and percentiles over 10 s and 1 min, from the counters of a real pool', async () => {
    front = await startTestFront({ procs: 2, 'queue-size': 1, command: ['python3', PY_HELLO] });
    const f = front;
    const h = new StatsHistory({ pools: [f.pool], acceptedConn: () => f.server.acceptedConn, frontResponses: f.stats.frontResponses });
    h.tick(1_000_000);
    for (let i = 0; i < 30; i++) expect((await request(`${f.url}/Hello/2`)).status).toBe(200);
    h.tick(1_010_000); // 10 s later
    const ten = h.pool(f.pool)!['10s'];
    expect(ten).toMatchObject({ seconds: 10, requestsPerSec: 3, responsesPerSec: { '2xx': 3, '5xx': 0 }, eagainPerSec: 0 });
    expect(h.pool(f.pool)!['1m']).toMatchObject({ seconds: 10, requestsPerSec: 3 });
    const perBackend = f.pool.backends.map((b) => h.backend(b)!['10s']);
    expect(perBackend.reduce((a, w) => a + w.requestsPerSec, 0)).toBeCloseTo(3, 5);
    // every request is inside the window: its percentiles are the lifetime ones
    f.pool.backends.forEach((b, i) => expect(perBackend[i].latencyMs).toEqual(percentilesMs(b.latency, [50, 90, 99])));

    // 10 s without a request: the 10 s window is empty, the minute still holds the 30.
    for (let t = 1; t <= 10; t++) h.tick(1_010_000 + t * 1000);
    expect(h.pool(f.pool)!['10s']).toMatchObject({ seconds: 10, requestsPerSec: 0, queueWaitMs: { p50: 0, p99: 0 } });
    expect(h.backend(f.pool.backends[0])!['10s'].latencyMs).toEqual({ p50: 0, p90: 0, p99: 0 });
    expect(h.pool(f.pool)!['1m']).toMatchObject({ seconds: 20, requestsPerSec: 1.5 });
    expect(h.sampledAt).toBe(1_020_000);

    // Front-generated responses per cause: a connection refused by the HTTP layer.
    const before = f.stats.frontResponses!.counts['bad-request'];
    const r = await request(`${f.url}/x`, { headers: { 'Content-Length': 'nope' } }).catch(() => null);
    expect(r?.status).toBe(400);
    expect(f.stats.frontResponses!.counts['bad-request']).toBe(before + 1);
    h.tick(1_021_000);
    expect(h.front()!['10s'].frontResponsesPerSec['bad-request']).toBe(0.1);
    // the per-second accept-queue series: 60 points, oldest first, the missing ones null
    const series = h.acceptQueueHistory(f.pool.backends[0]);
    expect(series).toHaveLength(60);
  });
});
