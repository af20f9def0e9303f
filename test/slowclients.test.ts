// Slow clients never pin an app: two that read a 100 MB response at a crawl and two
// that upload at a byte a second, against two single-threaded backends; a fifth
// client must be answered at once. And with buffering off, the old behaviour: pinned.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { PY_HELLO, getStats, request, startTestFront, waitUntil, type TestFront } from './helpers.js';

let front: TestFront | null = null;
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await front?.stop();
  front = null;
});

function connect(url: string): Promise<net.Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), hostname, () => resolve(s));
    s.on('error', reject);
    sockets.push(s);
  });
}

/** A client that asks for a large response and reads nothing of it. */
async function slowReader(url: string): Promise<net.Socket> {
  const s = await connect(url);
  s.pause();
  s.write('GET /bytes/100000000 HTTP/1.1\r\nHost: x\r\n\r\n');
  return s;
}

/** A client that announces 1 MB and sends a byte now and then. */
async function slowUploader(url: string): Promise<net.Socket> {
  const s = await connect(url);
  s.write('POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nab');
  return s;
}

async function timedGet(url: string): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const r = await request(url);
  return { status: r.status, ms: performance.now() - t0 };
}

describe('slow clients', () => {
  it('two slow readers and two slow uploaders on -n 2 single-threaded backends: a fifth client is answered within 100 ms', async () => {
    front = await startTestFront({ procs: 2, command: ['python3', PY_HELLO] });
    const f = front;
    await timedGet(`${f.url}/Hello/1`); // warm both paths
    await slowReader(f.url);
    await slowReader(f.url);
    await slowUploader(f.url);
    await slowUploader(f.url);
    // The backends took the large responses whole (memory, then temp files) and are free again.
    const answered = () => f.pool.backends.reduce((n, b) => n + b.counters.responses['2xx'], 0);
    await waitUntil(() => answered() >= 3 && f.pool.inflight === 0, 'the backends have answered the slow readers in full', 20_000);
    const fifth = await timedGet(`${f.url}/Hello/1`);
    expect(fifth.status).toBe(200);
    expect(fifth.ms).toBeLessThan(100);
    // Nothing of the responses is left as a file in the temp dir (the buffers are anonymous).
    expect(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`upfront-response-${process.pid}-`))).toEqual([]);
  }, 40_000);

  it('with buffering off, a slow reader and a slow uploader pin both backends (what the options turn back on)', async () => {
    front = await startTestFront({ procs: 2, 'request-buffering': false, 'response-buffering': false, 'queue-timeout': 500, command: ['python3', PY_HELLO] });
    const f = front;
    await slowReader(f.url);
    await slowUploader(f.url);
    await waitUntil(() => f.pool.inflight === 2, 'both backends are held by the slow clients');
    const fifth = await request(`${f.url}/Hello/1`);
    expect(fifth.status).toBe(503); // queue-timeout: no backend frees up
    expect((await getStats(f)).pools[0].queue.timeouts).toBeGreaterThanOrEqual(1);
  }, 40_000);
});
