// The backends behind a peer front, started the way its users start them:
// FastCGI — spawn-fcgi -F N, N processes accepting on one unix socket (the
// kernel balances them); HTTP — N processes of the command, each binding its
// own unix socket (UPFRONT_SOCKET, or {socket} in its arguments, exactly as
// `upfront run --protocol http` gives it), started here since spawn-fcgi is
// FastCGI-only. Either way the apps' stderr is appended to one file.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { alive, exited, killGroup, lastLine, lastLineOf, stopPids, which } from './processes.js';

export interface PeerBackends {
  /** The unix sockets the front connects to: spawn-fcgi's one, or one per HTTP process. */
  sockets: string[];
  /** The live backend processes. */
  pids(): number[];
  /** How they were started, for the header of the kept config. */
  commandLine: string;
  /** The apps' last stderr line, or ''. */
  lastWords(): string;
  stop(): Promise<void>;
  /** Synchronous, for Ctrl-C. */
  killNow(): void;
}

export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * spawn-fcgi sends its children's stderr to /dev/null; a shell that execs the
 * app with stderr appended to a file keeps the app's last words (the process is
 * the app itself once exec'd: same pid, nothing in between).
 */
function withStderrTo(file: string, command: string[]): string[] {
  return ['/bin/sh', '-c', `exec "$@" 2>>${shellQuote(file)}`, 'sh', ...command];
}

const killAll = (pids: number[]) => { for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } } };

export async function startSpawnFcgi(dir: string, command: string[], procs: number, backlog: number): Promise<PeerBackends> {
  const spawnFcgi = which('spawn-fcgi');
  if (!spawnFcgi) throw new Error('spawn-fcgi is not installed: apt-get install spawn-fcgi');
  const socket = path.join(dir, 'backend.sock');
  const pidFile = path.join(dir, 'spawn-fcgi.pid');
  const stderrFile = path.join(dir, 'backend.stderr');
  // spawn-fcgi forks the children and exits; their pids land in the pid file.
  // It execs without a PATH search: give it the full path of the command.
  const app = command[0].includes('/') ? path.resolve(command[0]) : which(command[0]) ?? command[0];
  const args = ['-s', socket, '-M', '0666', '-b', String(backlog), '-F', String(procs), '-P', pidFile, '--', ...withStderrTo(stderrFile, [app, ...command.slice(1)])];
  const pids = () => (fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8').split(/\s+/).filter(Boolean).map(Number) : []);
  const lastWords = () => lastLineOf(stderrFile);
  const sf = spawnSync(spawnFcgi, args, { encoding: 'utf8', timeout: 20_000 });
  if (sf.status !== 0) {
    await stopPids(pids());
    throw new Error(`spawn-fcgi failed: ${lastLine(sf.stderr || sf.stdout).replace(/^spawn-fcgi: /, '') || `exit code ${sf.status}`}${lastWords() ? ` (backend stderr: ${lastWords()})` : ''}`);
  }
  return {
    sockets: [socket],
    pids: () => pids().filter(alive),
    commandLine: [path.basename(spawnFcgi), ...args].map(shellQuote).join(' '),
    lastWords,
    stop: () => stopPids(pids()),
    killNow: () => killAll(pids()),
  };
}

/** Resolves when a connection to the unix socket is accepted (the app bound it and listens). */
function accepts(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** N processes of the command, b0..bN-1, each binding DIR/bI.sock; resolves when every socket accepts. */
export async function startHttpBackends(dir: string, command: string[], procs: number, timeoutMs = 20_000): Promise<PeerBackends> {
  const stderrFile = path.join(dir, 'backend.stderr');
  const sockets = Array.from({ length: procs }, (_, i) => path.join(dir, `b${i}.sock`));
  const children: ChildProcess[] = [];
  const spawnErrors = new Map<ChildProcess, string>();
  const lastWords = () => lastLineOf(stderrFile);
  const pids = () => children.filter((c) => c.pid !== undefined && !exited(c)).map((c) => c.pid!).filter(alive);
  const killNow = () => { for (const c of children) killGroup(c, 'SIGKILL'); };
  const stop = async () => {
    const live = children.filter((c) => c.pid !== undefined && !exited(c));
    await Promise.all(live.map((c) => new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      killGroup(c, 'SIGTERM');
      const timer = setTimeout(() => killGroup(c, 'SIGKILL'), 5000);
      c.once('exit', () => clearTimeout(timer));
    })));
  };
  const out = fs.openSync(stderrFile, 'a');
  try {
    for (const socket of sockets) {
      const sub = (a: string) => a.split('{socket}').join(socket);
      // Its own process group, so that whatever it forks is stopped with it.
      const child = spawn(sub(command[0]), command.slice(1).map(sub), {
        cwd: process.cwd(), stdio: ['ignore', out, out], detached: true,
        env: { ...process.env, UPFRONT_SOCKET: socket },
      });
      child.once('error', (err: NodeJS.ErrnoException) => spawnErrors.set(child, `${command[0]}: ${err.code === 'ENOENT' ? 'not found' : err.message} (${err.code ?? 'error'})`));
      children.push(child);
    }
  } finally {
    fs.closeSync(out);
  }
  const deadline = Date.now() + timeoutMs;
  try {
    for (const [i, socket] of sockets.entries()) {
      const child = children[i];
      for (;;) {
        if (spawnErrors.has(child)) throw new Error(`backend b${i} did not start: ${spawnErrors.get(child)}`);
        if (exited(child)) throw new Error(`backend b${i} exited (${child.exitCode !== null ? `code ${child.exitCode}` : child.signalCode}) before its socket accepted a connection${lastWords() ? `; backend stderr: ${lastWords()}` : ''}`);
        if (await accepts(socket)) break;
        if (Date.now() > deadline) throw new Error(`backend b${i} did not accept connections on ${socket} within ${timeoutMs / 1000} s: does it bind UPFRONT_SOCKET (or {socket})?${lastWords() ? ` backend stderr: ${lastWords()}` : ''}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    sockets,
    pids,
    commandLine: procs === 1
      ? `UPFRONT_SOCKET=${shellQuote(sockets[0])} ${command.map(shellQuote).join(' ')}`
      : `${procs} processes, UPFRONT_SOCKET=${shellQuote(path.join(dir, 'bI.sock'))} ${command.map(shellQuote).join(' ')} for I = 0..${procs - 1}`,
    lastWords,
    stop,
    killNow,
  };
}
