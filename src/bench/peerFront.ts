// Runs one peer front (nginx, h2o, HAProxy, lighttpd, Caddy) for one run of a
// cell: spawn-fcgi -F N on one unix socket, the front's generated config in a
// private temp dir, the front in the foreground on a free loopback port, the
// socket's accept queue sampled from the kernel. Stops everything it started.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { acceptQueueOf } from '../native/sock.js';
import { PEERS, type PeerFront, type PeerSetup } from './fronts/index.js';
import { alive, countLines, exited, fileSize, freePort, killGroup, lastLine, lastLineOf, processTree, stopPids, stopProcess, waitReady, which } from './processes.js';
import type { PeerFrontName } from './results.js';
import { register, type RunningFront } from './running.js';

export interface PeerRunOptions {
  command: string[];
  path: string;
  backlog: number;
  /** Where to keep a copy of the generated config (the first run of each front writes it). */
  configDir?: string;
  onConfig?(file: string): void;
}

/** Why a front cannot run here (binary missing), or null. */
export function missingPeer(name: PeerFrontName): string | null {
  const front = PEERS[name];
  if (!which(front.binary)) return `${front.binary} is not installed: apt-get install ${front.debianPackage}`;
  if (!which('spawn-fcgi')) return 'spawn-fcgi is not installed: apt-get install spawn-fcgi';
  return null;
}

export function peerVersion(name: PeerFrontName): string | null {
  const front = PEERS[name];
  const bin = which(front.binary);
  if (!bin) return null;
  const r = spawnSync(bin, front.versionArgs, { encoding: 'utf8', timeout: 10_000 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  return out ? front.version(out) : null;
}

function shellQuote(s: string): string {
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

export async function startPeer(name: PeerFrontName, opts: PeerRunOptions, procs: number): Promise<RunningFront> {
  const front: PeerFront = PEERS[name];
  const missing = missingPeer(name);
  if (missing) throw new Error(missing);
  const bin = which(front.binary)!;
  const spawnFcgi = which('spawn-fcgi')!;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `upfront-bench-${name}-`));
  const socket = path.join(dir, 'backend.sock');
  const pidFile = path.join(dir, 'spawn-fcgi.pid');
  const backendLog = path.join(dir, 'backend.stderr');
  const stderrLog = path.join(dir, 'stderr.log');
  const errorLog = path.join(dir, front.errorLog);
  const setup: PeerSetup = { dir, port: await freePort(), socket, threads: os.cpus().length, documentRoot: process.cwd(), asRoot: process.getuid?.() === 0 };

  // spawn-fcgi forks the children and exits; their pids land in the pid file.
  // It execs without a PATH search: give it the full path of the command.
  const app = opts.command[0].includes('/') ? path.resolve(opts.command[0]) : which(opts.command[0]) ?? opts.command[0];
  const sfArgs = ['-s', socket, '-M', '0666', '-b', String(opts.backlog), '-F', String(procs), '-P', pidFile, '--', ...withStderrTo(backendLog, [app, ...opts.command.slice(1)])];
  const backendPids = () => (fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8').split(/\s+/).filter(Boolean).map(Number) : []);
  const backendWords = () => lastLineOf(backendLog);
  const removeDir = () => fs.rmSync(dir, { recursive: true, force: true });
  const sf = spawnSync(spawnFcgi, sfArgs, { encoding: 'utf8', timeout: 20_000 });
  if (sf.status !== 0) {
    await stopPids(backendPids());
    const why = `spawn-fcgi failed: ${lastLine(sf.stderr || sf.stdout).replace(/^spawn-fcgi: /, '') || `exit code ${sf.status}`}${backendWords() ? ` (backend stderr: ${backendWords()})` : ''}`;
    removeDir();
    throw new Error(why);
  }

  const configPath = path.join(dir, front.configFile);
  fs.writeFileSync(configPath, front.config(setup));
  if (opts.configDir) {
    const copy = path.join(opts.configDir, front.configFile);
    const header = `# As run by the first ${name} cell (${procs} process${procs === 1 ? '' : 'es'}); its temp dir is gone after the bench.\n`
      + `# Backends: ${[path.basename(spawnFcgi), ...sfArgs].map(shellQuote).join(' ')}\n`;
    fs.writeFileSync(copy, header + fs.readFileSync(configPath, 'utf8'));
    opts.onConfig?.(copy);
  }
  const out = fs.openSync(stderrLog, 'a');
  const proc = spawn(bin, front.args(setup, configPath), {
    cwd: dir, stdio: ['ignore', out, out], detached: true,
    env: { ...process.env, ...(front.env?.(setup) ?? {}) },
  });
  fs.closeSync(out);
  let sampler: NodeJS.Timeout | null = null;
  let queueMax: number | null = null;
  const frontWords = () => lastLineOf(errorLog, (l) => !front.notice.test(l)) || lastLineOf(stderrLog, (l) => !front.notice.test(l));
  const lastWords = () => {
    const parts = [];
    const f = frontWords();
    const b = backendWords();
    if (f) parts.push(`${name}: ${f}`);
    if (b) parts.push(`backend stderr: ${b}`);
    return parts.join('; ') || `neither ${name} nor the backends said anything`;
  };
  const stopNow = () => {
    if (sampler) clearInterval(sampler);
    killGroup(proc, 'SIGKILL');
    for (const p of backendPids()) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
    removeDir();
  };
  const unregister = register(stopNow);
  const stop = async () => {
    unregister();
    if (sampler) clearInterval(sampler);
    await stopProcess(proc);
    await stopPids(backendPids());
    removeDir();
  };
  try {
    await waitReady(setup.port, opts.path, name, () => {
      if (exited(proc)) return `${name} exited (${proc.exitCode !== null ? `code ${proc.exitCode}` : proc.signalCode}): ${frontWords() || 'no output'}`;
      const pids = backendPids();
      if (pids.length > 0 && !pids.some(alive)) return `every backend process exited: ${backendWords() || 'no stderr'}`;
      return null;
    });
  } catch (err) {
    const why = (err as Error).message;
    await stop();
    throw new Error(why);
  }
  sampler = setInterval(() => {
    const q = acceptQueueOf(socket);
    if (q) queueMax = Math.max(queueMax ?? 0, q.queued);
  }, 100);
  const errorLogStart = fileSize(errorLog);
  return {
    front: name,
    port: setup.port,
    frontPids: () => (proc.pid !== undefined && !exited(proc) ? processTree(proc.pid) : []),
    backendPids: async () => backendPids().filter(alive),
    eagain: async () => countLines(errorLog, front.eagainLine, errorLogStart),
    acceptQueueMax: async () => queueMax,
    frontQueueMax: async () => null,
    switches: async () => ({ multithreaded: false, multiplexed: false }),
    lastWords: async () => lastWords(),
    stop,
  };
}
