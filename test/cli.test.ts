// The command line as a user runs it: real process, real signals.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RUN_OPTION_NAMES } from '../src/config/schema.js';
import { shebangNodeFlags } from '../src/nodeFlags.js';
import { PY_HELLO, ROOT, pidAlive, request, tmpDir, waitUntil } from './helpers.js';

const CLI = path.join(ROOT, 'dist/cli.js');
const running: ChildProcess[] = [];

afterEach(() => {
  for (const p of running.splice(0)) if (p.exitCode === null) p.kill('SIGKILL');
});

/** `node dist/cli.js ARGS`, or with `asBin` the file itself, as `upfront` runs: its shebang picks node and its flags. */
function runCli(args: string[], asBin = false): { proc: ChildProcess; stdout: () => string; stderr: () => string; exit: Promise<number | null> } {
  const proc = asBin ? spawn(CLI, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (c) => { out += c; });
  proc.stderr!.on('data', (c) => { err += c; });
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, stdout: () => out, stderr: () => err, exit };
}

/** Resolves with the first match of `re` in the process's stderr. */
function waitForOutput(proc: ChildProcess, re: RegExp, text: () => string, timeoutMs = 15_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = () => { const m = re.exec(text()); if (m) { cleanup(); resolve(m); } };
    const timer = setTimeout(() => { cleanup(); reject(new Error(`no ${re} in output within ${timeoutMs} ms:\n${text()}`)); }, timeoutMs);
    const onExit = () => { cleanup(); reject(new Error(`exited before printing ${re}:\n${text()}`)); };
    const cleanup = () => { clearTimeout(timer); proc.stderr!.off('data', check); proc.off('exit', onExit); };
    proc.stderr!.on('data', check);
    proc.on('exit', onExit);
    check();
  });
}

describe('bad input at the command line', () => {
  for (const [args, pattern] of [
    [['run', '--procs', 'many', '--', 'true'], /^upfront: procs: expected a whole number/],
    [['run', '--socket', 'both', '--', 'true'], /^upfront: socket: expected per-process or shared/],
    [['run', '--multithreaded', 'maybe', '--', 'true'], /^upfront: multithreaded: expected true, false or auto/],
    [['run', '--listen', 'nowhere', '--', 'true'], /^upfront: listen: expected HOST:PORT, PORT or unix:PATH/],
    [['run', '--no-such-flag'], /^upfront: unknown option '--no-such-flag'/],
    [['run'], /^upfront: command: --procs needs a backend command/],
    [['run', '--env', 'FOO', '--', 'true'], /^upfront: env: expected KEY=VALUE, got "FOO"$/m],
    [['run', '--cwd', '/nonexistent', '--', 'true'], /^upfront: cwd: \/nonexistent: no such directory \(ENOENT\)$/m],
    [['run', '--group', 'root', '--', 'true'], /^upfront: group: --group needs --user$/m],
    [['stats', '--admin', 'nowhere'], /^upfront: --admin: expected HOST:PORT, PORT or unix:PATH/],
    [['scale', 'abc'], /^upfront: procs: expected a whole number from 1 to 1024, got "abc"/],
    [['scale', '0'], /^upfront: procs: expected a whole number from 1 to 1024, got "0"/],
    [['nginx-conf', '--listen', 'unix:/x', '--', 'true'], /^upfront: listen: nginx-conf needs HOST:PORT/],
  ] as const) {
    it(`${args.join(' ')} → exit 2 with one line`, async () => {
      const r = runCli([...args]);
      expect(await r.exit).toBe(2);
      expect(r.stderr()).toMatch(pattern);
      expect(r.stderr().trim().split('\n')).toHaveLength(1);
    });
  }

  it('a config file with an unknown key or a bad value names it', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'bad.yaml'), 'procs: 2\nbaclog: 10\ncommand: python3 x.py\n');
    const r = runCli(['run', '-c', path.join(dir, 'bad.yaml')]);
    expect(await r.exit).toBe(2);
    expect(r.stderr()).toBe('upfront: (config): unknown option "baclog" (did you mean "backlog"?)\n');
    fs.writeFileSync(path.join(dir, 'bad2.yaml'), 'read-timeout: soon\ncommand: [python3, x.py]\n');
    const r2 = runCli(['run', '-c', path.join(dir, 'bad2.yaml')]);
    expect(await r2.exit).toBe(2);
    expect(r2.stderr()).toMatch(/^upfront: read-timeout: expected a duration/);
    fs.rmSync(dir, { recursive: true });
  });

  it('a command that does not exist: a clear line, no stack trace, exit 2 (bad input)', async () => {
    const r = runCli(['run', '--listen', '127.0.0.1:0', '--admin', 'off', '--', 'no-such-backend-cmd']);
    expect(await r.exit).toBe(2);
    expect(r.stderr()).toMatch(/backend command no-such-backend-cmd not found in PATH \(ENOENT\)/);
    expect(r.stderr()).not.toMatch(/\n\s+at /);
  });

  it('a port in use: a clear line, exit 1, no child left', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = runCli(['run', '--listen', `127.0.0.1:${port}`, '--admin', 'off', '--', 'python3', PY_HELLO]);
      expect(await r.exit).toBe(1);
      expect(r.stderr()).toMatch(new RegExp(`cannot listen on 127.0.0.1:${port}: address already in use \\(EADDRINUSE\\)`));
    } finally {
      blocker.close();
    }
  });

  it('a unix socket path taken by a live server: a clear line, exit 1', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'front.sock');
    const live = net.createServer();
    await new Promise<void>((r) => live.listen(sock, r));
    try {
      const r = runCli(['run', '--listen', `unix:${sock}`, '--admin', 'off', '--', 'python3', PY_HELLO]);
      expect(await r.exit).toBe(1);
      expect(r.stderr()).toMatch(/is taken by a live server/);
    } finally {
      live.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('graceful stop', () => {
  it('SIGTERM during 50 in-flight requests: all 50 complete, no child or socket left', async () => {
    const parent = tmpDir();
    const socketDir = path.join(parent, 'sockets');
    const r = runCli(['run', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '2', '--socket-dir', socketDir, '--', 'python3', PY_HELLO]);
    const [, base] = await waitForOutput(r.proc, /serving on (http:\/\/[\d.:]+)/, r.stderr);
    const [, admin] = await waitForOutput(r.proc, /curl (http:\/\/[\d.:]+)\/stats/, r.stderr);
    const stats = async () => (await (await fetch(`${admin}/stats`)).json()) as any;
    const pids: number[] = (await stats()).children.map((c: any) => c.pid);
    expect(pids).toHaveLength(2);
    expect(fs.readdirSync(socketDir).sort()).toEqual(['admin.token', 'b0.sock', 'b1.sock']);
    const replies = Array.from({ length: 50 }, () => request(`${base}/sleep/60`, { agent: false }));
    // All 50 arrived (queued, at a backend, or done already: 25 sleeps in a row per backend
    // take 1.5 s, so on a busy machine the first may end before the last arrives).
    await waitUntil(async () => {
      const p = (await stats()).pools[0];
      return p.queue.current + p.backends.reduce((a: number, b: any) => a + b.requests, 0) === 50;
    }, 'all 50 requests have reached the front');
    r.proc.kill('SIGTERM');
    const results = await Promise.all(replies);
    if (results.some((x) => x.status !== 200)) console.log(r.stdout().split('\n').filter((l) => !l.includes('"stream"')).join('\n'));
    expect(results.map((x) => x.status)).toEqual(Array(50).fill(200));
    expect(await r.exit).toBe(0);
    for (const pid of pids) expect(pidAlive(pid)).toBe(false);
    expect(fs.existsSync(socketDir)).toBe(false);
    expect(r.stdout()).toMatch(/"msg":"stopped"/);
    fs.rmSync(parent, { recursive: true, force: true });
  });
});

describe('started as the bin', () => {
  it('node runs with the flags of its shebang (the ones the bench reads), and serves', async () => {
    const flags = shebangNodeFlags(CLI);
    expect(flags).toEqual(expect.arrayContaining(['--max-semi-space-size=8', '--initial-old-space-size=64']));
    const r = runCli(['run', '--listen', '127.0.0.1:0', '--admin', 'off', '-n', '1', '--', 'python3', PY_HELLO], true);
    const [, base] = await waitForOutput(r.proc, /serving on (http:\/\/[\d.:]+)/, r.stderr);
    // env execs node in the same process: its argv is node, the flags, the file, the arguments.
    const argv = fs.readFileSync(`/proc/${r.proc.pid}/cmdline`, 'utf8').split('\0');
    expect(argv.slice(1, 2 + flags.length)).toEqual([...flags, CLI]);
    expect((await request(`${base}/Hello/3`)).status).toBe(200);
    r.proc.kill('SIGTERM');
    expect(await r.exit).toBe(0);
  });
});

describe('upfront killed', () => {
  it('SIGKILL: no child remains after 2 s', async () => {
    const r = runCli(['run', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '2', '--', 'python3', PY_HELLO]);
    const [, admin] = await waitForOutput(r.proc, /curl (http:\/\/[\d.:]+)\/stats/, r.stderr);
    const pids: number[] = ((await (await fetch(`${admin}/stats`)).json()) as any).children.map((c: any) => c.pid);
    expect(pids).toHaveLength(2);
    r.proc.kill('SIGKILL');
    await r.exit;
    await waitUntil(() => pids.every((p) => !pidAlive(p)), 'every child is gone', 2000);
  });
});

describe('the README and --help agree', () => {
  const cli = (args: string[]) => execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  const longFlags = (text: string) => new Set([...text.matchAll(/(?<![\w-])--([a-z][a-z-]*[a-z])/g)].map((m) => m[1]).filter((f) => f !== 'help'));

  it('every flag of run, stats, top, scale, reload and nginx-conf is in the README usage block, and only those', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const start = readme.indexOf('```\nupfront run [options]');
    expect(start).toBeGreaterThan(0);
    const block = readme.slice(start + 4, readme.indexOf('```', start + 4));
    // A section per subcommand: from a line "upfront SUB" to the next.
    const sections = new Map<string, string>();
    let current = '';
    for (const line of block.split('\n')) {
      const m = /^upfront (\S+)/.exec(line);
      if (m) current = m[1];
      sections.set(current, (sections.get(current) ?? '') + line + '\n');
    }
    expect([...sections.keys()]).toEqual(['run', 'stats', 'top', 'scale', 'reload', 'nginx-conf', '--version']);
    for (const sub of ['run', 'stats', 'top', 'scale', 'reload', 'nginx-conf']) {
      expect([...longFlags(sections.get(sub)!)].sort(), `upfront ${sub}`).toEqual([...longFlags(cli([sub, '--help']))].sort());
    }
    expect(longFlags(cli(['--help']))).toEqual(new Set(['version']));
  });

  it('every config key is a flag of upfront run, and every flag a config key', () => {
    const flags = longFlags(cli(['run', '--help']));
    flags.delete('config');
    expect([...flags].sort()).toEqual(RUN_OPTION_NAMES.filter((k) => k !== 'command').sort());
  });

  it('--version prints the version of package.json', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(cli(['--version'])).toBe(`${pkg.version}\n`);
  });
});
