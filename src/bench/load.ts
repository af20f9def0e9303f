// Load generation: autocannon (built in), wrk or siege when installed. Each run
// is bounded in time, and every request it made is counted: timeouts, socket
// errors and failing statuses are failures, parsed from each tool's own output.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
// autocannon ships no types; the part used here is small.
import { createRequire } from 'node:module';
import { lastLine } from './processes.js';
import { register } from './running.js';
import { withTotal, type Failures } from './results.js';

export interface AutocannonResult {
  requests: { total: number };
  duration: number;
  latency: { p50: number; p90: number; p99: number; max: number };
  non2xx: number;
  /** Socket errors, timeouts included. */
  errors: number;
  timeouts: number;
}
type Autocannon = (opts: { url: string; connections: number; duration: number; timeout: number }, cb: (err: Error | null, r: AutocannonResult) => void) => unknown;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface LoadResult {
  /** Responses counted (wrk, autocannon: all; siege: its transactions, i.e. responses below 500). */
  requests: number;
  durationSec: number;
  rps: number;
  /** null where the tool does not measure it. */
  latencyMs: { p50: number | null; p90: number | null; p99: number | null; max: number | null };
  failures: Failures;
  /** What the reader should know about this run (siege aborted or killed). */
  notes: string[];
}

export type LoadTool = 'autocannon' | 'wrk' | 'siege';
export const LOAD_TOOLS: readonly LoadTool[] = ['autocannon', 'wrk', 'siege'];

/** A load run that produced no figures (the tool failed or hung): the message says why. */
export class LoadError extends Error {}

/** The load tool hung and was killed before it reported: worth one more run. */
export class LoadHung extends LoadError {}

export function runLoad(tool: LoadTool, url: string, connections: number, durationSec: number): Promise<LoadResult> {
  if (tool === 'wrk') return runWrk(url, connections, durationSec);
  if (tool === 'siege') return runSiege(url, connections, durationSec);
  return runAutocannon(url, connections, durationSec);
}

// ---------------------------------------------------------------- autocannon

export function fromAutocannon(r: AutocannonResult): LoadResult {
  // autocannon counts a timeout as an error too; it does not split the other socket errors by kind.
  const failures = withTotal({ connect: 0, read: 0, write: 0, timeout: r.timeouts, non2xx: r.non2xx, other: Math.max(0, r.errors - r.timeouts) });
  return {
    requests: r.requests.total,
    durationSec: r.duration,
    rps: r.duration > 0 ? round2(r.requests.total / r.duration) : 0,
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
    failures,
    notes: [],
  };
}

function runAutocannon(url: string, connections: number, durationSec: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections, duration: durationSec, timeout: 10 }, (err, r) => {
      if (err) return reject(new LoadError(`autocannon: ${err.message}`));
      resolve(fromAutocannon(r));
    });
  });
}

// ---------------------------------------------------------------- wrk

function ms(text: string | undefined): number | null {
  if (!text) return null;
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return null;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : m[2] === 'm' ? v * 60_000 : v;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

/** wrk's report (run with --latency): requests, duration, percentiles, socket errors, non-2xx/3xx. */
export function parseWrkOutput(out: string, wantedSec: number): LoadResult {
  const done = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out);
  if (!done) throw new LoadError(`wrk printed no summary: ${lastLine(out) || 'no output'}`);
  const requests = Number(done[1]);
  const durationSec = (ms(`${done[2]}${done[3]}`) ?? wantedSec * 1000) / 1000;
  const pct = (p: string) => ms(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1]);
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const failures = withTotal({
    connect: Number(errs?.[1] ?? 0), read: Number(errs?.[2] ?? 0), write: Number(errs?.[3] ?? 0), timeout: Number(errs?.[4] ?? 0),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0), other: 0,
  });
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(out);
  return {
    requests,
    durationSec,
    rps: rate ? Number(rate[1]) : durationSec > 0 ? round2(requests / durationSec) : 0,
    latencyMs: { p50: pct('50'), p90: pct('90'), p99: pct('99'), max: ms(/^\s+Latency\s+\S+\s+\S+\s+(\S+)/m.exec(out)?.[1]) },
    failures,
    notes: [],
  };
}

function runWrk(url: string, connections: number, wantedSec: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    // wrk needs at least one connection per thread.
    const threads = Math.min(2, connections);
    const p = spawn('wrk', [`-t${threads}`, `-c${connections}`, `-d${Math.max(1, Math.round(wantedSec))}s`, '--latency', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const unregister = register(() => p.kill('SIGKILL')); // Ctrl-C stops the load too
    p.stdout.on('data', (c) => { out += c; });
    p.stderr.on('data', (c) => { err += c; });
    p.on('error', (e) => { unregister(); reject(new LoadError(`wrk: ${e.message} (apt-get install wrk)`)); });
    p.on('close', (code) => {
      unregister();
      if (code !== 0) return reject(new LoadError(`wrk exited with code ${code}: ${lastLine(err) || lastLine(out) || 'no output'}`));
      try { resolve(parseWrkOutput(out, wantedSec)); } catch (e) { reject(e); }
    });
  });
}

// ---------------------------------------------------------------- siege

/**
 * siege's end-of-run summary. Its "Transactions" are responses below 500, of
 * which "Successful" are below 400; "Failed transactions" are socket errors
 * and 5xx responses together. No percentiles: p50/p90/p99 are null.
 */
export function parseSiegeOutput(out: string): LoadResult {
  const num = (label: string): number | null => {
    const m = new RegExp(`^${label}:\\s+([\\d.]+)`, 'm').exec(out);
    return m ? Number(m[1]) : null;
  };
  const transactions = num('Transactions');
  const rate = num('Transaction rate');
  const elapsed = num('Elapsed time');
  if (transactions === null || rate === null || elapsed === null) throw new LoadError(`siege printed no summary: ${lastLine(out) || 'no output'}`);
  const successful = num('Successful transactions') ?? transactions;
  const failed = num('Failed transactions') ?? 0;
  const longest = num('Longest transaction');
  const notes: string[] = [];
  if (/aborted due to excessive socket failure/.test(out)) {
    notes.push(`siege aborted after ${elapsed} s: more failed transactions than its threshold (siegerc "failures", 1024 by default)`);
  }
  return {
    requests: transactions,
    durationSec: elapsed,
    rps: rate,
    latencyMs: { p50: null, p90: null, p99: null, max: longest === null ? null : longest * 1000 },
    failures: withTotal({ connect: 0, read: 0, write: 0, timeout: 0, non2xx: Math.max(0, transactions - successful), other: failed }),
    notes,
  };
}

/**
 * siege's stock settings (as its first run writes them to ~/.siege/siege.conf),
 * written explicitly so the user's own siegerc does not change the bench:
 * a new connection per transaction (connection = close), HTTP/1.1, stop after
 * 1024 failures. Only the output changes: no per-request lines, a text summary,
 * no log file, no HTML parser (it would fetch what a page links to).
 */
export function siegerc(connections: number): string {
  return [
    'verbose = false', 'quiet = false', 'json_output = false', 'show-logfile = false', 'logging = false', 'parser = false',
    'protocol = HTTP/1.1', 'connection = close', 'chunked = true', 'cache = false', 'failures = 1024',
    `limit = ${Math.max(255, connections)}`, '',
  ].join('\n');
}

/** siege 4.0.7 sometimes hangs after "Lifting the server siege...": the run is killed this long after its duration. */
export const SIEGE_GRACE_SEC = 10;

function runSiege(url: string, connections: number, wantedSec: number): Promise<LoadResult> {
  // siege writes ~/.siege on its first run: give it a home of its own.
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'upfront-bench-siege-'));
  const rc = path.join(home, 'siegerc');
  fs.writeFileSync(rc, siegerc(connections));
  const seconds = Math.max(1, Math.round(wantedSec));
  return new Promise((resolve, reject) => {
    const p = spawn('siege', ['-R', rc, '-b', '-c', String(connections), '-t', `${seconds}S`, url], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: home },
    });
    let out = '';
    p.stdout.on('data', (c) => { out += c; });
    p.stderr.on('data', (c) => { out += c; });
    let killed = false;
    const timer = setTimeout(() => { killed = true; p.kill('SIGKILL'); }, (seconds + SIEGE_GRACE_SEC) * 1000);
    const unregister = register(() => { p.kill('SIGKILL'); fs.rmSync(home, { recursive: true, force: true }); });
    const done = () => { unregister(); clearTimeout(timer); fs.rmSync(home, { recursive: true, force: true }); };
    p.on('error', (e) => { done(); reject(new LoadError(`siege: ${e.message} (apt-get install siege)`)); });
    p.on('close', (code) => {
      done();
      let result: LoadResult;
      try {
        result = parseSiegeOutput(out);
      } catch (e) {
        if (killed) return reject(new LoadHung(`siege hung after its ${seconds} s run and was killed after ${seconds + SIEGE_GRACE_SEC} s, before its summary: this run is not counted`));
        return reject(code === 0 ? e : new LoadError(`siege exited with code ${code}: ${lastLine(out) || 'no output'}`));
      }
      if (killed) result.notes.push(`siege hung after its summary and was killed after ${seconds + SIEGE_GRACE_SEC} s`);
      resolve(result);
    });
  });
}
