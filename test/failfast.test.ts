// Dead pools fail fast and say why; timeouts mean one thing; a crash is not a verdict.
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FIXTURES, PY_HELLO, getStats, request, startTestFront, tmpDir, waitUntil, type TestFront } from './helpers.js';
import fs from 'node:fs';

let front: TestFront | null = null;
afterEach(async () => { await front?.stop(); front = null; });

const FAULT = path.join(FIXTURES, 'fault-backend.mjs');

async function timed<T>(p: Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  const value = await p;
  return { value, ms: Date.now() - t0 };
}

describe('no backend ready: 503 within --connect-timeout, naming the cause', () => {
  it('a crash-looping command (`false`): 503 within 1 s, the body and a log line say why, nothing left in the accept queue', async () => {
    front = await startTestFront({ procs: 1, 'restart-backoff': 50, 'restart-backoff-max': 200, 'sample-interval': 5, command: ['false'] });
    const f = front;
    await f.log.waitFor((l) => /exited with code 1/.test(l.msg), 'the first exit');
    const { value: r, ms } = await timed(request(`${f.url}/Hello/1`));
    expect(r.status).toBe(503);
    expect(ms).toBeLessThan(1000 + 300);
    expect(r.body.toString()).toMatch(/no backend ready: b0 \w+ \(exited with code 1/);
    await f.log.waitFor((l) => /^503 for \d+ request\(s\): no backend ready/.test(l.msg), 'the refusal logged with its cause');
    // Each restart gets a fresh socket: at most the current readiness probe waits in its
    // accept queue, never one more per restart.
    await f.log.waitFor((l) => l.failuresInRow === 6, 'a sixth failure in a row');
    const b = (await getStats(f)).pools[0].backends[0];
    expect(b.acceptQueue?.max ?? 0).toBeLessThanOrEqual(1);
  });

  it('an upstream nobody listens on (--upstream alone, no --procs): 503 within 1 s; stop ends its probing', async () => {
    const dir = tmpDir();
    try {
      front = await startTestFront({ upstream: [`unix:${path.join(dir, 'nobody.sock')}`], 'start-timeout': 300 });
      const f = front;
      expect(f.supervisor).toBeNull();
      await f.log.waitFor((l) => /not reachable/.test(l.msg), 'the upstream found unreachable');
      const { value: r, ms } = await timed(request(`${f.url}/x`));
      expect(r.status).toBe(503);
      expect(ms).toBeLessThan(1300);
      expect(r.body.toString()).toMatch(/no backend ready: u0 .*not reachable/);
      expect(f.upstreams!.probing).toBe(1);
      await f.stop();
      expect(f.upstreams!.probing).toBe(0);
    } finally {
      await front?.stop();
      front = null;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a backend that restarts after running well is waited for, not refused', async () => {
    front = await startTestFront({ procs: 1, 'restart-backoff': 300, command: ['python3', PY_HELLO] });
    const f = front;
    process.kill(f.pool.backends[0].pid!, 'SIGKILL');
    await waitUntil(() => f.pool.backends[0].state === 'restarting', 'b0 restarting');
    expect((await request(`${f.url}/Hello/1`)).status).toBe(200);
  });
});

describe('timeouts', () => {
  it('three requests to a backend that never answers: 504 each, none waits out another one\'s timeout twice', async () => {
    front = await startTestFront({ procs: 1, 'read-timeout': 600, command: [process.execPath, FAULT, 'silent'] });
    const f = front;
    const results = await Promise.all([1, 2, 3].map(() => timed(request(`${f.url}/x`))));
    for (const { value } of results) expect(value.status).toBe(504);
    const ms = results.map((r) => r.ms).sort((a, b) => a - b);
    expect(ms[0]).toBeGreaterThanOrEqual(550);
    // Two share the connection (one pipelined): both at the first deadline. The third waited
    // for the slot they held, then had its own read timeout: never a third one.
    expect(ms[1]).toBeLessThan(600 + 400);
    expect(ms[2]).toBeLessThan(2 * 600 + 400);
  });

  it('an upload still flowing never gets 504, however long it takes', async () => {
    front = await startTestFront({ procs: 1, 'read-timeout': 400, command: ['python3', PY_HELLO] });
    const f = front;
    // 1 s of upload in 100 ms steps, longer than the read timeout, with a Content-Length.
    const chunks = Array.from({ length: 10 }, (_, i) => Buffer.alloc(1000, i));
    const total = chunks.reduce((a, c) => a + c.length, 0);
    const url = new URL(`${f.url}/sha256`);
    const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const sock = net.connect(Number(url.port), url.hostname, async () => {
        sock.write(`POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: ${total}\r\nConnection: close\r\n\r\n`);
        for (const c of chunks) {
          await new Promise((r) => setTimeout(r, 100));
          sock.write(c);
        }
      });
      let text = '';
      sock.setEncoding('latin1');
      sock.on('data', (d) => { text += d; });
      sock.on('end', () => resolve({ status: Number(text.slice(9, 12)), body: text.slice(text.indexOf('\r\n\r\n') + 4) }));
      sock.on('error', reject);
    });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body).bytes).toBe(total);
  });
});

describe('a crash is not a verdict', () => {
  it('kill -9 of a backend under load: its replacement keeps keep-conn and pipelining', async () => {
    front = await startTestFront({ procs: 2, command: ['python3', PY_HELLO] });
    const f = front;
    const victim = f.pool.backends[0];
    const oldPid = victim.pid!;
    let stop = false;
    const load = Promise.all(Array.from({ length: 20 }, async () => {
      while (!stop) await request(`${f.url}/Hello/5`).catch(() => null);
    }));
    await waitUntil(() => victim.counters.requests > 50, 'the victim serves under load');
    process.kill(oldPid, 'SIGKILL');
    await waitUntil(() => victim.pid !== oldPid && victim.state === 'ready', 'the replacement is ready');
    const before = victim.counters.requests;
    await waitUntil(() => victim.counters.requests > before + 100, 'the replacement serves under load');
    stop = true;
    await load;
    expect(victim.caps).toMatchObject({ keepConn: true, pipelineDepth: 16 });
    expect(f.log.count((l) => typeof l.change === 'string' && /keepConn|pipelineDepth/.test(l.change))).toBe(0);
    // Connections per request would show as one per request; kept ones are a handful.
    expect(victim.transport.figures.connectionsOpened).toBeLessThan(20);
  });
});
