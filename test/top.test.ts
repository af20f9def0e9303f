// `upfront top` in a pseudo-terminal (util-linux `script` gives it one; node-pty is
// not a dependency): it refreshes every second, highlights the pool while its front
// queue holds requests and a backend whose accept queue holds 80 % of its backlog,
// and q quits, leaving the terminal as it found it. The backends are held still
// (SIGSTOP) with requests on them, so the queues stay where the test put them.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PY_HELLO, ROOT, peer, request, spawnCli, waitUntil, type RunningCli } from './helpers.js';

const SCRIPT = peer('script'); // util-linux (Debian's bsdutils, essential)
const HIGHLIGHT = '\x1b[30;43m';

interface TopRun { output: () => string; frames: () => number; quit: () => Promise<number | null> }

/** Every `script` started, killed (with its group: top inside it) if a test ends early. */
const started: Array<import('node:child_process').ChildProcess> = [];

/** `upfront top` on a 220×50 pseudo-terminal; keys go in through script's stdin. */
function runTop(admin: string): TopRun {
  const cmd = `stty cols 220 rows 50; exec ${JSON.stringify(process.execPath)} ${JSON.stringify(path.join(ROOT, 'dist/cli.js'))} top --admin ${admin}`;
  const child = spawn(SCRIPT!, ['-qfec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TERM: 'xterm-256color' }, detached: true });
  started.push(child);
  let out = '';
  child.stdout.on('data', (c) => { out += c; });
  child.stderr.on('data', (c) => { out += c; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    output: () => out,
    frames: () => out.split('\x1b[J').length - 1, // complete frames: each ends with erase-below
    quit: async () => {
      child.stdin.write('q');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** The last complete frame, as lines (the pty may hand over half of the next one). */
function lastFrame(out: string): string[] {
  const end = out.lastIndexOf('\x1b[J');
  const frame = out.slice(out.lastIndexOf('\x1b[H', end) + 3, end);
  return frame.split('\n').map((l) => l.replace(/\x1b\[K/g, '').replace(/\r$/, ''));
}

describe.skipIf(!SCRIPT)('upfront top', () => {
  let cli: RunningCli | null = null;
  const held: number[] = [];
  const pending: Array<Promise<unknown>> = [];

  afterEach(async () => {
    for (const c of started.splice(0)) if (c.exitCode === null && c.signalCode === null) { try { process.kill(-c.pid!, 'SIGKILL'); } catch { /* gone */ } }
    for (const pid of held.splice(0)) { try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ } }
    await Promise.allSettled(pending.splice(0));
    await cli?.stop();
    cli = null;
  });

  /** Holds the front's only backend, then sends `n` requests that stay waiting. */
  async function hold(n: number): Promise<void> {
    const stats = JSON.parse((await request(`http://${cli!.admin}/stats`, { agent: false })).body.toString());
    const pid = stats.children[0].pid as number;
    process.kill(pid, 'SIGSTOP');
    held.push(pid);
    for (let i = 0; i < n; i++) pending.push(request(`${cli!.base}/Hello/1`, { agent: false }).catch(() => null));
  }

  const statsOf = async () => JSON.parse((await request(`http://${cli!.admin}/stats`, { agent: false })).body.toString());

  it('refreshes every second, highlights the pool while requests wait in the front queue, q quits', async () => {
    cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '1', '--', 'python3', PY_HELLO]);
    await hold(5);
    await waitUntil(async () => (await statsOf()).pools[0].queue.current >= 3, 'requests wait in the front queue');
    const top = runTop(cli.admin!);
    await waitUntil(() => top.frames() >= 3, 'three frames', 10_000);
    const out = top.output();
    expect(out.startsWith('\x1b[?1049h\x1b[?25l')).toBe(true); // alternate screen, cursor hidden
    const frame = lastFrame(out);
    const pool = frame.find((l) => l.includes('POOL app'))!;
    expect(pool.startsWith(HIGHLIGHT)).toBe(true);
    expect(pool).toMatch(/POOL app  least-conn, overflow queue  queue [1-4]\/65,536 /);
    const b0 = frame.find((l) => /^(\x1b\[[\d;]*m)?b0 /.test(l))!;
    expect(b0.startsWith(HIGHLIGHT)).toBe(false); // its accept queue is not near its backlog
    expect(b0).toMatch(/^b0\s+\d+\s+busy\s+[12]\/1( \+1p)?\s+\d\/1,024\s/);
    expect(b0).toMatch(/GET \/Hello\/1 [\d.,]+(ms|s)\s*$/); // the request it serves, and for how long
    expect(await top.quit()).toBe(0);
    expect(top.output().endsWith('\x1b[?25h\x1b[?1049l')).toBe(true); // the terminal as it was
  }, 40_000);

  it('highlights a backend whose accept queue holds 80 % of its backlog (overflow nginx)', async () => {
    cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '1', '--overflow', 'nginx', '--backlog', '4', '--retries', '0', '--', 'python3', PY_HELLO]);
    await hold(8);
    await waitUntil(async () => (await statsOf()).pools[0].backends[0].acceptQueue.current >= 4, 'the accept queue is at its backlog');
    const top = runTop(cli.admin!);
    await waitUntil(() => top.frames() >= 2, 'two frames', 10_000);
    const frame = lastFrame(top.output());
    const b0 = frame.find((l) => /^(\x1b\[[\d;]*m)?b0 /.test(l))!;
    expect(b0.startsWith(`${HIGHLIGHT}b0 `)).toBe(true);
    expect(b0).toMatch(/\s[45]\/4\s+5\s/); // current/backlog, max = backlog+1 (connect() got EAGAIN)
    expect(frame.find((l) => l.includes('POOL app'))!.startsWith(HIGHLIGHT)).toBe(false); // nothing in the front queue
    expect(await top.quit()).toBe(0);
  }, 40_000);
});
