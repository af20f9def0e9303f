// Test helpers: a front started in-process on real sockets with real spawned
// backends, its log captured so tests wait for events (log lines), not sleeps.
import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { validateRunConfig } from '../src/config/schema.js';
import { startFront, type Front } from '../src/front.js';
import { acceptQueueOf } from '../src/native/sock.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const PY_HELLO = path.join(ROOT, 'examples/python/hello.py');
export const FIXTURES = path.join(ROOT, 'test/fixtures');

export interface LogLine { level: number; msg: string; [k: string]: unknown }

/** Collects pino lines; `waitFor` resolves on the first (past or future) line matching. */
export class LogCapture extends EventEmitter {
  readonly lines: LogLine[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _enc, cb) => {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (!text) continue;
        try {
          const line = JSON.parse(text) as LogLine;
          this.lines.push(line);
          this.emit('line', line);
        } catch { /* not JSON */ }
      }
      cb();
    },
  });

  waitFor(pred: (l: LogLine) => boolean, what: string, timeoutMs = 15_000): Promise<LogLine> {
    const found = this.lines.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.off('line', on); reject(new Error(`no log line ${what} within ${timeoutMs} ms; last lines:\n${this.lines.slice(-8).map((l) => JSON.stringify(l)).join('\n')}`)); }, timeoutMs);
      const on = (l: LogLine) => { if (pred(l)) { clearTimeout(timer); this.off('line', on); resolve(l); } };
      this.on('line', on);
    });
  }

  count(pred: (l: LogLine) => boolean): number {
    return this.lines.filter(pred).length;
  }
}

export interface TestFront extends Front {
  log: LogCapture;
  url: string;
  socketDir: string;
}

let dirCounter = 0;

export function tmpDir(prefix = 'upfront-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Starts upfront in this process: public and admin listeners on ephemeral loopback ports. */
export async function startTestFront(options: Record<string, unknown>): Promise<TestFront> {
  const log = new LogCapture();
  const socketDir = path.join(os.tmpdir(), `upfront-t${process.pid}-${++dirCounter}-${Date.now() % 100000}`);
  const config = validateRunConfig({ listen: '127.0.0.1:0', admin: 'off', 'socket-dir': socketDir, 'log-level': 'debug', ...options });
  const logger = pino({ level: config.logLevel, base: { name: 'upfront' } }, log.stream);
  const front = await startFront(config, logger);
  return Object.assign(front, { log, url: `http://${front.address}`, socketDir });
}

export interface Reply { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** One HTTP request; body may be a Buffer or an async iterable (sent chunked). */
export function request(url: string, opts: { method?: string; body?: Buffer | AsyncIterable<Buffer>; headers?: Record<string, string>; agent?: http.Agent | false } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? (opts.body ? 'POST' : 'GET'), headers: opts.headers, agent: opts.agent ?? agent, maxHeaderSize: 1024 * 1024 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const body = opts.body;
    if (!body) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else (async () => { for await (const c of body) { if (!req.write(c)) await new Promise((r) => req.once('drain', r)); } req.end(); })().catch(reject);
  });
}

/** Streams a response and hashes it without keeping it. */
export function requestHash(url: string): Promise<{ status: number; bytes: number; sha256: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => {
      const h = crypto.createHash('sha256');
      let bytes = 0;
      res.on('data', (c: Buffer) => { h.update(c); bytes += c.length; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, sha256: h.digest('hex'), headers: res.headers }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

export function sha256(buf: Buffer): string {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

/** Deterministic pseudo-random bytes, generated in chunks (for large uploads without holding them). */
export async function* patternChunks(total: number, chunkSize = 256 * 1024): AsyncGenerator<Buffer> {
  let sent = 0;
  let seed = 12345;
  while (sent < total) {
    const n = Math.min(chunkSize, total - sent);
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) { seed = (seed * 1103515245 + 12345) & 0x7fffffff; b[i] = seed >> 16; }
    sent += n;
    yield b;
  }
}

export async function hashOfChunks(chunks: AsyncIterable<Buffer>): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const c of chunks) h.update(c);
  return h.digest('hex');
}

export function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

export async function getStats(front: Front): Promise<any> {
  const { statsSnapshot } = await import('../src/stats/snapshot.js');
  return statsSnapshot(front.stats);
}

export function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/lib/cgi-bin'])) {
    const p = path.join(dir, cmd);
    try { fs.accessSync(p, fs.constants.X_OK); return p; } catch { /* next */ }
  }
  return null;
}

/** A Debian peer the tests need: in CI it must be there (.ci/run installs it); elsewhere the test is skipped. */
export function peer(cmd: string): string | null {
  const p = which(cmd);
  if (!p && process.env.CI) throw new Error(`${cmd} is not installed; .ci/run should have installed it`);
  return p;
}

/** Polls a condition that has no event of its own (process state, counters), bounded. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface RunningCli {
  proc: import('node:child_process').ChildProcess;
  /** http://HOST:PORT of the public listener. */
  base: string;
  /** HOST:PORT of the admin listener, when it is on TCP. */
  admin: string | null;
  stderr: () => string;
  /** The log (pino JSON lines). */
  stdout: () => string;
  /** SIGTERM, bounded: SIGKILL after 10 s. */
  stop: () => Promise<void>;
}

/** Spawns `dist/cli.js run ARGS` and waits for its banner (public and admin addresses). */
export async function spawnCli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunningCli> {
  const { spawn } = await import('node:child_process');
  const proc = spawn(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'run', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
  let err = '';
  let out = '';
  proc.stderr!.on('data', (c) => { err += c; });
  proc.stdout!.on('data', (c) => { out += c; });
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitUntil(() => /Ctrl-C stops it/.test(err) || proc.exitCode !== null, 'the CLI prints its banner', opts.timeoutMs ?? 20_000);
    if (proc.exitCode !== null) throw new Error(`upfront run exited with ${proc.exitCode}:\n${err}`);
  } catch (e) {
    await stop();
    throw e;
  }
  const base = /serving on (https?:\/\/[^\s]+)/.exec(err)![1];
  const admin = /curl http:\/\/([^\s/]+)\/stats/.exec(err)?.[1] ?? null;
  return { proc, base, admin, stderr: () => err, stdout: () => out, stop };
}

/** Samples the kernel accept queues of these unix sockets every few ms while `during` runs; returns the most seen queued in one. */
export async function maxAcceptQueued(socketPaths: string[], during: Promise<unknown>): Promise<number> {
  let max = 0;
  let running = true;
  void during.finally(() => { running = false; });
  while (running) {
    for (const p of socketPaths) max = Math.max(max, acceptQueueOf(p)?.queued ?? 0);
    await new Promise((r) => setTimeout(r, 3));
  }
  return max;
}
