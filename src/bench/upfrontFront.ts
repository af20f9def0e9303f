// Runs upfront for one run of a cell: `upfront run` on a free loopback port with
// its admin listener on a unix socket in a private temp dir; EAGAIN, queues and
// the backends' pids and last words come from its /stats.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { shebangNodeFlags } from '../nodeFlags.js';
import { exited, freePort, get, killGroup, processTrees, stopProcess, waitReady } from './processes.js';
import type { Protocol } from './results.js';
import { register, type RunningFront, type SwitchChoice } from './running.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'cli.js');

export interface UpfrontRunOptions {
  command: string[];
  path: string;
  backlog: number;
  /** fastcgi (default) or http: the app binds the socket upfront names in UPFRONT_SOCKET (with its own backlog). */
  protocol?: Protocol;
}

interface BackendStats {
  id?: string;
  state?: string;
  connectErrors: Record<string, number>;
  acceptQueue?: { max: number };
  multithreaded?: boolean;
  multiplexed?: boolean;
  down?: { lastExit?: string; stderrTail?: string[] };
}

/** The last log record upfront wrote (JSON lines; its banner is not one). */
function lastRecord(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.startsWith('{'));
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const r = JSON.parse(lines[i]) as { msg?: string; err?: { message?: string } };
      return [r.msg, r.err?.message].filter(Boolean).join(': ');
    } catch { /* a torn line */ }
  }
  return '';
}

/** What the down backends said: "b0 exited with code 1 (stderr: ...)". */
function downCause(backends: BackendStats[]): string | null {
  const down = backends.filter((b) => b.state === 'down');
  if (backends.length === 0 || down.length < backends.length) return null;
  const b = down[0];
  const tail = b.down?.stderrTail?.filter((l) => l.trim()) ?? [];
  return `every backend is down: ${b.id ?? 'the backend'} ${b.down?.lastExit ?? 'is not running'}${tail.length ? `; backend stderr: ${tail[tail.length - 1].trim()}` : ''}`;
}

export async function startUpfront(opts: UpfrontRunOptions, procs: number, overflow: string, sw: SwitchChoice | null): Promise<RunningFront> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'upfront-bench-'));
  const admin = path.join(dir, 'admin.sock');
  const port = await freePort();
  const args = [...shebangNodeFlags(CLI), CLI, 'run', '--listen', `127.0.0.1:${port}`, '--admin', `unix:${admin}`, '-n', String(procs), '--overflow', overflow,
    '--sample-interval', '100', '--log-level', 'error', '--log-format', 'json', '--socket-dir', path.join(dir, 'sockets')];
  // An HTTP app binds its socket itself: its backlog is the app's, not ours to set.
  if (opts.protocol === 'http') args.push('--protocol', 'http');
  else args.push('--backlog', String(opts.backlog));
  if (sw) args.push('--multithreaded', String(sw.multithreaded), '--multiplexed', String(sw.multiplexed));
  args.push('--', ...opts.command);
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  proc.stderr!.on('data', (c) => { stderr = (stderr + c).slice(-64 * 1024); });
  const removeDir = () => fs.rmSync(dir, { recursive: true, force: true });
  const unregister = register(() => { killGroup(proc, 'SIGKILL'); removeDir(); });
  const stop = async () => { unregister(); await stopProcess(proc); removeDir(); };
  const stats = async () => JSON.parse((await get({ socketPath: admin, path: '/stats' })).body);
  const backends = async (): Promise<BackendStats[]> => (await stats()).pools[0].backends;
  const lastWords = async () => {
    const parts: string[] = [];
    const rec = lastRecord(stderr);
    if (rec) parts.push(`upfront: ${rec}`);
    try {
      const down = downCause(await backends());
      if (down) parts.push(down);
    } catch { /* not answering: its log says why */ }
    return parts.join('; ') || 'neither upfront nor the backends said anything';
  };
  try {
    await waitReady(port, opts.path, 'upfront', async () => {
      if (exited(proc)) return `upfront exited (${proc.exitCode !== null ? `code ${proc.exitCode}` : proc.signalCode}): ${lastRecord(stderr) || stderr.trim().split('\n').pop() || 'no output'}`;
      try { return downCause(await backends()); } catch { return null; }
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    front: 'upfront',
    port,
    frontPids: () => (proc.pid !== undefined && !exited(proc) ? [proc.pid] : []),
    // With whatever they forked (gunicorn's workers): their CPU and memory are the backends' too.
    backendPids: async () => processTrees((await stats()).children.map((c: { pid: number | null }) => c.pid).filter(Boolean)),
    eagain: async () => (await backends()).reduce((a, b) => a + (b.connectErrors.EAGAIN ?? 0), 0),
    acceptQueueMax: async () => Math.max(0, ...(await backends()).map((b) => b.acceptQueue?.max ?? 0)),
    frontQueueMax: async () => (await stats()).pools[0].queue.max,
    switches: async () => {
      const b = (await backends())[0];
      return { multithreaded: Boolean(b?.multithreaded), multiplexed: Boolean(b?.multiplexed) };
    },
    lastWords,
    stop,
  };
}
