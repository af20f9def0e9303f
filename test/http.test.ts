// --protocol http: HTTP/1.1 to apps on unix sockets (the Node example, gunicorn).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, getStats, hashOfChunks, patternChunks, request, requestHash, sha256, startTestFront, type TestFront } from './helpers.js';

const NODE_APP = path.join(ROOT, 'examples/node/http-app.mjs');
const SYSTEM_PYTHON = '/usr/bin/python3';
const hasGunicorn = (() => {
  try { return fs.existsSync('/usr/lib/python3/dist-packages/gunicorn'); } catch { return false; }
})();
if (process.env.CI && !hasGunicorn) throw new Error('python3-gunicorn is not installed; .ci/run should have installed it');

describe('the Node HTTP app behind --protocol http', () => {
  let front: TestFront;
  beforeAll(async () => { front = await startTestFront({ procs: 2, protocol: 'http', forwarded: true, 'max-requests-per-backend': 4, command: [process.execPath, NODE_APP] }); });
  afterAll(async () => { await front?.stop(); });

  it('serves /Hello/100, drops hop-by-hop headers both ways, sets X-Forwarded-*', async () => {
    const r = await request(`${front.url}/Hello/100`);
    expect(r.status).toBe(200);
    expect(r.body.toString().match(/Hello, World!/g)).toHaveLength(100);
    const h = await request(`${front.url}/headers`, { headers: { 'X-Forwarded-For': '10.0.0.1', 'Keep-Alive': 'timeout=99', Connection: 'keep-alive, X-Secret', 'X-Secret': 'no', 'X-Kept': 'yes' } });
    const seen = JSON.parse(h.body.toString());
    expect(seen['x-forwarded-for']).toBe('10.0.0.1, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe(new URL(front.url).host);
    expect(seen['x-kept']).toBe('yes');
    expect(seen.forwarded).toBe(`for=127.0.0.1;proto=http;host="${new URL(front.url).host}"`);
    expect(seen['x-secret']).toBeUndefined();
    expect(seen['keep-alive']).toBeUndefined();
    expect(h.headers['x-hop']).toBe('kept');
  });

  it('bodies byte-exact both ways: 0, 1, 65536 bytes, 20 MB chunked up, echo', async () => {
    for (const size of [0, 1, 65536]) {
      const body = Buffer.alloc(size, 7);
      const r = await request(`${front.url}/sha256`, { method: 'POST', body });
      expect(JSON.parse(r.body.toString())).toEqual({ bytes: size, sha256: sha256(body) });
    }
    const size = 20 * 1024 * 1024;
    const up = await request(`${front.url}/sha256`, { method: 'POST', body: patternChunks(size) });
    expect(JSON.parse(up.body.toString())).toEqual({ bytes: size, sha256: await hashOfChunks(patternChunks(size)) });
    const echo = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 11) & 255));
    expect(sha256((await request(`${front.url}/echo`, { method: 'PUT', body: echo })).body)).toBe(sha256(echo));
  });

  it('keeps connections alive: 200 requests over at most one connection per slot', async () => {
    await Promise.all(Array.from({ length: 200 }, () => request(`${front.url}/Hello/1`)));
    const stats = await getStats(front);
    for (const b of stats.pools[0].backends) {
      expect(b.slots).toBe(4);
      expect(b.connectionsOpened).toBeLessThanOrEqual(4);
      expect(b.maxInflight).toBeLessThanOrEqual(4);
    }
    const total = stats.pools[0].backends.reduce((a: number, b: any) => a + b.responses['2xx'], 0);
    expect(total).toBeGreaterThanOrEqual(200);
    // The apps themselves count the connections they accepted: kept alive, at most one per
    // slot, plus the readiness probe's.
    const counted = await Promise.all(Array.from({ length: 10 }, () => request(`${front.url}/connections`)));
    for (const c of counted) expect(Number(c.body.toString())).toBeLessThanOrEqual(4 + 1);
  });
});

describe.skipIf(!hasGunicorn)('gunicorn serving the Hello/N WSGI app', () => {
  let front: TestFront;
  beforeAll(async () => {
    front = await startTestFront({
      procs: 1, protocol: 'http', 'max-requests-per-backend': 2,
      command: [SYSTEM_PYTHON, '-m', 'gunicorn', '--workers', '2', '--bind', 'unix:{socket}', '--chdir', path.join(ROOT, 'examples/python'), 'hello:application'],
    });
  });
  afterAll(async () => { await front?.stop(); });

  it('serves /Hello/100 and a POSTed body byte-exact', async () => {
    const r = await request(`${front.url}/Hello/100`);
    expect(r.status).toBe(200);
    expect(r.body.toString().match(/Hello, World!/g)).toHaveLength(100);
    const body = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) & 255));
    const s = await request(`${front.url}/sha256`, { method: 'POST', body });
    expect(JSON.parse(s.body.toString())).toEqual({ bytes: body.length, sha256: sha256(body) });
    const d = await requestHash(`${front.url}/bytes/100000`);
    expect(d.sha256).toBe(d.headers['x-sha256']);
  });
});
