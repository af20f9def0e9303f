// Spawning details: {socket} children that bind themselves, GET_VALUES fallback,
// FCGI_STDERR in the log, requests waiting while the only backend restarts.
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { PY_HELLO, getStats, request, startTestFront, waitUntil, type TestFront } from './helpers.js';

let front: TestFront | null = null;
afterEach(async () => { await front?.stop(); front = null; });

describe('spawning', () => {
  it('{socket} in ARGS: the child binds a fresh path itself and is used once it accepts', async () => {
    front = await startTestFront({ procs: 2, command: ['python3', PY_HELLO, '--bind', '{socket}'] });
    const r = await request(`${front.url}/Hello/2`);
    expect(r.status).toBe(200);
    expect(r.body.toString().match(/Hello, World!/g)).toHaveLength(2);
    const stats = await getStats(front);
    expect(stats.pools[0].backends.map((b: any) => b.address)).toEqual([expect.stringMatching(/b0\.sock$/), expect.stringMatching(/b1\.sock$/)]);
    for (const b of stats.pools[0].backends) expect(fs.statSync(b.address.slice(5)).isSocket()).toBe(true);
  });

  for (const mode of ['none', 'empty']) {
    it(`an app that answers GET_VALUES with ${mode === 'none' ? 'nothing' : 'an empty result'}: false/false, logged`, async () => {
      front = await startTestFront({ procs: 1, 'get-values-timeout': 300, command: ['python3', PY_HELLO, '--multithreaded', 'true', '--get-values', mode] });
      const line = await front.log.waitFor((l) => /^backend b0 ready/.test(l.msg), 'about b0 being ready');
      expect(line).toMatchObject({ multithreaded: false, multiplexed: false, slots: 1 });
      expect(line.source).toBe(mode === 'none' ? 'fallback: no GET_VALUES answer' : 'fallback: empty GET_VALUES answer');
      expect((await request(`${front.url}/Hello/1`)).status).toBe(200);
    });
  }

  it('explicit switches override GET_VALUES', async () => {
    front = await startTestFront({ procs: 1, multithreaded: true, multiplexed: false, 'max-requests-per-backend': 3, command: ['python3', PY_HELLO, '--multithreaded', 'true'] });
    const b = (await getStats(front)).pools[0].backends[0];
    expect(b).toMatchObject({ multithreaded: true, multiplexed: false, slots: 3, switchesFrom: 'flags' });
  });

  it('FCGI_STDERR goes to the log with backend id and pid', async () => {
    front = await startTestFront({ procs: 1, command: ['python3', PY_HELLO] });
    expect((await request(`${front.url}/stderr`)).status).toBe(200);
    const line = await front.log.waitFor((l) => l.msg === 'hello-stderr-line', 'with the app\'s FCGI_STDERR');
    expect(line).toMatchObject({ backend: 'b0', pid: front.pool.backends[0].pid, stream: 'FCGI_STDERR' });
  });

  it('FCGI_STDERR is logged in bounded pieces: 2 KiB of a record, 16 KiB of a request, each cut said', async () => {
    front = await startTestFront({ procs: 1, command: ['python3', PY_HELLO] });
    const f = front;
    expect((await request(`${f.url}/stderr/50`)).status).toBe(200); // 50 records of ~4 KB, ~200 KB
    // The records came before the response's end: every line about them is written by now.
    const lines = f.log.lines.filter((l) => l.stream === 'FCGI_STDERR');
    expect(lines.map((l) => l.msg.slice(0, 20))).toEqual([0, 1, 2, 3, 4].map((i) => `hello-stderr-line ${i} `));
    for (const l of lines) {
      expect(l.msg.length).toBeLessThan(2048 + 200);
      expect(l.msg).toMatch(/\[\d+ more bytes of this record not logged\]/);
    }
    expect(lines[4].msg).toMatch(/\[further FCGI_STDERR of this request not logged: over 16 KiB\]$/);
    expect(lines.every((l) => l.backend === 'b0' && l.pid === f.pool.backends[0].pid)).toBe(true);
    // The next request's stderr is logged again.
    expect((await request(`${f.url}/stderr`)).status).toBe(200);
    await f.log.waitFor((l) => l.msg === 'hello-stderr-line', 'the next request\'s FCGI_STDERR');
  });

  it('while the only backend restarts, requests wait in the queue instead of failing', async () => {
    front = await startTestFront({ procs: 1, 'restart-backoff': 300, command: ['python3', PY_HELLO] });
    const f = front;
    const b0 = f.pool.backends[0];
    const oldPid = b0.pid!;
    process.kill(oldPid, 'SIGKILL');
    await waitUntil(() => b0.state === 'restarting', 'b0 is restarting');
    const r = await request(`${f.url}/Hello/1`);
    expect(r.status).toBe(200);
    expect(b0.pid).not.toBe(oldPid);
    expect((await getStats(f)).pools[0].queue.max).toBeGreaterThanOrEqual(1);
  });

  it('warns when --backlog exceeds net.core.somaxconn', async () => {
    const max = Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    front = await startTestFront({ procs: 1, backlog: Math.min(65535, max + 1), command: ['python3', PY_HELLO] });
    const line = await front.log.waitFor((l) => /exceeds net\.core\.somaxconn/.test(l.msg), 'about somaxconn');
    expect(line.level).toBe(40);
    expect((await getStats(front)).pools[0].backends[0].acceptQueue?.backlog).toBe(max);
  });
});
