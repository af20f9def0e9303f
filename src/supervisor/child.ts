// One spawned backend process: fd 0 (or nothing, with {socket}), its output sent to
// the log line by line with backend id and pid, and its exit reported.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { spawnOnCpu } from './cpuAffinity.js';
import { spawnAtStartNice } from './frontNice.js';
import { spawnUnderPolicy, type SchedPolicy } from './schedPolicy.js';
import { ProcessGroupWatchdog } from './watchdog.js';

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => {
  try { fs.accessSync(p, fs.constants.X_OK); return true; } catch { return false; }
}) ?? null;

export interface ChildSpec {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** The listening socket fd to hand over as fd 0, or null when the child binds itself. */
  listenFd: number | null;
  /** Run as this uid/gid (setpriv --reuid/--regid/--init-groups). */
  identity?: { user: string; uid: number; gid: number } | null;
  /** systemd-style socket passing: the socket as fd 3, LISTEN_FDS=1, LISTEN_PID = the child's pid. */
  systemd?: boolean;
  /** The CPU scheduling policy it starts under (schedPolicy.ts). */
  schedPolicy: SchedPolicy;
  /** The CPU it starts bound to (cpuAffinity.ts), or null: wherever the kernel puts it. */
  cpu: number | null;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** spawn() itself failed (ENOENT, EACCES...). */
  spawnError?: NodeJS.ErrnoException;
  uptimeMs: number;
}

/** A refused scheduling policy or CPU is said once per front, not at every restart. */
let schedWarned = false;
let niceWarned = false;
let cpuWarned = false;

/**
 * An output line is logged with at most this many bytes, and how many more it had: an app
 * writing without newlines (a progress bar, a binary dump) must not grow the front's memory
 * or one log line without bound (200 MB on stdout was a 200 MB line, held whole).
 */
export const MAX_LINE_BYTES = 16 * 1024;

/** Calls `onLine` with each line of `stream` (LF or CRLF), cut at MAX_LINE_BYTES; the last one even without its newline. */
function eachLine(stream: Readable, onLine: (line: string) => void): void {
  let parts: Buffer[] = [];
  let kept = 0;
  let dropped = 0;
  const take = (piece: Buffer) => {
    const room = MAX_LINE_BYTES - kept;
    // Copied: a slice would keep its whole chunk alive, one per chunk of a line without newline.
    if (room > 0) { const b = Buffer.from(piece.subarray(0, room)); parts.push(b); kept += b.length; }
    dropped += Math.max(0, piece.length - room);
  };
  const flush = () => {
    let line = Buffer.concat(parts).toString('utf8');
    if (dropped === 0 && line.endsWith('\r')) line = line.slice(0, -1);
    if (dropped > 0) line += ` [${dropped} more bytes of this line not logged]`;
    parts = [];
    kept = 0;
    dropped = 0;
    onLine(line);
  };
  stream.on('data', (chunk: Buffer) => {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      take(chunk.subarray(start, nl));
      flush();
      start = nl + 1;
    }
    if (start < chunk.length) take(chunk.subarray(start));
  });
  stream.on('end', () => { if (kept > 0 || dropped > 0) flush(); });
}

/** How long an exited child's output pipes may take to drain before its exit is reported anyway. */
const STDIO_DRAIN_MS = 200;

export class Child {
  readonly process: ChildProcess;
  readonly startedAt = Date.now();
  exited: ChildExit | null = null;
  private readonly exitWaiters: Array<(e: ChildExit) => void> = [];

  constructor(readonly backendId: string, spec: ChildSpec, private readonly log: Logger, onStderrLine?: (line: string) => void) {
    // With setpriv (util-linux), the kernel kills the child when upfront dies, even by
    // SIGKILL (PR_SET_PDEATHSIG survives exec); the watchdog kills what the child forked.
    if (spec.identity && !SETPRIV) throw new Error('--user needs setpriv (Debian package util-linux) to drop privileges');
    const ids = spec.identity ? [`--reuid=${spec.identity.uid}`, `--regid=${spec.identity.gid}`, '--init-groups'] : [];
    // LISTEN_PID must be the app's own pid, known only after fork: a shell sets it and execs the app
    // (setpriv and sh both exec, so the pid stays the one we spawned).
    const target = spec.systemd
      ? ['/bin/sh', '-c', 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"', spec.command, ...spec.args]
      : [spec.command, ...spec.args];
    const [command, args] = SETPRIV ? [SETPRIV, [...ids, '--pdeathsig', 'KILL', '--', ...target]] : [target[0], target.slice(1)];
    const stdio: Array<number | 'ignore' | 'pipe'> = spec.systemd
      ? ['ignore', 'pipe', 'pipe', spec.listenFd ?? 'ignore']
      : [spec.listenFd ?? 'ignore', 'pipe', 'pipe'];
    const start = (): ChildProcess => spawn(command, args, {
      stdio,
      env: spec.env,
      cwd: spec.cwd,
      // Its own process group: a terminal's Ctrl-C reaches the front only, which then
      // stops the children in order, after in-flight requests.
      detached: true,
    });
    // Set on this thread around fork(): the child starts on its CPU, under its policy, at the nice the front started at.
    const onCpu = spawnOnCpu(spec.cpu, () => spawnUnderPolicy(spec.schedPolicy, () => spawnAtStartNice(start)));
    const { result: atNice, error } = onCpu.result;
    const result = atNice.result;
    if (atNice.error && !niceWarned) {
      niceWarned = true;
      log.warn({ backend: backendId, pid: result.pid, errno: atNice.error.code },
        `could not move the front's nice around starting a backend (${atNice.error.message}): the backend or the front runs at the other's nice`);
    }
    this.process = result;
    if (onCpu.error && !cpuWarned) {
      cpuWarned = true;
      log.warn({ backend: backendId, pid: result.pid, errno: onCpu.error.code, cpu: spec.cpu },
        `could not bind the backends to CPU ${spec.cpu} (${onCpu.error.message}): they run wherever the front may; --cpu-affinity none stops trying`);
    }
    if (error && !schedWarned) {
      schedWarned = true;
      log.warn({ backend: backendId, pid: result.pid, errno: error.code, sched: spec.schedPolicy },
        `could not set the CPU scheduling policy ${spec.schedPolicy} for the backends (${error.message}): they run under the front's own; --sched-policy other stops trying`);
    }
    const pid = this.process.pid;
    // If upfront is killed, the watchdog kills this group: workers the child forks too.
    const watchdog = pid !== undefined ? ProcessGroupWatchdog.get(log) : null;
    if (pid !== undefined) watchdog!.track(pid);
    for (const [stream, name] of [[this.process.stdout, 'stdout'], [this.process.stderr, 'stderr']] as const) {
      if (!stream) continue;
      eachLine(stream, (line) => {
        this.log[name === 'stderr' ? 'warn' : 'info']({ backend: backendId, pid, stream: name }, line); // stderr: the app's error stream, as FCGI_STDERR
        if (name === 'stderr' && onStderrLine) onStderrLine(line);
      });
    }
    this.process.once('error', (err: NodeJS.ErrnoException) => {
      if (this.process.pid === undefined) this.finish({ code: null, signal: null, spawnError: err, uptimeMs: 0 });
    });
    this.process.once('exit', (code, signal) => {
      if (pid !== undefined) {
        // Workers the child forked may outlive it (a crashed gunicorn master, php-cgi's
        // PHP_FCGI_CHILDREN still accepting on fd 0): the group goes with its leader.
        // Until the group is empty its number cannot be reused, so forgetting it after is safe.
        try { process.kill(-pid, 'SIGKILL'); } catch { /* no such group: all gone */ }
        watchdog!.forget(pid);
      }
      const exit = { code, signal, uptimeMs: Date.now() - this.startedAt };
      // Report once its output is read to the end ('close': the pipes are drained), so the
      // last stderr line — often the reason — is known; bounded, should a pipe stay open.
      const timer = setTimeout(() => this.finish(exit), STDIO_DRAIN_MS);
      this.process.once('close', () => { clearTimeout(timer); this.finish(exit); });
    });
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  private finish(exit: ChildExit): void {
    if (this.exited) return;
    this.exited = exit;
    for (const w of this.exitWaiters.splice(0)) w(exit);
  }

  waitExit(): Promise<ChildExit> {
    if (this.exited) return Promise.resolve(this.exited);
    return new Promise((resolve) => this.exitWaiters.push(resolve));
  }

  /** Signals the whole process group (the child may have forked workers of its own). */
  signal(sig: NodeJS.Signals): void {
    if (this.exited || this.process.pid === undefined) return;
    try {
      process.kill(-this.process.pid, sig);
    } catch {
      try { this.process.kill(sig); } catch { /* gone */ }
    }
  }

  /** SIGTERM, then SIGKILL after `killTimeoutMs`. */
  async stop(killTimeoutMs: number): Promise<ChildExit> {
    if (this.exited) return this.exited;
    this.signal('SIGTERM');
    const timer = setTimeout(() => {
      // Said: an app that ignores SIGTERM loses its requests in flight and every stop waits for it.
      this.log.warn({ backend: this.backendId, pid: this.pid, killTimeoutMs },
        `backend ${this.backendId} (pid ${this.pid}) did not exit within ${killTimeoutMs} ms of SIGTERM (kill-timeout): sending SIGKILL; does the app handle SIGTERM?`);
      this.signal('SIGKILL');
    }, killTimeoutMs);
    const exit = await this.waitExit();
    clearTimeout(timer);
    return exit; // the group went with its leader (see the exit handler)
  }
}

export function describeExit(exit: ChildExit): string {
  if (exit.spawnError) return `could not be started: ${exit.spawnError.message}`;
  if (exit.signal) return `was killed by ${exit.signal}`;
  return `exited with code ${exit.code}`;
}
