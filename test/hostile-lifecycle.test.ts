// The process lifecycle under hostile use: reloads and scales asked for on top of
// each other (a SIGHUP storm, an admin script in a loop), bad socket dirs, an app
// that floods its output. Real
// processes; every wait bounded; nothing left behind.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PY_HELLO, ROOT, pidAlive, request, spawnCli, startTestFront, tmpDir, waitUntil, type RunningCli, type TestFront } from './helpers.js';

let front: TestFront | null = null;
let cli: RunningCli | null = null;
afterEach(async () => {
  await front?.stop(); front = null;
  await cli?.stop(); cli = null;
});

/** Keeps `workers` requests in flight until stop() is called; resolves with every status (0: no answer). */
function load(url: string, workers: number): { stop: () => Promise<number[]>; count: () => number } {
  let running = true;
  const statuses: number[] = [];
  const loops = Array.from({ length: workers }, async () => {
    while (running) statuses.push(await request(url).then((r) => r.status, () => 0));
  });
  return { stop: async () => { running = false; await Promise.all(loops); return statuses; }, count: () => statuses.length };
}

/** The live children of the process `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch { /* gone */ }
  }
  return out;
}

describe('reloads and scales on top of each other', () => {
  it('5 reloads asked at once under load: the process count stays 2, zero failed requests', async () => {
    front = await startTestFront({ procs: 2, command: ['python3', PY_HELLO] });
    const f = front;
    const traffic = load(`${f.url}/Hello/5`, 20);
    await waitUntil(() => traffic.count() > 20, 'traffic flows');
    const outcomes = await Promise.all(Array.from({ length: 5 }, () => f.reload('test')));
    for (const o of outcomes) expect(o.failed).toBe(0);
    const statuses = await traffic.stop();
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    // Each reload replaces the processes there are, not the ones another reload is starting.
    expect(f.supervisor!.procs).toBe(2);
    expect(f.supervisor!.pids()).toHaveLength(2);
    expect(f.pool.backends).toHaveLength(2);
    expect(f.pool.backends.every((b) => b.state === 'ready')).toBe(true);
  });

  it('scale 3 and scale 1 asked at once: the last asked wins (1 process), both succeed', async () => {
    front = await startTestFront({ procs: 2, command: ['python3', PY_HELLO] });
    const f = front;
    const [up, down] = await Promise.all([f.scale(3, 'first'), f.scale(1, 'second')]);
    expect(up).toEqual({ from: 2, to: 3 });
    expect(down).toEqual({ from: 3, to: 1 });
    expect(f.supervisor!.procs).toBe(1);
    expect(f.supervisor!.pids()).toHaveLength(1);
    expect(f.pool.backends).toHaveLength(1);
    expect((await request(`${f.url}/Hello/1`)).status).toBe(200);
  });

  it('a SIGHUP storm (10 signals) against `upfront run -n 2`: still 2 app processes after, and it stops cleanly', async () => {
    cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', 'off', '--log-level', 'info', '-n', '2', '--', 'python3', PY_HELLO]);
    const pid = cli.proc.pid!;
    for (let i = 0; i < 10; i++) {
      cli.proc.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 20));
    }
    // Every reload asked has finished once no reload is under way and the last one said so.
    await waitUntil(() => {
      const out = cli!.stdout();
      return (out.match(/"msg":"reloading /g) ?? []).length > 0
        && (out.match(/"msg":"reloading /g) ?? []).length === (out.match(/"msg":"reload done/g) ?? []).length;
    }, 'the reloads are done', 30_000);
    // Not 2 ** reloads: the app processes (children that are not the watchdog's shell).
    const apps = childrenOf(pid).filter((c) => !/^\/bin\/sh/.test(fs.readFileSync(`/proc/${c}/cmdline`, 'utf8')));
    expect(apps).toHaveLength(2);
    expect((await request(`${cli.base}/Hello/1`)).status).toBe(200);
    const exited = new Promise<number | null>((r) => cli!.proc.once('exit', (code) => r(code)));
    cli.proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    for (const c of apps) await waitUntil(() => !pidAlive(c), `app ${c} exited`, 5_000);
  }, 60_000);
});

describe('a socket dir upfront cannot use', () => {
  const run = (args: string[]) => {
    const proc = spawn(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'run', '--listen', '127.0.0.1:0', '--admin', 'off', ...args, '--', 'python3', PY_HELLO],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    proc.stderr.on('data', (c) => { err += c; });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => proc.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr: err });
    }));
  };

  it('a path that is a file: exit 2, one line naming --socket-dir, the path and the errno', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, '');
    const r = await run(['--socket-dir', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^upfront: socket-dir: .*a-file.*EEXIST/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    fs.rmSync(dir, { recursive: true });
  });

  it('a dir under /proc (where mkdir fails ENOENT forever): an answer within 10 s, not a busy loop', async () => {
    const r = await run(['--socket-dir', '/proc/upfront-nope']);
    expect(r.signal).toBe(null);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^upfront: socket-dir: .*\/proc\/upfront-nope.*ENOENT/);
  });

  it('a path too long for a unix socket: exit 2, the limit and the whole path named, no dir left', async () => {
    const dir = path.join(tmpDir(), 'x'.repeat(100));
    const r = await run(['--socket-dir', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(dir);
    expect(r.stderr).toMatch(/^upfront: socket-dir: .* at most 106 bytes \(108 with its NUL; ENAMETOOLONG\)/);
    expect(fs.existsSync(dir)).toBe(false);
    fs.rmSync(path.dirname(dir), { recursive: true });
  });
});

describe('an app that writes without newlines', () => {
  it('2 MB on stdout in one line: logged as its first 16 KiB and how much more, then the app serves', async () => {
    const dir = tmpDir();
    const app = path.join(dir, 'noisy.sh');
    fs.writeFileSync(app, `#!/bin/sh\nhead -c 2000000 /dev/zero | tr '\\0' x\necho\nprintf 'tail without newline' >&2\nexec python3 ${PY_HELLO}\n`, { mode: 0o755 });
    front = await startTestFront({ procs: 1, command: [app] });
    const f = front;
    const line = await f.log.waitFor((l) => l.stream === 'stdout' && l.msg.startsWith('xxx'), 'with the long stdout line');
    expect(line.msg).toBe(`${'x'.repeat(16 * 1024)} [${2_000_000 - 16 * 1024} more bytes of this line not logged]`);
    expect((await request(`${f.url}/Hello/1`)).status).toBe(200);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('signals an operator sends out of habit', () => {
  it('SIGUSR2 (nginx/gunicorn: upgrade) is said and ignored; SIGQUIT (nginx: graceful quit) stops after the request in flight, exit 0', async () => {
    cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--log-level', 'info', '-n', '1', '--', 'python3', PY_HELLO]);
    const c = cli;
    c.proc.kill('SIGUSR2');
    await waitUntil(() => /SIGUSR2/.test(c.stdout()) || c.proc.exitCode !== null || c.proc.signalCode !== null, 'a word about SIGUSR2', 5_000);
    expect(c.proc.signalCode).toBe(null);
    expect((await request(`${c.base}/Hello/1`)).status).toBe(200);
    const slow = request(`${c.base}/sleep/800`);
    const inflight = async () => ((await (await fetch(`http://${c.admin}/stats`)).json()) as any).pools[0].backends[0].inflight;
    await waitUntil(async () => (await inflight()) === 1, 'the request is at the app');
    const exited = new Promise<[number | null, string | null]>((r) => c.proc.once('exit', (code, sig) => r([code, sig])));
    c.proc.kill('SIGQUIT');
    const reply = await slow;
    expect(reply.status).toBe(200);
    expect(reply.body.toString().trim()).toBe('slept 800');
    expect(await exited).toEqual([0, null]);
  });

  it('three SIGTTIN in a row add three processes (as gunicorn), not one', async () => {
    cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--log-level', 'info', '-n', '1', '--', 'python3', PY_HELLO]);
    const c = cli;
    // One at a time: the kernel merges a signal sent while the same one is still pending.
    for (let i = 2; i <= 4; i++) {
      c.proc.kill('SIGTTIN');
      await waitUntil(() => c.stdout().includes(`"msg":"SIGTTIN: ${i} processes asked for"`), `SIGTTIN ${i - 1} is taken`, 5_000);
    }
    const stats = async () => ((await (await fetch(`http://${c.admin}/stats`)).json()) as any).pools[0].backends;
    await waitUntil(async () => (await stats()).filter((b: any) => b.state === 'ready').length === 4, 'four ready backends', 20_000);
    // And no scale beyond: the last change asked is done.
    await waitUntil(() => (c.stdout().match(/"msg":"scaling from/g) ?? []).length === 3, 'three scale steps');
    expect((await stats()).length).toBe(4);
  });
});

describe('an app that ignores SIGTERM', () => {
  it('scaled down: SIGKILL after kill-timeout, and the log says so', async () => {
    const dir = tmpDir();
    const app = path.join(dir, 'stubborn.py');
    // hello.py with SIGTERM ignored, and its own handler for it never installed.
    fs.writeFileSync(app, [
      'import runpy, signal, sys',
      'signal.signal(signal.SIGTERM, signal.SIG_IGN)',
      '_install = signal.signal',
      'signal.signal = lambda s, h: None if s == signal.SIGTERM else _install(s, h)',
      `sys.argv = [${JSON.stringify(PY_HELLO)}]`,
      `sys.path.insert(0, ${JSON.stringify(path.dirname(PY_HELLO))})`,
      `runpy.run_path(${JSON.stringify(PY_HELLO)}, run_name='__main__')`,
    ].join('\n'));
    front = await startTestFront({ procs: 2, 'kill-timeout': 1000, command: ['python3', app] });
    const f = front;
    const pids = f.supervisor!.pids();
    const started = Date.now();
    expect(await f.scale(1, 'test')).toEqual({ from: 2, to: 1 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    const line = await f.log.waitFor((l) => /did not exit within 1000 ms of SIGTERM/.test(l.msg), 'about the SIGKILL');
    expect(line.msg).toMatch(/^backend b\d \(pid \d+\) did not exit within 1000 ms of SIGTERM \(kill-timeout\): sending SIGKILL/);
    expect(pids.filter((p) => pidAlive(p))).toHaveLength(1);
    expect((await request(`${f.url}/Hello/1`)).status).toBe(200);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('a new process that never accepts', () => {
  for (const socket of ['per-process', 'shared'] as const) {
    it(`--socket ${socket}: reload and scale fail with the start timeout as the reason, not "killed by SIGKILL"; the old processes serve`, async () => {
      const dir = tmpDir();
      const flag = path.join(dir, 'broken');
      // Serves, or once the flag exists closes fd 0 (the socket) and sleeps: alive, never accepting.
      const app = path.join(dir, 'app.sh');
      fs.writeFileSync(app, `#!/bin/sh\n[ -e ${flag} ] && { exec 0<&-; exec sleep 60; }\nexec python3 ${PY_HELLO}\n`, { mode: 0o755 });
      front = await startTestFront({ procs: 1, socket, 'start-timeout': 2500, command: [app] });
      const f = front;
      // Serving before the flag: a first start slower than the timeout (a loaded machine) is restarted, without it.
      await waitUntil(() => f.supervisor!.children().every((c) => c.state === 'ready'), 'b0 is ready', 15_000);
      fs.writeFileSync(flag, '');
      const reload = await f.reload('test');
      expect(reload.failed).toBe(1);
      expect(reload.errors[0]).toMatch(/^new process b1 was not ready: .*before the start timeout$/);
      await expect(f.scale(2, 'test')).rejects.toThrow(/^scaling to 2 failed: new process b2 was not ready: .*before the start timeout; 1 process run$/);
      const r = await request(`${f.url}/Hello/1`);
      expect(`${r.status} ${r.status === 200 ? '' : r.body.toString()}`).toBe('200 ');
      fs.rmSync(dir, { recursive: true });
    });
  }
});

describe('signals while upfront starts', () => {
  it('SIGHUP while the only process is still starting: said and ignored; upfront then serves', async () => {
    const proc = spawn(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'run', '--listen', '127.0.0.1:0', '--admin', 'off', '--log-level', 'info',
      '-n', '1', '--', 'sh', '-c', `sleep 1; exec python3 ${PY_HELLO}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (c) => { out += c; });
    proc.stderr.on('data', (c) => { err += c; });
    const exit = new Promise<[number | null, string | null]>((r) => proc.once('exit', (code, sig) => r([code, sig])));
    try {
      // The app is spawned (after the handlers are in place) and not ready yet.
      await waitUntil(() => childrenOf(proc.pid!).some((c) => { try { return fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').includes('sleep 1'); } catch { return false; } }), 'the app is spawned');
      expect(err).not.toMatch(/serving on/);
      proc.kill('SIGHUP');
      await waitUntil(() => /"msg":"SIGHUP: ignored, upfront is still starting/.test(out) || proc.exitCode !== null || proc.signalCode !== null, 'a word about SIGHUP');
      expect(proc.signalCode).toBe(null);
      await waitUntil(() => /serving on (http:\/\/\S+)/.test(err), 'the banner', 15_000);
      const base = /serving on (http:\/\/\S+)/.exec(err)![1];
      expect((await request(`${base}/Hello/1`)).status).toBe(200);
      proc.kill('SIGTERM');
      expect(await exit).toEqual([0, null]);
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
  });
});
