// Bodies arrive byte-exact both ways, streamed: 0, 1, 65535, 65536 bytes, 50 MB,
// chunked uploads. sha256 compared at both ends.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PY_HELLO, hashOfChunks, patternChunks, request, requestHash, sha256, startTestFront, type TestFront } from './helpers.js';

describe.each([
  { name: 'single-threaded, pipelined', args: [] as string[] },
  { name: 'multithreaded + multiplexed', args: ['--multithreaded', 'true', '--multiplexed', 'true'] },
])('bodies through the Python example ($name)', ({ args }) => {
  let front: TestFront;
  beforeAll(async () => {
    front = await startTestFront({ procs: 2, command: ['python3', PY_HELLO, ...args] });
  });
  afterAll(async () => { await front?.stop(); });

  for (const size of [0, 1, 65535, 65536, 65535 * 2 + 3]) {
    it(`uploads ${size} bytes with Content-Length, byte-exact`, async () => {
      const body = Buffer.alloc(size);
      for (let i = 0; i < size; i++) body[i] = (i * 7 + 3) & 255;
      const r = await request(`${front.url}/sha256`, { method: 'POST', body, headers: { 'Content-Type': 'application/octet-stream' } });
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body.toString())).toEqual({ bytes: size, sha256: sha256(body) });
    });

    it(`downloads ${size} bytes, byte-exact`, async () => {
      const r = await requestHash(`${front.url}/bytes/${size}`);
      expect(r.status).toBe(200);
      expect(r.bytes).toBe(size);
      expect(r.sha256).toBe(r.headers['x-sha256']);
    });
  }

  it('echoes a body back unchanged', async () => {
    const body = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 13) & 255));
    const r = await request(`${front.url}/echo`, { method: 'PUT', body });
    expect(r.status).toBe(200);
    expect(sha256(r.body)).toBe(sha256(body));
  });

  it('streams a 50 MB upload (chunked, no Content-Length) and a 50 MB download', async () => {
    const size = 50 * 1024 * 1024;
    const expected = await hashOfChunks(patternChunks(size));
    const memBefore = process.memoryUsage().rss;
    const up = await request(`${front.url}/sha256`, { method: 'POST', body: patternChunks(size) });
    expect(up.status).toBe(200);
    expect(JSON.parse(up.body.toString())).toEqual({ bytes: size, sha256: expected });
    const down = await requestHash(`${front.url}/bytes/${size}`);
    expect(down.bytes).toBe(size);
    expect(down.sha256).toBe(down.headers['x-sha256']);
    // Nothing held whole: the front (this process) did not grow by the body size.
    expect(process.memoryUsage().rss - memBefore).toBeLessThan(size);
  });

  it('a response head that straddles STDOUT records (100 KB header)', async () => {
    const r = await request(`${front.url}/big-headers`);
    expect(r.status).toBe(200);
    const big = Object.entries(r.headers).find(([, v]) => typeof v === 'string' && v.length > 90_000);
    expect(big).toBeDefined();
  });
});
