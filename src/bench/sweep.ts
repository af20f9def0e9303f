// `upfront bench`: the process-count experiment. For every cell (front × overflow ×
// switches × procs) start the front on loopback with its backends, warm up, load it
// for a bounded time, and read throughput, latency, errors, EAGAIN, queues, CPU and
// memory from the load tool, /proc and upfront's /stats (or nginx's error log).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { acceptQueueOf } from '../native/sock.js';
import { runLoad, type LoadTool } from './load.js';
import { nginxConf } from './nginxConf.js';
import { childPids, cpuSeconds, rssMb } from '../stats/proc.js';
import { recommend } from './report.js';
import { summarize } from './results.js';
import type { BenchResults, Cell, CellMetrics } from './results.js';

export interface SwitchChoice { multithreaded: boolean; multiplexed: boolean }

export interface BenchOptions {
  command: string[];
  procs: number[];
  /** null: upfront asks the backend (GET_VALUES). */
  switches: Array<SwitchChoice | null>;
  overflow: string[];
  fronts: Array<'upfront' | 'nginx'>;
  path: string;
  concurrency: number;
  durationSec: number;
  warmupSec: number;
  repeat: number;
  load: LoadTool;
  backlog: number;
  commandLine: string;
  /** Progress lines (a bar per cell when stderr is a terminal). */
  progress(text: string, done: boolean): void;
}

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'cli.js');

/** Everything running now, stopped on Ctrl-C or at the end. */
const running = new Set<() => void>();
export function stopEverything(): void {
  for (const stop of running) { try { stop(); } catch { /* best effort */ } }
  running.clear();
}

export function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin'])) {
    const p = path.join(dir, cmd);
    try { fs.accessSync(p, fs.constants.X_OK); return p; } catch { /* next */ }
  }
  return null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

function get(options: http.RequestOptions, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function waitReady(port: number, urlPath: string, proc: ChildProcess, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${what} exited before it answered`);
    try {
      if ((await get({ host: '127.0.0.1', port, path: urlPath })).status === 200) return;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`${what} did not answer 200 on ${urlPath} within 20 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function killGroup(proc: ChildProcess, sig: NodeJS.Signals): void {
  if (proc.pid === undefined || proc.exitCode !== null) return;
  try { process.kill(-proc.pid, sig); } catch { try { proc.kill(sig); } catch { /* gone */ } }
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  killGroup(proc, 'SIGTERM');
  const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

interface Running {
  port: number;
  frontPids(): number[];
  backendPids(): Promise<number[]>;
  /** Counters read before and after the measured window. */
  eagain(): Promise<number | null>;
  acceptQueueMax(): Promise<number | null>;
  frontQueueMax(): Promise<number | null>;
  switches(): Promise<SwitchChoice>;
  stop(): Promise<void>;
}

async function startUpfront(opts: BenchOptions, procs: number, overflow: string, sw: SwitchChoice | null): Promise<Running> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'upfront-bench-'));
  const admin = path.join(dir, 'admin.sock');
  const port = await freePort();
  const args = [CLI, 'run', '--listen', `127.0.0.1:${port}`, '--admin', `unix:${admin}`, '-n', String(procs), '--overflow', overflow,
    '--backlog', String(opts.backlog), '--sample-interval', '100', '--log-level', 'error', '--socket-dir', path.join(dir, 'sockets')];
  if (sw) args.push('--multithreaded', String(sw.multithreaded), '--multiplexed', String(sw.multiplexed));
  args.push('--', ...opts.command);
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  proc.stderr!.on('data', (c) => { stderr += c; });
  const stop = async () => { await stopProcess(proc); fs.rmSync(dir, { recursive: true, force: true }); };
  const stopNow = () => { killGroup(proc, 'SIGKILL'); fs.rmSync(dir, { recursive: true, force: true }); };
  running.add(stopNow);
  try {
    await waitReady(port, opts.path, proc, 'upfront');
  } catch (err) {
    await stop();
    running.delete(stopNow);
    throw new Error(`${(err as Error).message}${stderr ? `: ${stderr.trim().split('\n').pop()}` : ''}`);
  }
  const stats = async () => JSON.parse((await get({ socketPath: admin, path: '/stats' })).body);
  return {
    port,
    frontPids: () => [proc.pid!],
    backendPids: async () => (await stats()).children.map((c: { pid: number | null }) => c.pid).filter(Boolean),
    eagain: async () => (await stats()).pools[0].backends.reduce((a: number, b: any) => a + (b.connectErrors.EAGAIN ?? 0), 0),
    acceptQueueMax: async () => Math.max(0, ...(await stats()).pools[0].backends.map((b: any) => b.acceptQueue?.max ?? 0)),
    frontQueueMax: async () => (await stats()).pools[0].queue.max,
    switches: async () => {
      const b = (await stats()).pools[0].backends[0];
      return { multithreaded: Boolean(b?.multithreaded), multiplexed: Boolean(b?.multiplexed) };
    },
    stop: async () => { running.delete(stopNow); await stop(); },
  };
}

async function startNginx(opts: BenchOptions, procs: number): Promise<Running> {
  const nginx = which('nginx');
  const spawnFcgi = which('spawn-fcgi');
  if (!nginx) throw new Error('nginx is not installed: apt-get install nginx-light');
  if (!spawnFcgi) throw new Error('spawn-fcgi is not installed: apt-get install spawn-fcgi');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'upfront-bench-nginx-'));
  fs.chmodSync(dir, 0o755); // nginx's workers run as www-data when started as root: they must reach the socket
  // nginx creates its temp dirs (one level, under the prefix) itself.
  const sock = path.join(dir, 'backend.sock');
  const pidFile = path.join(dir, 'spawn-fcgi.pid');
  const port = await freePort();
  // spawn-fcgi forks the children and exits; their pids land in the pid file.
  // spawn-fcgi execs without a PATH search: give it the full path of the command.
  const app = opts.command[0].includes('/') ? path.resolve(opts.command[0]) : which(opts.command[0]) ?? opts.command[0];
  const sf = spawnSync(spawnFcgi, ['-s', sock, '-M', '0666', '-b', String(opts.backlog), '-F', String(procs), '-P', pidFile, '--', app, ...opts.command.slice(1)], { encoding: 'utf8' });
  const backendPids = () => (fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8').split(/\s+/).filter(Boolean).map(Number) : []);
  const killBackends = (sig: NodeJS.Signals) => { for (const p of backendPids()) { try { process.kill(p, sig); } catch { /* gone */ } } };
  if (sf.status !== 0) {
    killBackends('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`spawn-fcgi failed: ${(sf.stderr || sf.stdout).trim()}`);
  }
  fs.writeFileSync(path.join(dir, 'nginx.conf'), nginxConf({ listenHost: '127.0.0.1', listenPort: port, sockets: [sock], procsPerSocket: procs, backlog: opts.backlog, command: opts.command, documentRoot: process.cwd(), prefixRelative: true }));
  const proc = spawn(nginx, ['-p', dir + '/', '-c', 'nginx.conf'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  proc.stderr!.on('data', (c) => { stderr += c; });
  let sampler: NodeJS.Timeout | null = null;
  let queueMax = 0;
  const stopNow = () => { if (sampler) clearInterval(sampler); killGroup(proc, 'SIGKILL'); killBackends('SIGKILL'); fs.rmSync(dir, { recursive: true, force: true }); };
  running.add(stopNow);
  try {
    await waitReady(port, opts.path, proc, 'nginx');
  } catch (err) {
    stopNow();
    running.delete(stopNow);
    throw new Error(`${(err as Error).message}${stderr ? `: ${stderr.trim().split('\n').pop()}` : ''}`);
  }
  sampler = setInterval(() => { const q = acceptQueueOf(sock); if (q && q.queued > queueMax) queueMax = q.queued; }, 100);
  const errorLog = path.join(dir, 'error.log');
  return {
    port,
    frontPids: () => [proc.pid!, ...childPids(proc.pid!)],
    backendPids: async () => backendPids(),
    eagain: async () => {
      try { return (fs.readFileSync(errorLog, 'utf8').match(/Resource temporarily unavailable/g) ?? []).length; } catch { return 0; }
    },
    acceptQueueMax: async () => queueMax,
    frontQueueMax: async () => null,
    switches: async () => ({ multithreaded: false, multiplexed: false }),
    stop: async () => {
      running.delete(stopNow);
      if (sampler) clearInterval(sampler);
      await stopProcess(proc);
      killBackends('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function measure(opts: BenchOptions, front: Running, label: string): Promise<CellMetrics> {
  const url = `http://127.0.0.1:${front.port}${opts.path}`;
  if (opts.warmupSec > 0) {
    opts.progress(`${label}: warming up ${opts.warmupSec} s`, false);
    await runLoad(opts.load, url, opts.concurrency, opts.warmupSec);
  }
  const backends = await front.backendPids();
  const cpu = () => ({ front: front.frontPids().reduce((a, p) => a + cpuSeconds(p), 0), backends: backends.reduce((a, p) => a + cpuSeconds(p), 0) });
  const eagain0 = await front.eagain();
  const cpu0 = cpu();
  const started = Date.now();
  const tick = setInterval(() => {
    const frac = Math.min(1, (Date.now() - started) / 1000 / opts.durationSec);
    opts.progress(`${label}: [${'#'.repeat(Math.round(frac * 30)).padEnd(30, '.')}] ${Math.round(frac * 100)}%`, false);
  }, 500);
  let load;
  try {
    load = await runLoad(opts.load, url, opts.concurrency, opts.durationSec);
  } finally {
    clearInterval(tick);
  }
  const cpu1 = cpu();
  const eagain1 = await front.eagain();
  const requests = Math.max(1, load.requests);
  return {
    rps: Math.round((load.requests / load.durationSec) * 100) / 100,
    requests: load.requests,
    latencyMs: load.latencyMs,
    non2xx: load.non2xx,
    socketErrors: load.socketErrors,
    eagain: eagain0 === null || eagain1 === null ? null : eagain1 - eagain0,
    acceptQueueMax: await front.acceptQueueMax(),
    frontQueueMax: await front.frontQueueMax(),
    cpuFrontSecPer1000: Math.round(((cpu1.front - cpu0.front) / requests) * 1000 * 1000) / 1000,
    cpuBackendSecPer1000: Math.round(((cpu1.backends - cpu0.backends) / requests) * 1000 * 1000) / 1000,
    memFrontMb: Math.round(front.frontPids().reduce((a, p) => a + rssMb(p), 0) * 10) / 10,
    memBackendMb: Math.round(backends.reduce((a, p) => a + rssMb(p), 0) * 10) / 10,
  };
}

export async function runBench(opts: BenchOptions): Promise<BenchResults> {
  const plan: Array<{ front: 'upfront' | 'nginx'; overflow: string | null; sw: SwitchChoice | null; procs: number }> = [];
  for (const procs of opts.procs) {
    for (const front of opts.fronts) {
      if (front === 'nginx') plan.push({ front, overflow: null, sw: null, procs });
      else for (const overflow of opts.overflow) for (const sw of opts.switches) plan.push({ front, overflow, sw, procs });
    }
  }
  const startedAt = new Date().toISOString();
  const cells: Cell[] = [];
  for (const [i, p] of plan.entries()) {
    const label = `[${i + 1}/${plan.length}] ${p.front}${p.overflow ? ` (${p.overflow})` : ''}${p.sw ? ` mt=${p.sw.multithreaded} mpx=${p.sw.multiplexed}` : ''} procs=${p.procs}`;
    const cell: Cell = { front: p.front, overflow: p.overflow, procs: p.procs, switches: p.sw ?? { multithreaded: false, multiplexed: false }, repeats: [], median: null, min: null, max: null, error: null };
    try {
      for (let r = 0; r < opts.repeat; r++) {
        const front = p.front === 'nginx' ? await startNginx(opts, p.procs) : await startUpfront(opts, p.procs, p.overflow!, p.sw);
        try {
          if (r === 0 && !p.sw) cell.switches = await front.switches();
          cell.repeats.push(await measure(opts, front, opts.repeat > 1 ? `${label} run ${r + 1}/${opts.repeat}` : label));
        } finally {
          await front.stop();
        }
      }
      Object.assign(cell, summarize(cell.repeats));
      const m = cell.median!;
      opts.progress(`${label}: ${m.rps} req/s, p99 ${m.latencyMs.p99} ms, non-2xx ${m.non2xx}, EAGAIN ${m.eagain ?? '-'}`, true);
    } catch (err) {
      cell.error = (err as Error).message;
      opts.progress(`${label}: skipped: ${cell.error}`, true);
    }
    cells.push(cell);
  }
  let nginxVersion: string | null = null;
  const nginx = which('nginx');
  if (nginx) nginxVersion = (spawnSync(nginx, ['-v'], { encoding: 'utf8' }).stderr ?? '').trim().replace(/^nginx version: /, '') || null;
  const results: BenchResults = {
    command: opts.commandLine,
    startedAt,
    machine: { cores: os.cpus().length, kernel: `${os.type()} ${os.release()}`, node: process.version, nginx: nginxVersion },
    settings: { path: opts.path, concurrency: opts.concurrency, durationSec: opts.durationSec, warmupSec: opts.warmupSec, repeat: opts.repeat, load: opts.load, backend: opts.command.join(' ') },
    cells,
    recommendation: null,
  };
  results.recommendation = recommend(results);
  return results;
}
