// Runs one peer front (nginx, h2o, HAProxy, lighttpd, Caddy) for one run of a
// cell: its backends (spawn-fcgi -F N on one unix socket for FastCGI, N
// processes on N sockets for HTTP), the front's generated config in a private
// temp dir, the front in the foreground on a free loopback port, the backend
// sockets' accept queues sampled from the kernel. Stops everything it started.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { acceptQueues } from '../native/sock.js';
import { PEERS, type PeerFront } from './fronts/index.js';
import { startHttpBackends, startSpawnFcgi, type PeerBackends } from './peerBackends.js';
import { countLines, exited, fileSize, freePort, killGroup, lastLineOf, processTree, processTrees, stopProcess, waitReady, which } from './processes.js';
import type { PeerFrontName, Protocol } from './results.js';
import { register, type RunningFront } from './running.js';

export interface PeerRunOptions {
  command: string[];
  path: string;
  backlog: number;
  /** fastcgi (default) or http. */
  protocol?: Protocol;
  /** Where to keep a copy of the generated config (the first run of each front writes it). */
  configDir?: string;
  onConfig?(file: string): void;
}

/** Why a front cannot run here with this protocol (binary or spawn-fcgi missing, no HTTP config), or null. */
export function missingPeer(name: PeerFrontName, protocol: Protocol = 'fastcgi'): string | null {
  const front = PEERS[name];
  if (protocol === 'http' && !front.http) return `${name} has no HTTP reverse-proxy config in upfront bench`;
  if (!which(front.binary)) return `${front.binary} is not installed: apt-get install ${front.debianPackage}`;
  if (protocol === 'fastcgi' && !which('spawn-fcgi')) return 'spawn-fcgi is not installed: apt-get install spawn-fcgi';
  return null;
}

/** The most backend processes a front can proxy to with this protocol, and why (null: no limit). */
export function peerProcsLimit(name: PeerFrontName, protocol: Protocol): { count: number; why: string } | null {
  return protocol === 'http' ? PEERS[name].http?.maxBackends ?? null : null;
}

export function peerVersion(name: PeerFrontName): string | null {
  const front = PEERS[name];
  const bin = which(front.binary);
  if (!bin) return null;
  const r = spawnSync(bin, front.versionArgs, { encoding: 'utf8', timeout: 10_000 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  return out ? front.version(out) : null;
}

export async function startPeer(name: PeerFrontName, opts: PeerRunOptions, procs: number): Promise<RunningFront> {
  const front: PeerFront = PEERS[name];
  const protocol = opts.protocol ?? 'fastcgi';
  const missing = missingPeer(name, protocol);
  if (missing) throw new Error(missing);
  const limit = peerProcsLimit(name, protocol);
  if (limit && procs > limit.count) throw new Error(`${name} cannot proxy to ${procs} backends: ${limit.why}`);
  const bin = which(front.binary)!;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `upfront-bench-${name}-`));
  const stderrLog = path.join(dir, 'stderr.log');
  const errorLog = path.join(dir, front.errorLog);
  const removeDir = () => fs.rmSync(dir, { recursive: true, force: true });
  let backends: PeerBackends;
  try {
    backends = protocol === 'http' ? await startHttpBackends(dir, opts.command, procs) : await startSpawnFcgi(dir, opts.command, procs, opts.backlog);
  } catch (err) {
    removeDir();
    throw err;
  }
  const base = { dir, port: await freePort(), threads: os.cpus().length, documentRoot: process.cwd(), asRoot: process.getuid?.() === 0 };
  const eagainLine = protocol === 'http' ? front.http!.eagainLine ?? front.eagainLine : front.eagainLine;
  const configText = protocol === 'http' ? front.http!.config({ ...base, sockets: backends.sockets }) : front.config({ ...base, socket: backends.sockets[0] });
  const backendWords = () => backends.lastWords();

  const configPath = path.join(dir, front.configFile);
  fs.writeFileSync(configPath, configText);
  if (opts.configDir) {
    const copy = path.join(opts.configDir, front.configFile);
    const header = `# As run by the first ${name} cell (${procs} process${procs === 1 ? '' : 'es'}); its temp dir is gone after the bench.\n`
      + `# Backends: ${backends.commandLine}\n`;
    fs.writeFileSync(copy, header + fs.readFileSync(configPath, 'utf8'));
    opts.onConfig?.(copy);
  }
  const out = fs.openSync(stderrLog, 'a');
  const proc = spawn(bin, front.args(base, configPath), {
    cwd: dir, stdio: ['ignore', out, out], detached: true,
    env: { ...process.env, ...(front.env?.(base) ?? {}) },
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
    backends.killNow();
    removeDir();
  };
  const unregister = register(stopNow);
  const stop = async () => {
    unregister();
    if (sampler) clearInterval(sampler);
    await stopProcess(proc);
    await backends.stop();
    removeDir();
  };
  try {
    await waitReady(base.port, opts.path, name, () => {
      if (exited(proc)) return `${name} exited (${proc.exitCode !== null ? `code ${proc.exitCode}` : proc.signalCode}): ${frontWords() || 'no output'}`;
      if (backends.pids().length === 0) return `every backend process exited: ${backendWords() || 'no stderr'}`;
      return null;
    });
  } catch (err) {
    const why = (err as Error).message;
    await stop();
    throw new Error(why);
  }
  // One read of the kernel's table per sample; the longest queue of any backend socket.
  const watched = new Set(backends.sockets);
  sampler = setInterval(() => {
    for (const q of acceptQueues()) if (watched.has(q.path)) queueMax = Math.max(queueMax ?? 0, q.queued);
  }, 100);
  const errorLogStart = fileSize(errorLog);
  return {
    front: name,
    port: base.port,
    frontPids: () => (proc.pid !== undefined && !exited(proc) ? processTree(proc.pid) : []),
    // With whatever they forked (gunicorn's workers): their CPU and memory are the backends' too.
    backendPids: async () => processTrees(backends.pids()),
    eagain: async () => countLines(errorLog, eagainLine, errorLogStart),
    acceptQueueMax: async () => queueMax,
    frontQueueMax: async () => null,
    switches: async () => ({ multithreaded: false, multiplexed: false }),
    lastWords: async () => lastWords(),
    stop,
  };
}
