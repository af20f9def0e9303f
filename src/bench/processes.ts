// What the bench needs to run servers it does not own: find a binary, a free
// loopback port, wait for an answer, stop a process group, walk a process tree,
// read the CPU of every process of a front, and read the logs they leave.
import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { cpuSeconds, statFields } from '../stats/proc.js';

export function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin'])) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    try { fs.accessSync(p, fs.constants.X_OK); return p; } catch { /* next */ }
  }
  return null;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

export function get(options: http.RequestOptions, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ agent: false, ...options }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export function exited(proc: ChildProcess): boolean {
  return proc.exitCode !== null || proc.signalCode !== null;
}

/**
 * Polls until the front answers 200 on `urlPath`. `cause()` is asked after every
 * failed try: a string there (the front exited, every backend is down) ends the
 * wait at once with that cause instead of waiting out the deadline.
 */
export async function waitReady(port: number, urlPath: string, what: string, cause: () => Promise<string | null> | string | null, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    try {
      // A slow answer is still an answer: a probe given up on may yet reach the app (a cold app, a busy
      // machine), and the next one then finds it a request further on.
      const r = await get({ host: '127.0.0.1', port, path: urlPath }, Math.max(1000, deadline - Date.now()));
      if (r.status === 200) return;
      last = `answered ${r.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    const why = await cause();
    if (why) throw new Error(`${what} did not answer 200 on ${urlPath}: ${why}`);
    if (Date.now() > deadline) throw new Error(`${what} did not answer 200 on ${urlPath} within ${timeoutMs / 1000} s (${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function killGroup(proc: ChildProcess, sig: NodeJS.Signals): void {
  if (proc.pid === undefined || exited(proc)) return;
  try { process.kill(-proc.pid, sig); } catch { try { proc.kill(sig); } catch { /* gone */ } }
}

/** SIGTERM to the process group, SIGKILL after 10 s; resolves when the leader exited. */
export async function stopProcess(proc: ChildProcess): Promise<void> {
  if (exited(proc)) return;
  const gone = new Promise((r) => proc.once('exit', r));
  killGroup(proc, 'SIGTERM');
  const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), 10_000);
  await gone;
  clearTimeout(timer);
}

export function alive(pid: number): boolean {
  try { process.kill(pid, 0); } catch { return false; }
  // A zombie is gone for our purposes (it holds no socket and uses no CPU).
  try { return !/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
}

/** Signals processes that are not our children (spawn-fcgi's), then waits until they are gone (SIGKILL after 5 s). */
export async function stopPids(pids: number[]): Promise<void> {
  const signal = (sig: NodeJS.Signals) => { for (const p of pids) { try { process.kill(p, sig); } catch { /* gone */ } } };
  signal('SIGTERM');
  const deadline = Date.now() + 5000;
  while (pids.some(alive)) {
    if (Date.now() > deadline) { signal('SIGKILL'); break; }
    await new Promise((r) => setTimeout(r, 20));
  }
}

function parentsByPid(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(name);
    if (f === null) continue; // gone
    const ppid = Number(f[1]);
    const list = children.get(ppid);
    if (list) list.push(Number(name)); else children.set(ppid, [Number(name)]);
  }
  return children;
}

/** A process and all its descendants (nginx's master and workers, h2o and its helper). Threads are in their process's figures. */
export function processTree(pid: number): number[] {
  return processTrees([pid]);
}

/** Processes and all their descendants, from one read of /proc (a gunicorn master and its workers, for each backend). */
export function processTrees(pids: number[]): number[] {
  if (pids.length === 0) return [];
  const children = parentsByPid();
  const out: number[] = [];
  const todo = [...pids];
  while (todo.length) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/** CPU seconds per pid, to subtract: a process that appears later counts from 0, one that is gone is left out. */
export function cpuByPid(pids: number[]): Map<number, number> {
  return new Map(pids.map((p) => [p, cpuSeconds(p)]));
}

export function cpuSince(before: Map<number, number>, pidsNow: number[]): number {
  let total = 0;
  for (const p of pidsNow) {
    const now = cpuSeconds(p);
    if (now > 0) total += Math.max(0, now - (before.get(p) ?? 0));
  }
  return total;
}

export function fileSize(file: string): number {
  try { return fs.statSync(file).size; } catch { return 0; }
}

/** Lines matching `pattern` in `file` from byte `from` on, read in chunks (a log may hold millions of lines). */
export function countLines(file: string, pattern: RegExp, from = 0): number {
  let fd: number;
  try { fd = fs.openSync(file, 'r'); } catch { return 0; }
  try {
    const buf = Buffer.alloc(1 << 20);
    let pos = from;
    let carry = '';
    let count = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
      const lines = (carry + buf.toString('utf8', 0, n)).split('\n');
      carry = lines.pop()!;
      for (const l of lines) if (pattern.test(l)) count++;
    }
    if (carry && pattern.test(carry)) count++;
    return count;
  } finally {
    fs.closeSync(fd);
  }
}

/** The last non-empty line of a file that `keep` accepts (the real cause, not a banner), or ''. */
export function lastLineOf(file: string, keep: (line: string) => boolean = () => true): string {
  try {
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, 'r');
    try {
      const len = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, size - len);
      const lines = buf.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l && keep(l));
      return lines[lines.length - 1] ?? '';
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** The last non-empty line of a text, trimmed, or ''. */
export function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines[lines.length - 1] ?? '';
}
