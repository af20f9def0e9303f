// Process management: recycling after N requests, crash loops shown as down,
// --user/--group, --cwd, --env.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FIXTURES, PY_HELLO, getStats, request, startTestFront, tmpDir, waitUntil, type TestFront } from './helpers.js';

const FAULT = path.join(FIXTURES, 'fault-backend.mjs');
let front: TestFront | null = null;
afterEach(async () => { await front?.stop(); front = null; });

describe('process management', () => {
  it('--max-requests with jitter recycles processes under load, drained first: zero failed requests', async () => {
    front = await startTestFront({ procs: 2, 'max-requests': 40, 'max-requests-jitter': 10, command: ['python3', PY_HELLO] });
    const f = front;
    const firstPids = f.pool.backends.map((b) => b.pid);
    let running = true;
    const statuses: number[] = [];
    const loops = Array.from({ length: 8 }, async () => { while (running) statuses.push((await request(`${f.url}/Hello/5`)).status); });
    await waitUntil(async () => (await getStats(f)).processes.recycles >= 4, 'four recycles', 20_000);
    running = false;
    await Promise.all(loops);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    await f.log.waitFor((l) => /requests \(max-requests\): recycling it/.test(l.msg), 'about recycling');
    await waitUntil(() => f.pool.backends.length === 2 && f.pool.backends.every((b) => b.state === 'ready'), 'two ready backends again');
    expect(f.pool.backends.map((b) => b.pid)).not.toEqual(firstPids);
    for (const b of f.pool.backends) expect(b.counters.requests).toBeLessThanOrEqual(50 + 8); // recycled near its limit
  });

  it('a process that keeps failing is shown down with its exit and stderr; the others keep serving', async () => {
    const dir = tmpDir();
    const app = path.join(dir, 'app.sh');
    // b1 fails at once every time; b0 runs the real app.
    fs.writeFileSync(app, `#!/bin/sh\ncase "$UPFRONT_SOCKET" in *b1.sock) echo "b1 cannot start: missing config" >&2; exit 3;; esac\nexec python3 ${PY_HELLO}\n`, { mode: 0o755 });
    front = await startTestFront({ procs: 2, 'restart-backoff': 20, 'down-after-failures': 3, command: [app] });
    const f = front;
    await waitUntil(() => f.pool.backends[1].state === 'down', 'b1 is down');
    const b1 = (await getStats(f)).pools[0].backends[1];
    expect(b1.state).toBe('down');
    expect(b1.down.lastExit).toBe('exited with code 3');
    expect(b1.down.stderrTail).toContain('b1 cannot start: missing config');
    const replies = await Promise.all(Array.from({ length: 20 }, () => request(`${f.url}/Hello/1`)));
    expect(replies.map((r) => r.status)).toEqual(Array(20).fill(200));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--cwd and --env reach the children, with UPFRONT_SOCKET', async () => {
    const dir = tmpDir();
    front = await startTestFront({ procs: 1, cwd: dir, env: ['FOO=bar=baz'], command: [process.execPath, FAULT, 'whoami'] });
    const info = JSON.parse((await request(`${front.url}/x`)).body.toString());
    expect(info.cwd).toBe(fs.realpathSync(dir));
    expect(info.FOO).toBe('bar=baz');
    expect(info.UPFRONT_SOCKET).toMatch(/b0\.sock$/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(process.getuid?.() !== 0)('--user nobody: the children run as nobody', async () => {
    // nobody may not reach the checkout (CI clones anywhere): run a copy from a world-readable dir.
    const dir = tmpDir();
    fs.chmodSync(dir, 0o755);
    const copy = path.join(dir, 'fault-backend.mjs');
    fs.copyFileSync(FAULT, copy);
    fs.chmodSync(copy, 0o644);
    try {
      front = await startTestFront({ procs: 1, user: 'nobody', cwd: dir, command: [process.execPath, copy, 'whoami'] });
      const info = JSON.parse((await request(`${front.url}/x`)).body.toString());
      expect(info.uid).toBe(65534);
      expect(info.gid).toBe(65534);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--user with an unknown user: a clear error (bad input) before anything starts', async () => {
    await expect(startTestFront({ procs: 1, user: 'no-such-user-here', command: ['python3', PY_HELLO] })).rejects.toThrow(/^user: --user no-such-user-here: no such user/);
  });
});

describe('more process management', () => {
  it('--kill-stuck: a request past read-timeout gets 504 and its process is killed and restarted', async () => {
    front = await startTestFront({ procs: 1, 'read-timeout': 300, 'kill-stuck': true, command: [process.execPath, FAULT, 'silent'] });
    const f = front;
    const pid = f.pool.backends[0].pid!;
    expect((await request(`${f.url}/stuck`)).status).toBe(504);
    await f.log.waitFor((l) => /exceeded read-timeout; killing it \(--kill-stuck\)/.test(l.msg), 'about killing the stuck process');
    await waitUntil(() => f.pool.backends[0].pid !== pid && f.pool.backends[0].state === 'ready', 'a new process is ready');
    expect(f.pool.backends[0].restarts).toBe(1);
  });

  it('--max-rss recycles a process that uses more memory', async () => {
    front = await startTestFront({ procs: 1, 'max-rss': 1, command: ['python3', PY_HELLO] });
    const f = front;
    const line = await f.log.waitFor((l) => /MB of memory \(max-rss 1 MB\): recycling it/.test(l.msg), 'about max-rss', 10_000);
    expect(line.backend).toBe('b0');
    await waitUntil(async () => (await getStats(f)).processes.recycles >= 1, 'a recycle is counted');
    expect((await request(`${f.url}/Hello/1`)).status).toBe(200);
  });

  it('--socket-fd systemd: the socket on fd 3 with LISTEN_FDS=1 and LISTEN_PID = the app\'s pid', async () => {
    front = await startTestFront({ procs: 1, 'socket-fd': 'systemd', command: [process.execPath, FAULT, 'whoami'] });
    const info = JSON.parse((await request(`${front.url}/x`)).body.toString());
    expect(info.LISTEN_FDS).toBe('1');
    expect(info.LISTEN_PID).toBe(String(info.pid));
    expect(info.pid).toBe(front.pool.backends[0].pid);
  });

  it('--procs 1:3 autoscales up while requests queue and back down when idle, logging why', async () => {
    front = await startTestFront({ procs: '1:3', 'scale-up-after': 200, 'scale-down-after': 600, command: ['python3', PY_HELLO] });
    const f = front;
    let running = true;
    const statuses: number[] = [];
    const loops = Array.from({ length: 12 }, async () => { while (running) statuses.push((await request(`${f.url}/sleep/20`)).status); });
    await waitUntil(() => f.pool.backends.filter((b) => b.state === 'ready').length === 3, 'three ready backends', 20_000);
    running = false;
    await Promise.all(loops);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const up = await f.log.waitFor((l) => /scaling from 1 to 2 .*autoscale: the queue was not empty for 200 ms/.test(l.msg), 'about scaling up');
    expect(up.reason).toMatch(/^autoscale:/);
    await waitUntil(() => f.pool.backends.length === 1, 'back to one backend', 20_000);
    await f.log.waitFor((l) => /autoscale: backend b\d+ was idle for 600 ms/.test(l.msg), 'about scaling down');
    expect((await getStats(f)).processes.scaleChanges).toBeGreaterThanOrEqual(4);
  });
});
