// The front's nice (--front-nice; by default the weight of the processes it feeds: -3 for 2,
// -6 for 4) while it runs, its processes at the nice the front was started with, and a refusal. Read back from the kernel: /proc/PID/stat field 19.
// The fronts here run inside the test process (a vitest fork of its own): their threads are its.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { sessionNiceOf, statFields } from '../src/stats/proc.js';
import { niceForProcesses, putProcessAtNice, spawnAtStartNice } from '../src/supervisor/frontNice.js';
import { PY_HELLO, ROOT, request, startTestFront, waitUntil, which, type TestFront } from './helpers.js';

/** The nice of process/thread `pid` ("self/task/TID" for a thread of this process). */
function niceOf(pid: number | string): number {
  return Number(statFields(pid)![19 - 3]);
}

/** The nice of each thread of this process. */
function ownThreadNices(): Set<number> {
  const out = new Set<number>();
  for (const tid of fs.readdirSync('/proc/self/task')) {
    const fields = statFields(`self/task/${tid}`);
    if (fields !== null) out.add(Number(fields[19 - 3])); // null: it ended meanwhile
  }
  return out;
}

/**
 * `upfront run -n 4 EXTRA` as root without `capability` (setpriv), in a session of its own when `ownSession`:
 * once it has served /Hello/1 and `meanwhile` (started with it, given its log so far) has resolved, its threads' nices
 * and its session's, then its log (stdout) after it stopped.
 */
async function runWithoutCapability(capability: string, extra: string[], ownSession = false,
  meanwhile: (log: () => string) => Promise<void> = async () => {}): Promise<{ log: string; nices: Set<number>; sessionNice: number | null }> {
  const proc: ChildProcess = spawn('setpriv', ['--bounding-set', `-${capability}`, '--inh-caps', `-${capability}`, '--', process.execPath, path.join(ROOT, 'dist/cli.js'), 'run',
    '--listen', '127.0.0.1:0', '--admin', 'off', '-n', '4', ...extra, '--', 'python3', PY_HELLO], { cwd: ROOT, detached: ownSession, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (c) => { out += c; });
  proc.stderr!.on('data', (c) => { err += c; });
  const exited = new Promise((r) => proc.once('exit', r));
  const alongside = meanwhile(() => out);
  alongside.catch(() => {}); // awaited below; a failure before that is the banner's
  try {
    await waitUntil(() => /serving on (http:\/\/\S+)/.test(err) || proc.exitCode !== null, 'the CLI prints its banner', 20_000);
    expect(proc.exitCode).toBeNull();
    const base = /serving on (http:\/\/\S+)/.exec(err)![1];
    expect((await request(`${base}/Hello/1`)).status).toBe(200);
    await alongside;
    const nices = new Set(fs.readdirSync(`/proc/${proc.pid}/task`).map((t) => niceOf(`${proc.pid}/task/${t}`)));
    return { log: out, nices, sessionNice: sessionNiceOf(proc.pid!) };
  } finally {
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** The front's log (pino's JSON lines on stdout), parsed. */
function logLines(log: string): Array<{ level: number; errno?: string; attempt?: number; msg: string }> {
  return log.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; errno?: string; attempt?: number; msg: string });
}

let front: TestFront | null = null;
afterEach(async () => { await front?.stop(); front = null; });

describe('the front\'s nice', () => {
  // The test runner's own session nice, read before any front runs: null where the kernel has no autogroup.
  const runnersSession = sessionNiceOf('self');

  it('niceForProcesses: the weight of N nice-0 processes (~1.25x a step), at most -10', () => {
    expect([1, 2, 3, 4, 8, 9, 16, 1024].map(niceForProcesses)).toEqual([0, -3, -5, -6, -9, -10, -10, -10]);
  });

  it('by default every thread of the front runs at the weight of its processes (nice -3 for 2), they (a restarted one too) at the nice it was started with; stopped, the threads get their own back', async () => {
    expect(ownThreadNices()).toEqual(new Set([0]));
    front = await startTestFront({ procs: 2, 'restart-backoff': 50, admin: '127.0.0.1:0', command: ['python3', PY_HELLO] });
    const f = front;
    expect((await request(`${f.url}/Hello/1`)).status).toBe(200);
    expect(ownThreadNices()).toEqual(new Set([-3]));
    const pids = f.pool.backends.map((b) => b.pid!);
    expect(pids.map(niceOf)).toEqual([0, 0]);
    process.kill(pids[0], 'SIGKILL');
    await waitUntil(() => f.pool.backends[0].state === 'ready' && f.pool.backends[0].pid !== pids[0], 'b0 restarted');
    expect(niceOf(f.pool.backends[0].pid!)).toBe(0);
    expect(niceOf(process.pid)).toBe(-3);
    // /stats: as the kernel has it
    type Stats = { front: { nice: number }; pools: Array<{ backends: Array<{ process: { nice: number } | null }> }> };
    let s: Stats | null = null;
    await waitUntil(async () => (s = JSON.parse((await request(`http://${f.adminAddress}/stats`)).body.toString()) as Stats).pools[0].backends.every((b) => b.process !== null), 'the processes sampled');
    expect(s!.front.nice).toBe(-3);
    expect(s!.pools[0].backends.map((b) => b.process!.nice)).toEqual([0, 0]);
    // This front does not lead its session (the test runner's): the session's nice is left alone.
    expect(sessionNiceOf('self')).toBe(runnersSession);
    await f.stop();
    front = null;
    expect(ownThreadNices()).toEqual(new Set([0]));
  });

  it('scaled, the front follows the weight of its processes: 1 → 0, 4 → -6, 2 → -3; its processes stay at 0', async () => {
    front = await startTestFront({ procs: 1, command: ['python3', PY_HELLO] });
    expect((await request(`${front.url}/Hello/1`)).status).toBe(200);
    expect(ownThreadNices()).toEqual(new Set([0]));
    await front.scale(4, 'test');
    expect(ownThreadNices()).toEqual(new Set([-6]));
    expect(front.pool.backends.map((b) => niceOf(b.pid!))).toEqual([0, 0, 0, 0]);
    await front.scale(2, 'test');
    expect(ownThreadNices()).toEqual(new Set([-3]));
    await front.stop();
    front = null;
    expect(ownThreadNices()).toEqual(new Set([0]));
  });

  it('front-nice 5: the front at 5, its processes still at the nice it was started with', async () => {
    front = await startTestFront({ procs: 1, 'front-nice': 5, command: ['python3', PY_HELLO] });
    expect((await request(`${front.url}/Hello/1`)).status).toBe(200);
    expect(ownThreadNices()).toEqual(new Set([5]));
    expect(niceOf(front.pool.backends[0].pid!)).toBe(0);
  });

  it('putProcessAtNice: every thread moves, a thread started after inherits it, restore() gives each its own back', async () => {
    const { restore, error } = putProcessAtNice(-3);
    let worker: Worker | null = null;
    try {
      expect(error).toBeNull();
      expect(ownThreadNices()).toEqual(new Set([-3]));
      const before = new Set(fs.readdirSync('/proc/self/task'));
      worker = new Worker('setInterval(() => {}, 1000)', { eval: true });
      await new Promise((resolve) => worker!.once('online', resolve));
      const started = fs.readdirSync('/proc/self/task').filter((t) => !before.has(t));
      expect(started.length).toBeGreaterThan(0);
      for (const tid of started) expect(niceOf(`self/task/${tid}`)).toBe(-3);
      // a child started through spawnAtStartNice gets the nice from before, the thread keeps -3
      const { result: child, error: spawnError } = spawnAtStartNice(() => spawn('sleep', ['5'], { stdio: 'ignore' }));
      try {
        expect(spawnError).toBeNull();
        expect(niceOf(child.pid!)).toBe(0);
        expect(os.getPriority()).toBe(-3);
      } finally {
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    } finally {
      restore();
      await worker?.terminate();
    }
    expect(ownThreadNices()).toEqual(new Set([0]));
    // nothing changed any more: spawnAtStartNice leaves the child at the caller's
    const { result: child } = spawnAtStartNice(() => spawn('sleep', ['5'], { stdio: 'ignore' }));
    expect(niceOf(child.pid!)).toBe(0);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
  });

  // Under autogroup scheduling a thread's nice counts only within its session (sched(7)); the
  // apps lead sessions of their own. A front leading its session (as systemd, setsid and
  // `upfront bench` start it) gives the session its nice; the apps' sessions stay as they were.
  it.skipIf(runnersSession === null)('a front leading its own session: the session at its nice too (-6 for 4 processes), its processes\' sessions at 0; /stats says both', async () => {
    const proc: ChildProcess = spawn(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'run', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0',
      '-n', '4', '--log-level', 'warn', '--', 'python3', PY_HELLO], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let err = '';
    proc.stderr!.on('data', (c) => { err += c; });
    const exited = new Promise((r) => proc.once('exit', r));
    try {
      await waitUntil(() => /\/stats/.test(err) || proc.exitCode !== null, 'the CLI prints its banner', 20_000);
      expect(proc.exitCode, err).toBeNull();
      expect(statFields(proc.pid!)![6 - 3], 'it leads its session').toBe(String(proc.pid));
      expect(sessionNiceOf(proc.pid!)).toBe(-6);
      expect(niceOf(proc.pid!)).toBe(-6);
      const base = /serving on (http:\/\/\S+)/.exec(err)![1];
      expect((await request(`${base}/Hello/1`)).status).toBe(200);
      const stats = /(http:\/\/\S+\/stats)/.exec(err)![1];
      type Stats = { front: { nice: number; sessionNice: number | null }; pools: Array<{ backends: Array<{ process: { pid: number; nice: number; sessionNice: number | null } | null }> }> };
      let s: Stats | null = null;
      await waitUntil(async () => (s = JSON.parse((await request(stats)).body.toString()) as Stats).pools[0].backends.every((b) => b.process !== null), 'the processes sampled');
      expect(s!.front).toMatchObject({ nice: -6, sessionNice: -6 });
      expect(s!.pools[0].backends.map((b) => [b.process!.nice, b.process!.sessionNice])).toEqual([[0, 0], [0, 0], [0, 0], [0, 0]]);
      for (const b of s!.pools[0].backends) {
        expect(statFields(b.process!.pid)![6 - 3], 'each app leads a session of its own').toBe(String(b.process!.pid));
        expect(sessionNiceOf(b.process!.pid)).toBe(0);
      }
    } finally {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    expect(sessionNiceOf('self'), 'the test runner\'s session untouched').toBe(runnersSession);
  }, 60_000);

  // Root without CAP_SYS_NICE may not lower its nice (EACCES), as an unprivileged user may not.
  it.skipIf(process.getuid?.() !== 0 || which('setpriv') === null)('refused (no CAP_SYS_NICE): the front keeps its nice and serves; said at info by default, a warning when asked for', async () => {
    const run = (extra: string[]) => runWithoutCapability('sys_nice', extra);
    const byDefault = await run([]);
    expect(byDefault.nices).toEqual(new Set([0]));
    const said = byDefault.log.split('\n').filter((l) => l.includes('could not set the front\'s nice')).map((l) => JSON.parse(l) as { level: number; errno: string; msg: string });
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ level: 30, errno: 'EACCES' });
    expect(said[0].msg).toMatch(/could not set the front's nice to -6 \(.*EACCES.*\): it keeps its own; CAP_SYS_NICE or a matching RLIMIT_NICE .* --front-nice 0 stops trying/);
    const asked = await run(['--front-nice', '-5']);
    expect(asked.nices).toEqual(new Set([0]));
    const warned = asked.log.split('\n').filter((l) => l.includes('could not set the front\'s nice')).map((l) => JSON.parse(l) as { level: number; errno: string });
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, errno: 'EACCES' });
  }, 60_000);

  // The kernel takes one autogroup nice write every 100 ms from processes without CAP_SYS_ADMIN, all of them together
  // (kernel/sched/autogroup.c): a helper without it writing its own session's nice in a loop keeps that window shut.
  // It writes -20 (it keeps CAP_SYS_NICE): its session then outweighs a busy machine's others, so it is on a core
  // when the window opens and the front's ten tries find it shut.
  const windowShutter = () => spawn('setpriv', ['--bounding-set', '-sys_admin', '--inh-caps', '-sys_admin', '--', 'sh', '-c', 'while :; do echo -20 > /proc/self/autogroup; done 2>/dev/null'], { detached: true, stdio: 'ignore' });
  const stopShutter = (helper: ChildProcess) => { try { process.kill(-helper.pid!, 'SIGKILL'); } catch { /* stopped already */ } };
  const canShut = process.getuid?.() === 0 && which('setpriv') !== null && sessionNiceOf('self') !== null;

  it.skipIf(!canShut)('the session write refused with EAGAIN every time while the threads moved: tried 10 times, then said so once, the threads at the weight of the processes', async () => {
    const helper = windowShutter();
    let ran: Awaited<ReturnType<typeof runWithoutCapability>>;
    try {
      ran = await runWithoutCapability('sys_admin', ['--log-level', 'debug'], true,
        (log) => waitUntil(() => log().includes('its session\'s nice could not be set') || log().includes('"msg":"the front runs at nice -6"'), 'the front sets its session\'s nice or gives up', 20_000));
    } finally {
      stopShutter(helper);
    }
    expect(ran.nices).toEqual(new Set([-6]));
    const lines = logLines(ran.log);
    const retried = lines.filter((l) => l.msg.includes('trying again in 150 ms'));
    expect(retried.map((l) => [l.level, l.errno, l.attempt])).toEqual(retried.map((_, i) => [20, 'EAGAIN', i + 1]));
    const said = lines.filter((l) => l.msg.includes('its session\'s nice could not be set'));
    const set = lines.filter((l) => l.msg === 'the front runs at nice -6');
    if (retried.length === 9 && set.length === 0) {
      expect(ran.sessionNice, 'its session kept its own').toBe(0);
      expect(said).toHaveLength(1);
      expect(said[0]).toMatchObject({ level: 30, errno: 'EAGAIN' });
      expect(said[0].msg).toMatch(/^the front's threads run at nice -6, but its session's nice could not be set \(10 tries over 1\.4 s\) \(.*EAGAIN.*\): against other sessions it keeps its own; the kernel takes one session nice write every 100 ms from processes without CAP_SYS_ADMIN, and another came first each time, --front-nice 0 stops trying$/);
    } else {
      // The helper was off its core when a window opened (a busy machine): a later try took it, as it should.
      expect(retried.length, 'refused at least once').toBeGreaterThan(0);
      expect(set).toHaveLength(1);
      expect(set[0].attempt).toBe(retried.length + 1);
      expect(ran.sessionNice).toBe(-6);
      expect(said).toHaveLength(0);
    }
  }, 60_000);

  it.skipIf(!canShut)('the session write refused with EAGAIN, then the window opens: a later try sets it, nothing said above debug', async () => {
    const helper = windowShutter();
    let ran: Awaited<ReturnType<typeof runWithoutCapability>>;
    try {
      ran = await runWithoutCapability('sys_admin', ['--log-level', 'debug'], true, async (log) => {
        await waitUntil(() => log().includes('trying again in 150 ms'), 'the first refusal', 20_000);
        stopShutter(helper);
        await waitUntil(() => log().includes('"msg":"the front runs at nice -6"'), 'a later try sets it', 20_000);
      });
    } finally {
      stopShutter(helper);
    }
    expect(ran.nices).toEqual(new Set([-6]));
    expect(ran.sessionNice, 'its session at the front\'s nice').toBe(-6);
    const lines = logLines(ran.log);
    const set = lines.find((l) => l.msg === 'the front runs at nice -6');
    expect(set?.attempt, 'set on a later try').toBeGreaterThan(1);
    expect(lines.filter((l) => l.errno === 'EAGAIN').every((l) => l.level === 20 && l.msg.includes('trying again in 150 ms'))).toBe(true);
    expect(lines.some((l) => l.msg.includes('could not be set'))).toBe(false);
  }, 60_000);
});
