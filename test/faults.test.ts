// Backends that misbehave: each gets a clear status and one log line, and the
// front keeps serving.
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FIXTURES, request, startTestFront, type TestFront } from './helpers.js';

const FAULT = path.join(FIXTURES, 'fault-backend.mjs');
let front: TestFront | null = null;

afterEach(async () => {
  await front?.stop();
  front = null;
});

async function faultFront(mode: string, extra: Record<string, unknown> = {}): Promise<TestFront> {
  front = await startTestFront({ procs: 1, command: [process.execPath, FAULT, mode], retries: 0, ...extra });
  return front;
}

/** A raw HTTP request: reports whether the response was cut (fewer body bytes than Content-Length). */
function rawGet(url: string, pathname: string): Promise<{ head: string; bodyBytes: number; cut: boolean }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: Number(port) });
    let data = Buffer.alloc(0);
    s.on('connect', () => s.write(`GET ${pathname} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    s.on('data', (c: Buffer) => { data = Buffer.concat([data, c]); });
    s.on('error', reject);
    s.on('close', () => {
      const i = data.indexOf('\r\n\r\n');
      const head = data.subarray(0, i).toString();
      const cl = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? -1);
      const bodyBytes = data.length - i - 4;
      resolve({ head, bodyBytes, cut: cl >= 0 && bodyBytes < cl });
    });
  });
}

describe('faulty backends', () => {
  it('a backend that crashes mid-response: the response is cut, the child restarts', async () => {
    const f = await faultFront('crash-mid');
    const r = await rawGet(f.url, '/x');
    expect(r.head).toMatch(/^HTTP\/1.1 200/);
    expect(r.cut).toBe(true);
    await f.log.waitFor((l) => /exited with code 1.*restarting in/.test(l.msg), 'about the exit and restart');
    await f.log.waitFor((l) => /closed the connection in the middle of the response/.test(l.msg), 'about the cut response');
  });

  for (const [mode, reason] of [
    ['garbage', /bad FastCGI version/],
    ['wrong-id', /request id 6, which is not in flight/],
    ['truncated', /closed the connection/],
    ['close', /closed the connection before answering/],
    ['bad-type', /unexpected type 42 record from the application for request id 1/],
    ['unknown-role', /FCGI_UNKNOWN_ROLE/],
    ['cant-mpx', /FCGI_CANT_MPX_CONN/],
  ] as const) {
    it(`a backend that sends ${mode}: 502, one log line, and the front keeps serving`, async () => {
      const f = await faultFront(mode);
      const r1 = await request(`${f.url}/a`);
      expect(r1.status).toBe(502);
      expect(r1.body.toString()).toMatch(/^502 Bad Gateway: /);
      const line = await f.log.waitFor((l) => reason.test(l.msg) && l.level >= 50, `matching ${reason}`);
      expect(line.backend).toBe('b0');
      const r2 = await request(`${f.url}/b`);
      expect(r2.status).toBe(502); // still answering, still the same reason
    });
  }

  it('an app that ignores FCGI_KEEP_CONN and closes late: a POST written on the closing connection goes again, unread, with its body', async () => {
    // It answers, then closes 600 ms later: after the front's 10 ms settle pause, as node-fastcgi
    // does when short of CPU. The second POST lands on that connection and is never read.
    front = await startTestFront({ procs: 1, command: [process.execPath, FAULT, 'close-late', '600'], retries: 0 });
    const body = Buffer.alloc(5000, 120);
    const first = await request(`${front.url}/a`, { body });
    expect([first.status, first.body.toString()]).toEqual([200, 'got 5000 bytes']);
    await new Promise((r) => setTimeout(r, 30)); // the scenario: the next request comes after the settle, before the close
    const second = await request(`${front.url}/b`, { body });
    expect([second.status, second.body.toString()]).toEqual([200, 'got 5000 bytes']);
    const retry = await front.log.waitFor((l) => /retrying the request elsewhere/.test(l.msg), 'about the retry');
    expect(retry.code).toBe('ECONNRESET');
    await front.log.waitFor((l) => /ignores FCGI_KEEP_CONN/.test(l.msg), 'about the learned keep-conn');
    for (let i = 0; i < 5; i++) {
      const r = await request(`${front.url}/c${i}`, { body });
      expect([r.status, r.body.toString()]).toEqual([200, 'got 5000 bytes']);
    }
  });

  it('a backend that never answers: 504 after the read timeout', async () => {
    const f = await faultFront('silent', { 'read-timeout': 400 });
    const started = Date.now();
    const r = await request(`${f.url}/slow`);
    expect(r.status).toBe(504);
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    await f.log.waitFor((l) => /read timeout/.test(l.msg), 'about the read timeout');
  });

  it('FCGI_OVERLOADED becomes 503 with Retry-After', async () => {
    const f = await faultFront('overloaded');
    const r = await request(`${f.url}/x`);
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBeDefined();
    expect(r.body.toString()).toMatch(/FCGI_OVERLOADED/);
  });

  it('a backend that exits at start is restarted with growing backoff, not in a busy loop', async () => {
    const f = await faultFront('exit-at-start', { 'restart-backoff': 50, 'start-timeout': 5000 });
    const restart = (n: number) => f.log.waitFor((l) => new RegExp(`failure ${n} in a row`).test(l.msg), `for failure ${n}`);
    const first = await restart(1);
    const fourth = await restart(4);
    expect(first.restartInMs).toBe(50);
    expect(fourth.restartInMs).toBe(400);
    expect(f.log.count((l) => /exited with code 3/.test(l.msg))).toBeLessThanOrEqual(6);
    // Its stderr reached the log, tagged with the backend id.
    const err = await f.log.waitFor((l) => l.msg === 'fault-backend: exiting at start', 'with the child stderr');
    expect(err.backend).toBe('b0');
    expect(err.stream).toBe('stderr');
  });
});
