// Capacity is measured, not believed: backends whose FCGI_GET_VALUES overstates what
// they serve (test/fixtures/capacity-backend.py), under 200 concurrent clients with
// default flags. Learned slots must converge to what they really serve, and no request may
// wait behind a kept connection in a kernel accept queue (throughput against the right
// manual switches is compared in bench/, bench/dishonest.sh).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FIXTURES, getStats, maxAcceptQueued, peer, request, startTestFront, waitUntil, type TestFront } from './helpers.js';

const BACKEND = path.join(FIXTURES, 'capacity-backend.py');
const wrk = peer('wrk');

let front: TestFront | null = null;
afterEach(async () => { await front?.stop(); front = null; });

interface Load { requests: number; rps: number; maxMs: number; timeouts: number; errors: number; non2xx: number }

/** wrk -c200 for `seconds`, its timeout (2 s) counted as a failure, latency max in ms. */
function load(url: string, seconds: number, timeoutSec = 2): Promise<Load> {
  return new Promise((resolve, reject) => {
    const p = spawn(wrk!, ['-t2', '-c200', `-d${seconds}s`, '--timeout', `${timeoutSec}s`, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c) => { out += c; });
    p.on('error', reject);
    p.on('exit', () => {
      const ms = (t: string) => { const m = /^([\d.]+)(us|ms|s)$/.exec(t); return m ? Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1) : NaN; };
      const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      resolve({
        requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0),
        rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
        maxMs: ms(/Latency\s+\S+\s+\S+\s+(\S+)/.exec(out)?.[1] ?? ''),
        timeouts: errs ? Number(errs[4]) : 0,
        errors: errs ? Number(errs[1]) + Number(errs[2]) + Number(errs[3]) : 0,
        non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
      });
    });
  });
}

async function run(mode: string, flags: Record<string, unknown>, learns = false, timeoutSec = 2): Promise<{ load: Load; backends: any[]; maxQueued: number }> {
  front = await startTestFront({ procs: 2, 'log-level': 'warn', command: ['python3', BACKEND, ...mode.split(' ')], ...flags });
  expect((await request(`${front.url}/Hello/1`)).status).toBe(200);
  // A warm-up first: the slots are learned from it (a probe the app accepted but never answers
  // counts after PROBE_ACCEPTED_MS, 5 s); the measured run compares steady states.
  const warm = await load(`${front.url}/Hello/100`, 1, timeoutSec);
  const f0 = front;
  if (learns) await waitUntil(() => f0.pool.backends.every((b) => b.caps.slotsLearned !== null), 'the slots are learned', 10_000);
  const measured = load(`${front.url}/Hello/100`, 4, timeoutSec);
  const queued = await maxAcceptQueued(front.pool.backends.map((b) => (b.address as { path: string }).path), measured);
  const result = await measured;
  result.maxMs = Math.max(result.maxMs, warm.maxMs);
  result.timeouts += warm.timeouts;
  result.errors += warm.errors;
  result.non2xx += warm.non2xx;
  const f = front;
  // wrk closes its connections at the end: the requests it left are aborted and end shortly.
  await waitUntil(() => f.pool.inflight === 0, 'the requests wrk left behind end', 5000);
  const stats = await getStats(front);
  await front.stop();
  front = null;
  return { load: result, backends: stats.pools[0].backends, maxQueued: queued };
}

describe.skipIf(!wrk)('learned slots under 200 concurrent clients, default flags', () => {
  for (const [mode, served] of [['serial', 1], ['pool:4', 4]] as const) {
    it(`${mode}: claims ${mode === 'serial' ? 1000 : 1024}, serves ${served} at once → slots ${served}, nothing stuck`, async () => {
      const learned = await run(mode, {}, true);
      for (const b of learned.backends) {
        expect(b, JSON.stringify(b)).toMatchObject({ slots: served, slotsLearned: served, switchesFrom: 'measured' });
        expect(b.slotsClaimed).toBeGreaterThanOrEqual(1000);
        // At most the one standby probe (no request on it) waits behind the kept connection.
        expect(b.acceptQueue.current).toBeLessThanOrEqual(1);
        expect(b.inflight).toBe(0);
      }
      const l = learned.load;
      expect(l.timeouts + l.errors + l.non2xx, JSON.stringify(l)).toBe(0);
      // The failure the issue found, a third of the throughput, was requests waiting behind kept
      // connections: in the kernel's accept queue (serial), or on a connection the app took but no
      // thread serves (pool:4: they would wait past wrk's 2 s). Neither may happen; the throughput
      // against the manual switches is measured in bench/ (bench/dishonest.sh) — as a ratio in
      // a test it swung to 0.41 in CI with the whole suite beside it, old code and new alike.
      expect(l.maxMs, 'no request slower than 2 s').toBeLessThan(2000);
      expect(learned.maxQueued, 'most connections seen in one accept queue under load: only the standby probe, no request').toBeLessThanOrEqual(1);
    }, 60_000);
  }

  it('concurrent: an honest high capacity keeps its slots', async () => {
    // 100 Python threads per process take turns at the GIL: on a CPU shared with other test
    // files a few of them wait over 2 s (the app's own convoy; seen under two busy loops).
    // The 2 s bound is the for the two dishonest backends; every request is still counted.
    const { load: l, backends } = await run('concurrent', {}, false, 10);
    for (const b of backends) {
      expect(b.slotsLearned).toBeNull();
      expect(b.slots).toBe(1000);
      expect(b.maxInflight).toBeGreaterThan(8); // it was given real concurrency, not a cautious few
    }
    expect(l.timeouts + l.errors + l.non2xx, JSON.stringify(l)).toBe(0);
  }, 60_000);

  it('concurrent, accepting slowly (150 ms between accepts): probes it takes late are no evidence of a limit', async () => {
    // At 500 ms most of a batch of probes is still in the accept queue, but the app has taken
    // some: it is accepting, and keeps its slots (before: learned as many as it served then).
    const { load: l, backends } = await run('concurrent --accept-gap-ms 150', {}, false, 10);
    for (const b of backends) expect(b, JSON.stringify(b)).toMatchObject({ slotsLearned: null, slots: 1000 });
    expect(l.timeouts + l.errors + l.non2xx, JSON.stringify(l)).toBe(0);
  }, 60_000);
});
