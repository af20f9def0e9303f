// Scaling at run time: new processes take requests once ready; removed ones are
// drained first. Under continuous load, no request fails.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { formatStats } from '../src/admin/statsTable.js';
import { PY_HELLO, ROOT, getStats, pidAlive, request, spawnCli, startTestFront, tmpDir, waitUntil, type TestFront } from './helpers.js';

let front: TestFront | null = null;

/** SIGTERM, bounded: SIGKILL after 10 s (a stopped or stuck process must not hang the test). */
async function stopCli(proc: import('node:child_process').ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  proc.kill('SIGCONT');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
afterEach(async () => { await front?.stop(); front = null; });

/** Keeps `workers` requests in flight until stop() is called; resolves with every status. */
function load(url: string, workers: number): { stop: () => Promise<number[]>; count: () => number } {
  let running = true;
  const statuses: number[] = [];
  const loops = Array.from({ length: workers }, async () => {
    while (running) statuses.push((await request(url)).status);
  });
  return { stop: async () => { running = false; await Promise.all(loops); return statuses; }, count: () => statuses.length };
}

describe('scale', () => {
  it('2 → 3 → 1 under continuous load: zero non-2xx, removed children exited, their sockets gone', async () => {
    front = await startTestFront({ procs: 2, command: ['python3', PY_HELLO] });
    const f = front;
    const traffic = load(`${f.url}/sleep/3`, 8);
    expect(await f.scale(3, 'test')).toEqual({ from: 2, to: 3 });
    await waitUntil(() => f.pool.backends.length === 3 && f.pool.backends.every((b) => b.state === 'ready'), 'b2 is ready');
    await waitUntil(() => f.pool.backends[2].counters.requests > 5, 'b2 takes requests');
    const before = f.pool.backends.map((b) => ({ id: b.id, pid: b.pid!, socket: (b.address as { path: string }).path }));
    const atShrink = traffic.count();
    expect(await f.scale(1, 'test')).toEqual({ from: 3, to: 1 });
    await waitUntil(() => f.pool.backends.length === 1, 'two backends drained and removed', 20_000);
    await f.log.waitFor((l) => /drained and stopped/.test(l.msg), 'about a drained backend');
    // The load kept flowing through the shrink: each of the 8 clients was answered again.
    await waitUntil(() => traffic.count() >= atShrink + 8, 'requests answered after the shrink');
    const statuses = await traffic.stop();
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const kept = f.pool.backends[0].id;
    for (const b of before.filter((x) => x.id !== kept)) {
      expect(pidAlive(b.pid)).toBe(false);
      expect(fs.existsSync(b.socket)).toBe(false);
    }
    expect((await request(`${f.url}/Hello/1`)).status).toBe(200);
  });

  it('POST /scale on the admin listener, and `upfront scale`; bad input gets 400 with the reason', async () => {
    const dir = tmpDir();
    const adminSock = path.join(dir, 'admin.sock');
    front = await startTestFront({ procs: 1, admin: `unix:${adminSock}`, command: ['python3', PY_HELLO] });
    const f = front;
    const post = (body: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      import('node:http').then(({ default: http }) => {
        // A unix-socket admin (mode 0600) needs no token; a JSON body still needs its Content-Type.
        const req = http.request({ socketPath: adminSock, path: '/scale', method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
          let text = '';
          res.on('data', (c) => { text += c; });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    });
    expect(await post('not json')).toMatchObject({ status: 400, body: expect.stringMatching(/expected a JSON body/) });
    expect(await post('{"procs": "many"}')).toMatchObject({ status: 400, body: expect.stringMatching(/procs: expected a whole number/) });
    expect(await post('{"procs": 1025}')).toMatchObject({ status: 400, body: expect.stringMatching(/from 1 to 1024, got 1025/) });
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'scale', '2', '--admin', `unix:${adminSock}`], { timeout: 10_000 });
    expect(stdout).toBe('scaled from 1 to 2 processes\n');
    await waitUntil(() => f.pool.backends.length === 2 && f.pool.backends.every((b) => b.state === 'ready'), 'the second backend is ready');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('SIGTTIN adds a process, SIGTTOU removes one (as gunicorn)', async () => {
    const proc = spawn(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'run', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '1', '--', 'python3', PY_HELLO], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      let err = '';
      proc.stderr!.on('data', (c) => { err += c; });
      await waitUntil(() => /curl (http:\/\/[\d.:]+)\/stats/.test(err), 'the CLI prints its admin address', 15_000);
      const admin = /curl (http:\/\/[\d.:]+)\/stats/.exec(err)![1];
      const count = async () => ((await (await fetch(`${admin}/stats`)).json()) as any).pools[0].backends.filter((b: any) => b.state === 'ready').length;
      proc.kill('SIGTTIN');
      await waitUntil(async () => (await count()) === 2, 'two ready backends after SIGTTIN');
      proc.kill('SIGTTOU');
      await waitUntil(async () => ((await (await fetch(`${admin}/stats`)).json()) as any).pools[0].backends.length === 1, 'one backend after SIGTTOU');
    } finally {
      await stopCli(proc);
    }
  });
});

describe('rolling reload', () => {
  it('under 100 concurrent requests: every process replaced, zero failed requests, old children exited', async () => {
    front = await startTestFront({ procs: 2, command: ['python3', PY_HELLO] });
    const f = front;
    const oldPids = f.pool.backends.map((b) => b.pid!);
    const traffic = load(`${f.url}/Hello/20`, 100);
    await waitUntil(() => f.pool.backends.every((b) => b.counters.requests > 20), 'traffic reaches both backends');
    const result = await f.reload('test');
    expect(result).toEqual({ replaced: 2, failed: 0, errors: [] });
    await waitUntil(() => f.pool.backends.every((b) => b.counters.requests > 20), 'the new backends take traffic');
    const statuses = await traffic.stop();
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(f.pool.backends.map((b) => b.id)).toEqual(['b2', 'b3']);
    for (const pid of oldPids) expect(pidAlive(pid)).toBe(false);
    f.log.lines.filter((l) => l.level >= 50).forEach((l) => { throw new Error(`error logged during reload: ${l.msg}`); });
  });

  it('a replacement that does not start leaves the old process serving', async () => {
    const dir = tmpDir();
    const flag = path.join(dir, 'broken');
    // A wrapper that runs the app, or exits at once once the flag file exists.
    const wrapper = path.join(dir, 'app.sh');
    fs.writeFileSync(wrapper, `#!/bin/sh\n[ -e ${flag} ] && exit 7\nexec python3 ${PY_HELLO}\n`, { mode: 0o755 });
    front = await startTestFront({ procs: 1, 'start-timeout': 3000, command: [wrapper] });
    const f = front;
    const pid = f.pool.backends[0].pid!;
    fs.writeFileSync(flag, '');
    const result = await f.reload('test');
    expect(result).toEqual({ replaced: 0, failed: 1, errors: ['new process b1 exited with code 7 before it was ready'] });
    expect(f.pool.backends.map((b) => b.pid)).toEqual([pid]);
    expect((await request(`${f.url}/Hello/1`)).status).toBe(200);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('reload re-reads the config', () => {
  it('a changed command line in the config file takes effect on `upfront reload`', async () => {
    const dir = tmpDir();
    const conf = path.join(dir, 'upfront.yaml');
    const FAULT = path.join(ROOT, 'test/fixtures/fault-backend.mjs');
    fs.writeFileSync(conf, `procs: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\ncommand: [python3, ${PY_HELLO}]\n`);
    const proc = spawn(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'run', '-c', conf], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      let err = '';
      proc.stderr!.on('data', (c) => { err += c; });
      await waitUntil(() => /curl (http:\/\/[\d.:]+)\/stats/.test(err), 'the CLI prints its addresses', 15_000);
      const base = /serving on (http:\/\/[\d.:]+)/.exec(err)![1];
      const admin = /curl (http:\/\/[\d.:]+)\/stats/.exec(err)![1];
      expect((await request(`${base}/Hello/2`)).body.toString()).toMatch(/Hello, World!/);
      fs.writeFileSync(conf, `procs: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\ncommand: [${process.execPath}, ${FAULT}, whoami]\n`);
      const { stdout } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'reload', '--admin', admin.replace('http://', '')], { timeout: 10_000 });
      // The token is found through /stats; the answer comes once the new process serves.
      expect(stdout).toBe('reloaded: 1 process replaced\n');
      expect((await request(`${base}/x`)).body.toString()).toMatch(/^\{/);
      const info = JSON.parse((await request(`${base}/x`)).body.toString());
      expect(info.UPFRONT_SOCKET).toMatch(/b1\.sock$/);
    } finally {
      await stopCli(proc);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('--socket shared (spawn-fcgi -F N): reload and scale', () => {
  for (const multithreaded of [false, true]) {
    it(`multithreaded=${multithreaded}: reload and 2 → 3 → 1 under load, zero failed requests, one /stats row per child`, async () => {
      front = await startTestFront({ procs: 2, socket: 'shared', command: ['python3', PY_HELLO, '--multithreaded', String(multithreaded), '--max-threads', '2'] });
      const f = front;
      const rows = async () => (await getStats(f)).children as Array<{ id: string; pid: number; backend: string; state: string }>;
      const first = await rows();
      expect(first.map((c) => [c.id, c.backend, c.state])).toEqual([['b0', 'shared', 'ready'], ['b1', 'shared', 'ready']]);
      expect(new Set(first.map((c) => c.pid)).size).toBe(2);
      // `upfront stats`: the shared backend's row has no pid; a row per process under it.
      const table = formatStats(await getStats(f));
      expect(table).toMatch(/^shared\s+-\s+ready/m);
      for (const c of first) expect(table).toMatch(new RegExp(`^${c.id}\\s+${c.pid}\\s+shared\\s+ready\\s+0$`, 'm'));
      const traffic = load(`${f.url}/Hello/20`, 40);
      await waitUntil(() => f.pool.backends[0].counters.requests > 50, 'traffic flows');
      expect(await f.reload('test')).toEqual({ replaced: 2, failed: 0, errors: [] });
      const reloaded = await rows();
      expect(reloaded.map((c) => [c.id, c.state])).toEqual([['b2', 'ready'], ['b3', 'ready']]);
      for (const c of first) expect(pidAlive(c.pid)).toBe(false);
      expect(await f.scale(3, 'test')).toEqual({ from: 2, to: 3 });
      expect((await rows()).filter((c) => c.state === 'ready')).toHaveLength(3);
      expect(f.pool.backends[0].slots).toBe(3 * (multithreaded ? 2 : 1));
      const before = f.pool.backends[0].counters.requests;
      await waitUntil(() => f.pool.backends[0].counters.requests > before + 50, 'traffic flows over three');
      expect(await f.scale(1, 'test')).toEqual({ from: 3, to: 1 });
      const last = await rows();
      expect(last).toHaveLength(1);
      const after = f.pool.backends[0].counters.requests;
      await waitUntil(() => f.pool.backends[0].counters.requests > after + 50, 'traffic flows over one');
      const statuses = await traffic.stop();
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      for (const c of reloaded) if (c.pid !== last[0].pid) expect(pidAlive(c.pid)).toBe(false);
      expect(f.log.lines.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([]);
    }, 60_000);
  }
});

describe('`upfront reload` and `upfront scale` say when they fail, and why', () => {
  it('a replacement or a new process that exits: exit 1 with its exit and stderr; the old process keeps serving', async () => {
    const dir = tmpDir();
    const flag = path.join(dir, 'broken');
    const wrapper = path.join(dir, 'app.sh');
    fs.writeFileSync(wrapper, `#!/bin/sh\n[ -e ${flag} ] && { echo "app: config is broken" >&2; exit 7; }\nexec python3 ${PY_HELLO}\n`, { mode: 0o755 });
    const running = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--socket', 'shared', '-n', '2', '--start-timeout', '3000', '--', wrapper]);
    const cli = (args: string[]) => promisify(execFile)(process.execPath, [path.join(ROOT, 'dist/cli.js'), ...args, '--admin', running.admin!], { timeout: 20_000 })
      .then((r) => ({ code: 0, ...r }), (err) => ({ code: err.code as number, stdout: err.stdout as string, stderr: err.stderr as string }));
    try {
      expect(await cli(['reload'])).toMatchObject({ code: 0, stdout: 'reloaded: 2 processes replaced\n' });
      fs.writeFileSync(flag, '');
      const reload = await cli(['reload']);
      expect(reload.code).toBe(1);
      expect(reload.stderr).toMatch(/^upfront: admin [\d.:]+: 2 new process\(es\) did not get ready \(new process b\d exited with code 7 before it was ready, stderr: app: config is broken; new process b\d exited with code 7 before it was ready, stderr: app: config is broken\); their old processes keep serving \(500\)\n$/);
      const scale = await cli(['scale', '3']);
      expect(scale.code).toBe(1);
      expect(scale.stderr).toMatch(/scaling to 3 failed: new process b\d+ exited with code 7 before it was ready, stderr: app: config is broken; 2 processes run \(409\)/);
      expect(running.stdout()).not.toMatch(/pid undefined/);
      expect((await request(`${running.base}/Hello/1`)).status).toBe(200);
    } finally {
      await running.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
