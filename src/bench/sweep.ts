// `upfront bench`: the process-count experiment. For every cell (front × overflow ×
// switches × procs) start the front on loopback with its backends, warm up, load it
// for a bounded time, and read throughput, latency, every failed request, EAGAIN,
// queues, CPU and memory from the load tool, /proc, the front's logs and upfront's /stats.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { LoadError, LoadHung, runLoad, type LoadTool } from './load.js';
import { missingPeer, peerProcsLimit, peerVersion, startPeer } from './peerFront.js';
import { cpuByPid, cpuSince, which } from './processes.js';
import { recommend } from './report.js';
import { failuresOfCell, summarize, successfulRequests, type BenchResults, type Cell, type CellMetrics, type FrontName, type PeerFrontName, type Protocol } from './results.js';
import type { RunningFront, SwitchChoice } from './running.js';
import { startUpfront } from './upfrontFront.js';
import { machineCpu, ownAndReapedCpuSeconds, rssMb } from '../stats/proc.js';

export { stopEverything } from './running.js';
export { which } from './processes.js';
export type { SwitchChoice } from './running.js';

export interface BenchOptions {
  command: string[];
  /** How every front talks to the backends: FastCGI, or HTTP over one unix socket per process. */
  protocol: Protocol;
  procs: number[];
  /** null: upfront asks the backend (GET_VALUES). */
  switches: Array<SwitchChoice | null>;
  overflow: string[];
  fronts: FrontName[];
  path: string;
  concurrency: number;
  durationSec: number;
  warmupSec: number;
  repeat: number;
  load: LoadTool;
  backlog: number;
  commandLine: string;
  /** Where the first generated config of each peer front is copied (next to results.json). */
  configDir?: string;
  /** Told the path of each config copied there. */
  onConfig?(file: string): void;
  /** Progress lines (a bar per cell when stderr is a terminal). */
  progress(text: string, done: boolean): void;
}

async function measure(opts: BenchOptions, front: RunningFront, label: string): Promise<{ metrics: CellMetrics; notes: string[] }> {
  const url = `http://127.0.0.1:${front.port}${opts.path}`;
  if (opts.warmupSec > 0) {
    opts.progress(`${label}: warming up ${opts.warmupSec} s`, false);
    await runLoad(opts.load, url, opts.concurrency, opts.warmupSec);
  }
  const backends = await front.backendPids();
  const frontCpu0 = cpuByPid(front.frontPids());
  const backendCpu0 = cpuByPid(backends);
  const machine0 = machineCpu();
  const eagain0 = await front.eagain();
  const load0 = ownAndReapedCpuSeconds();
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
  const cpuLoad = ownAndReapedCpuSeconds() - load0;
  const frontPidsNow = front.frontPids();
  const cpuFront = cpuSince(frontCpu0, frontPidsNow);
  const cpuBackends = cpuSince(backendCpu0, backends);
  const machine1 = machineCpu();
  const machine = machine0 && machine1 && machine1.all > machine0.all
    ? { busy: machine1.busy - machine0.busy, all: machine1.all - machine0.all } : null;
  const eagain1 = await front.eagain();
  const requests = Math.max(1, load.requests);
  const metrics: CellMetrics = {
    rps: load.rps,
    requests: load.requests,
    latencyMs: load.latencyMs,
    failures: load.failures,
    eagain: eagain0 === null || eagain1 === null ? null : eagain1 - eagain0,
    acceptQueueMax: await front.acceptQueueMax(),
    frontQueueMax: await front.frontQueueMax(),
    cpuFrontSecPer1000: Math.round((cpuFront / requests) * 1000 * 1000) / 1000,
    cpuBackendSecPer1000: Math.round((cpuBackends / requests) * 1000 * 1000) / 1000,
    cpuMachineSecPer1000: machine ? Math.round((machine.busy / requests) * 1000 * 1000) / 1000 : null,
    machineBusyPct: machine ? Math.round((machine.busy / machine.all) * 1000) / 10 : null,
    cpuLoadSecPer1000: Math.round((cpuLoad / requests) * 1000 * 1000) / 1000,
    memFrontMb: Math.round(frontPidsNow.reduce((a, p) => a + rssMb(p), 0) * 10) / 10,
    memBackendMb: Math.round(backends.reduce((a, p) => a + rssMb(p), 0) * 10) / 10,
  };
  return { metrics, notes: load.notes };
}

interface PlannedCell { front: FrontName; overflow: string | null; sw: SwitchChoice | null; procs: number }

/**
 * The fronts that can run here with this protocol, and one reason per front
 * that cannot — at all (not installed) or at some of the process counts (h2o
 * 2.2 proxies HTTP to one backend): `runsAt` says which cells to plan.
 */
export function availableFronts(fronts: FrontName[], protocol: Protocol = 'fastcgi', procs: number[] = []): {
  run: FrontName[]; skipped: Array<{ front: FrontName; reason: string }>; runsAt(front: FrontName, procs: number): boolean;
} {
  const run: FrontName[] = [];
  const skipped: Array<{ front: FrontName; reason: string }> = [];
  const limits = new Map<FrontName, number>();
  for (const f of fronts) {
    const why = f === 'upfront' ? null : missingPeer(f, protocol);
    if (why) { skipped.push({ front: f, reason: why }); continue; }
    const limit = f === 'upfront' ? null : peerProcsLimit(f, protocol);
    const over = limit ? procs.filter((p) => p > limit.count) : [];
    if (limit && over.length > 0) {
      limits.set(f, limit.count);
      skipped.push({ front: f, reason: `not at ${over.join(', ')} processes: ${limit.why}` });
      if (over.length === procs.length) continue;
    }
    run.push(f);
  }
  return { run, skipped, runsAt: (f, p) => run.includes(f) && p <= (limits.get(f) ?? Infinity) };
}

function startFront(opts: BenchOptions, p: PlannedCell, keepConfig: boolean): Promise<RunningFront> {
  if (p.front === 'upfront') return startUpfront(opts, p.procs, p.overflow!, p.sw);
  return startPeer(p.front, { ...opts, configDir: keepConfig ? opts.configDir : undefined }, p.procs);
}

function toolVersion(tool: LoadTool): string | null {
  if (tool === 'autocannon') {
    try { return `autocannon ${(createRequire(import.meta.url)('autocannon/package.json') as { version: string }).version}`; } catch { return 'autocannon'; }
  }
  const bin = which(tool);
  if (!bin) return null;
  // siege writes ~/.siege on its first run: give it a home of its own.
  const home = tool === 'siege' ? fs.mkdtempSync(path.join(os.tmpdir(), 'upfront-bench-siege-')) : null;
  try {
    const r = spawnSync(bin, [tool === 'siege' ? '-V' : '-v'], { encoding: 'utf8', timeout: 5000, env: home ? { ...process.env, HOME: home } : process.env });
    // The first line with a version number (siege may say first that it wrote a template).
    const line = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').find((l) => /\d+\.\d+/.test(l));
    return line ? line.trim().replace(/ \[.*$/, '') : tool;
  } finally {
    if (home) fs.rmSync(home, { recursive: true, force: true });
  }
}

/** The backend's Python (`--version`) when it runs on one — the interpreter named, or a script's shebang — else null. */
function pythonVersion(command: string[]): string | null {
  let bin: string | undefined = command[0];
  if (bin && !/^python/.test(path.basename(bin))) {
    try { bin = /^#!\s*(?:\S*\/env\s+)?(\S*python\S*)/.exec(fs.readFileSync(bin, 'utf8').slice(0, 200))?.[1]; } catch { bin = undefined; }
  }
  if (!bin) return null;
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] || null;
}

/** One planned cell while the sweep runs. */
interface CellRun {
  plan: PlannedCell;
  label: string;
  cell: Cell;
  /** The front's last words after a run without a successful request. */
  lastWords: string;
  /** The last load tool failure (a run lost). */
  loadError: string;
}

/** Run `r` of a cell: start its front, measure, stop it. */
async function runOnce(opts: BenchOptions, c: CellRun, r: number, configKept: Set<FrontName>): Promise<void> {
  const p = c.plan;
  const cell = c.cell;
  const runLabel = opts.repeat > 1 ? `${c.label} run ${r + 1}/${opts.repeat}` : c.label;
  const front = await startFront(opts, p, !configKept.has(p.front));
  configKept.add(p.front);
  try {
    if (r === 0 && !p.sw) cell.switches = await front.switches();
    (cell.runsAt ??= []).push(new Date().toISOString());
    // A load tool that hung (siege 4.0.7 may, at the end of a timed run) gets one more
    // run on the same front; one that failed loses this run, not the cell.
    for (let attempt = 1; ; attempt++) {
      const prefix = opts.repeat > 1 ? `run ${r + 1}: ` : '';
      try {
        const { metrics, notes } = await measure(opts, front, runLabel);
        cell.repeats.push(metrics);
        for (const n of notes) cell.notes!.push(prefix + n);
        if (successfulRequests(metrics) === 0) c.lastWords = await front.lastWords();
      } catch (err) {
        if (!(err instanceof LoadError)) throw err;
        c.loadError = err.message;
        const again = err instanceof LoadHung && attempt === 1;
        cell.notes!.push(`${prefix}${err.message}${again ? '; measured again' : ''}`);
        if (again) continue;
      }
      break;
    }
  } finally {
    await front.stop();
  }
}

/** Medians over the runs, the cell's error if none succeeded, and its progress line. */
function finishCell(opts: BenchOptions, c: CellRun): void {
  const cell = c.cell;
  if (cell.error === null) {
    Object.assign(cell, summarize(cell.repeats));
    const successes = cell.repeats.reduce((a, m) => a + successfulRequests(m), 0);
    if (cell.repeats.length === 0) {
      cell.error = c.loadError;
    } else if (successes === 0) {
      const failed = cell.repeats.reduce((a, m) => a + m.failures.total, 0);
      const answered = cell.repeats.reduce((a, m) => a + m.requests, 0);
      const what = answered === 0 && failed === 0 ? 'no response at all: every request was still waiting when the run ended' : `${failed} failed`;
      cell.error = `no successful request (${what}); ${c.lastWords}`;
    }
  }
  if (cell.error) opts.progress(`${c.label}: failed: ${cell.error}`, true);
  else {
    const m = cell.median!;
    opts.progress(`${c.label}: ${Math.round(m.rps * 10) / 10} req/s, p99 ${m.latencyMs.p99 === null ? 'n/a' : `${m.latencyMs.p99} ms`}, failed ${failuresOfCell(cell)}, EAGAIN ${m.eagain ?? '-'}`, true);
  }
  if (cell.notes!.length === 0) delete cell.notes;
}

export async function runBench(opts: BenchOptions): Promise<BenchResults> {
  const { run: fronts, skipped, runsAt } = availableFronts(opts.fronts, opts.protocol, opts.procs);
  const plan: PlannedCell[] = [];
  for (const procs of opts.procs) {
    for (const front of fronts) {
      if (!runsAt(front, procs)) continue;
      if (front !== 'upfront') plan.push({ front, overflow: null, sw: null, procs });
      else for (const overflow of opts.overflow) for (const sw of opts.switches) plan.push({ front, overflow, sw, procs });
    }
  }
  const startedAt = new Date().toISOString();
  const configKept = new Set<FrontName>();
  const runs = plan.map((p, i): CellRun => {
    const inner = [...(opts.protocol === 'http' ? ['http'] : []), ...(p.overflow ? [p.overflow] : [])];
    const label = `[${i + 1}/${plan.length}] ${p.front}${inner.length ? ` (${inner.join(', ')})` : ''}${p.sw ? ` mt=${p.sw.multithreaded} mpx=${p.sw.multiplexed}` : ''} procs=${p.procs}`;
    const cell: Cell = { front: p.front, protocol: opts.protocol, overflow: p.overflow, procs: p.procs, switches: p.sw ?? { multithreaded: false, multiplexed: false }, ...(p.front === 'upfront' && !p.sw && opts.switches.length > 1 ? { switchesAuto: true } : {}), repeats: [], median: null, min: null, max: null, error: null, notes: [] };
    return { plan: p, label, cell, lastWords: '', loadError: '' };
  });
  // Rounds: each runs every cell of one process count once, in turn. On a shared machine
  // whose speed drifts over minutes, a drift then weighs on every front alike, and each
  // cell's median is over runs spread across the same minutes as its peers'.
  for (const procs of opts.procs) {
    const group = runs.filter((c) => c.plan.procs === procs);
    for (let r = 0; r < opts.repeat; r++) {
      for (const c of group) {
        if (c.cell.error !== null) continue; // the front could not start or the measurement broke: no further runs
        try {
          await runOnce(opts, c, r, configKept);
        } catch (err) {
          c.cell.error = (err as Error).message;
        }
      }
    }
    for (const c of group) finishCell(opts, c);
  }
  const cells = runs.map((c) => c.cell);
  const machine: BenchResults['machine'] = { cores: os.cpus().length, kernel: `${os.type()} ${os.release()}`, node: process.version, nginx: peerVersion('nginx') };
  for (const f of opts.fronts) if (f !== 'upfront' && f !== 'nginx') machine[f as Exclude<PeerFrontName, 'nginx'>] = peerVersion(f);
  if (opts.protocol === 'fastcgi' && opts.fronts.some((f) => f !== 'upfront')) {
    const sf = which('spawn-fcgi');
    machine.spawnFcgi = sf ? (spawnSync(sf, ['-v'], { encoding: 'utf8', timeout: 5000 }).stdout ?? '').trim().split('\n')[0].replace(/ - .*$/, '') || null : null;
  }
  machine.loadTool = toolVersion(opts.load);
  machine.python = pythonVersion(opts.command);
  const results: BenchResults = {
    command: opts.commandLine,
    startedAt,
    machine,
    settings: {
      path: opts.path, concurrency: opts.concurrency, durationSec: opts.durationSec, warmupSec: opts.warmupSec, repeat: opts.repeat, load: opts.load, backend: opts.command.join(' '),
      // An HTTP app binds its own socket: the backlog is its own (Tornado: 128), not the bench's.
      ...(opts.protocol === 'fastcgi' ? { backlog: opts.backlog } : {}), fronts: opts.fronts, protocol: opts.protocol,
    },
    ...(skipped.length ? { skipped } : {}),
    cells,
    recommendation: null,
  };
  results.recommendation = recommend(results);
  return results;
}
