// upfront killed with SIGKILL: nothing of any backend's process tree survives it
// (workers the children forked included: php-cgi's PHP_FCGI_CHILDREN, gunicorn's
// workers), its socket dir goes, and a later start removes socket dirs whose
// owner is gone. The watchdog that does it holds no backend socket and does not
// outlive its job.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessGroupWatchdog } from '../src/supervisor/watchdog.js';
import { FIXTURES, PY_HELLO, ROOT, peer, request, spawnCli, startTestFront, tmpDir, waitUntil, type RunningCli, type TestFront } from './helpers.js';

const PHP_CGI = peer('php-cgi');
const SYSTEM_PYTHON = '/usr/bin/python3';
const hasGunicorn = fs.existsSync('/usr/lib/python3/dist-packages/gunicorn');
if (process.env.CI && !hasGunicorn) throw new Error('python3-gunicorn is not installed; .ci/run should have installed it');
const FAULT = path.join(FIXTURES, 'fault-backend.mjs');

/** pid → [ppid, state] of every process, from /proc/PID/stat (comm may hold spaces and parens). */
function processTable(): Map<number, { ppid: number; state: string }> {
  const table = new Map<number, { ppid: number; state: string }>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      table.set(Number(name), { state: rest[0], ppid: Number(rest[1]) });
    } catch { /* gone meanwhile */ }
  }
  return table;
}

/** Every descendant of `root`. */
function descendants(root: number): number[] {
  const table = processTable();
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    const parent = todo.pop()!;
    for (const [pid, p] of table) if (p.ppid === parent) { out.push(pid); todo.push(pid); }
  }
  return out;
}

/** Running (a zombie has finished: only its parent's wait is missing). */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function commandOf(pid: number): string {
  try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim(); } catch { return '?'; }
}

let cli: RunningCli | null = null;
afterEach(async () => { await cli?.stop(); cli = null; });

/** kill -9 upfront; every process of its tree and its socket dir must be gone within 1 s. */
async function killAndCheck(c: RunningCli, tree: number[]): Promise<void> {
  const socketDir = path.join(os.tmpdir(), `upfront-${c.proc.pid}`);
  expect(fs.existsSync(socketDir)).toBe(true);
  const exited = new Promise((r) => c.proc.once('exit', r));
  c.proc.kill('SIGKILL');
  await exited;
  try {
    await waitUntil(() => tree.every((p) => !running(p)) && !fs.existsSync(socketDir), 'the whole tree and the socket dir are gone', 1000);
  } catch (err) {
    const left = tree.filter(running).map((p) => `${p} ${commandOf(p)}`);
    throw new Error(`${(err as Error).message}; still running: ${left.join('; ') || 'none'}; socket dir ${fs.existsSync(socketDir) ? `still there: ${fs.readdirSync(socketDir).join(', ')}` : 'gone'}`);
  }
}

describe('upfront killed with SIGKILL', () => {
  it.skipIf(!PHP_CGI)('php-cgi with PHP_FCGI_CHILDREN=2: the manager and its workers die with it', async () => {
    cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '2', '--env', 'PHP_FCGI_CHILDREN=2', '--', PHP_CGI!]);
    const c = cli;
    // Two managers, each with two workers (forked after the manager started).
    await waitUntil(() => descendants(c.proc.pid!).filter((p) => commandOf(p).includes('php-cgi')).length === 6, 'two php-cgi managers with two workers each', 10_000);
    const tree = descendants(c.proc.pid!);
    expect(tree.some((p) => commandOf(p).startsWith('/bin/sh -c'))).toBe(true); // the watchdog is part of the tree too
    await killAndCheck(c, tree);
  }, 30_000);

  it.skipIf(!hasGunicorn)('gunicorn with 2 workers (--protocol http): master and workers die with it', async () => {
    cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '1', '--protocol', 'http', '--',
      SYSTEM_PYTHON, '-m', 'gunicorn', '--workers', '2', '--bind', 'unix:{socket}', '--chdir', path.join(ROOT, 'examples/python'), 'hello:application']);
    const c = cli;
    expect((await request(`${c.base}/Hello/1`)).status).toBe(200);
    await waitUntil(() => descendants(c.proc.pid!).filter((p) => commandOf(p).includes('gunicorn')).length === 3, 'a gunicorn master and two workers', 10_000);
    await killAndCheck(c, descendants(c.proc.pid!));
  }, 30_000);
});

describe('stale socket dirs', () => {
  const made: string[] = [];
  afterEach(() => { for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true }); });

  it('a start removes upfront-PID dirs whose PID is not a running upfront, and says so; others are kept', async () => {
    // A temp dir of its own (TMPDIR): fronts that other test files start meanwhile clean /tmp too.
    const tmp = tmpDir('upfront-stale-');
    made.push(tmp);
    const env = { ...process.env, TMPDIR: tmp };
    const gone = path.join(tmp, 'upfront-99999999'); // beyond any pid_max: never running
    const withForeignFile = path.join(tmp, 'upfront-99999998');
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' }); // running, but not upfront
    const notUpfront = path.join(tmp, `upfront-${sleeper.pid}`);
    const notOurs = path.join(tmp, 'upfront-99999997-x'); // not named as upfront names them
    try {
      for (const d of [gone, withForeignFile, notUpfront, notOurs]) {
        fs.mkdirSync(d, { mode: 0o700 });
        fs.writeFileSync(path.join(d, 'b0.sock'), '');
        fs.writeFileSync(path.join(d, 'admin.token'), 'x');
      }
      fs.writeFileSync(path.join(withForeignFile, 'notes.txt'), 'mine');
      cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '1', '--', process.execPath, FAULT, 'ok'], { env });
      expect(fs.existsSync(gone)).toBe(false);
      expect(fs.existsSync(notUpfront)).toBe(false);
      expect(fs.readdirSync(withForeignFile)).toEqual(['notes.txt']);
      expect(fs.readdirSync(notOurs).sort()).toEqual(['admin.token', 'b0.sock']);
      const ownDir = path.join(tmp, `upfront-${cli.proc.pid}`);
      expect(fs.existsSync(ownDir)).toBe(true);
      await waitUntil(() => /removed stale socket dir .*upfront-99999999 \(pid 99999999 is not a running upfront\)/.test(cli!.stdout()), 'the log names the stale dir');
      expect(cli.stdout()).toMatch(new RegExp(`removed stale socket dir .*upfront-${sleeper.pid} `));
      expect(cli.stdout()).toMatch(/stale socket dir .*upfront-99999998 \(pid 99999998 is not running\): removed upfront's files, kept 1 other/);

      // A second upfront leaves the first one's dir alone: its owner is a running upfront.
      const second = await spawnCli(['--listen', '127.0.0.1:0', '--admin', 'off', '-n', '1', '--', process.execPath, FAULT, 'ok'], { env });
      try {
        expect(fs.existsSync(ownDir)).toBe(true);
        expect((await request(`${cli.base}/x`)).body.toString()).toBe('ok');
      } finally {
        await second.stop();
      }
    } finally {
      sleeper.kill('SIGKILL');
      await cli?.stop(); // before its TMPDIR goes
      cli = null;
    }
  }, 30_000);
});

describe('the watchdog', () => {
  let front: TestFront | null = null;
  afterEach(async () => { await front?.stop(); front = null; });

  it('holds no backend socket (its only socket is its stdin pipe) and exits once its front has stopped', async () => {
    front = await startTestFront({ procs: 2, command: ['python3', PY_HELLO] });
    const watchdog = ProcessGroupWatchdog.get(pino({ level: 'silent' })).pid;
    expect(watchdog).toBeGreaterThan(1);
    const sockets = fs.readdirSync(`/proc/${watchdog}/fd`).filter((fd) => fs.readlinkSync(`/proc/${watchdog}/fd/${fd}`).startsWith('socket:'));
    expect(sockets).toEqual(['0']);
    await front.stop();
    front = null;
    await waitUntil(() => !running(watchdog!), 'the watchdog exits', 2000);
  });
});
