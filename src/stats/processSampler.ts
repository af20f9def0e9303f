// Resident memory, CPU and start time of the front and of every backend process,
// read from /proc once a second (not per request, not per stats read, so every
// read between two samples shows the same figures). CPU % is over the last interval.
import fs from 'node:fs';

import { CLK_TCK, sessionNiceOf, statFields } from './proc.js';

export interface ProcessFigures {
  pid: number;
  rssBytes: number;
  /** user + system CPU seconds since the process started. */
  cpuSeconds: number;
  /** CPU over the last sampling interval, in % of one core (100 = one core busy). */
  cpuPercent: number;
  /** Unix time the process started (s, with the clock tick's resolution). */
  startTime: number;
  /** Its CPU scheduling policy as the kernel has it (sched(7)): other, batch, idle, fifo, rr, deadline. */
  schedPolicy: string;
  /** Its nice as the kernel has it (its main thread's). */
  nice: number;
  /**
   * Its session's nice (/proc/PID/autogroup), null without autogroup scheduling: with it,
   * `nice` counts only against threads of the same session, this against other sessions.
   */
  sessionNice: number | null;
}

interface ProcRead { cpuSeconds: number; startTicks: number; rssBytes: number; schedPolicy: string; nice: number; sessionNice: number | null }

const SCHED_POLICIES = ['other', 'fifo', 'rr', 'batch', 'iso', 'idle', 'deadline'];

let bootTime: number | null = null;

/** Seconds since the epoch at boot (/proc/stat btime): process start times are counted from it. */
function btime(): number {
  if (bootTime === null) {
    try {
      const m = /^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'));
      bootTime = m ? Number(m[1]) : 0;
    } catch {
      bootTime = 0;
    }
  }
  return bootTime;
}

export function readProcess(pid: number): ProcRead | null {
  const f = statFields(pid);
  if (f === null) return null; // gone
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    // utime, stime, nice, starttime, policy: fields 14, 15, 19, 22, 41 of stat(5)
    const policy = Number(f[38]);
    return { cpuSeconds: (Number(f[11]) + Number(f[12])) / CLK_TCK, startTicks: Number(f[19]), rssBytes: m ? Number(m[1]) * 1024 : 0,
      schedPolicy: SCHED_POLICIES[policy] ?? String(policy), nice: Number(f[16]), sessionNice: sessionNiceOf(pid) };
  } catch {
    return null; // gone
  }
}

export class ProcessSampler {
  private figures = new Map<number, ProcessFigures>();
  private sampledAt = 0;

  /** Reads every pid in `pids`; forgets the ones not listed. */
  sample(pids: Iterable<number>, now = performance.now()): void {
    const next = new Map<number, ProcessFigures>();
    const elapsedSec = this.sampledAt > 0 ? (now - this.sampledAt) / 1000 : 0;
    for (const pid of pids) {
      if (next.has(pid)) continue;
      const r = readProcess(pid);
      if (!r) continue;
      const startTime = Math.round((btime() + r.startTicks / CLK_TCK) * 100) / 100;
      const before = this.figures.get(pid);
      // A pid reused by a new process starts afresh.
      const same = before !== undefined && before.startTime === startTime;
      const cpuPercent = same && elapsedSec > 0 ? Math.max(0, ((r.cpuSeconds - before.cpuSeconds) / elapsedSec) * 100) : 0;
      next.set(pid, { pid, rssBytes: r.rssBytes, cpuSeconds: r.cpuSeconds, cpuPercent: Math.round(cpuPercent * 10) / 10, startTime, schedPolicy: r.schedPolicy, nice: r.nice, sessionNice: r.sessionNice });
    }
    this.figures = next;
    this.sampledAt = now;
  }

  of(pid: number | undefined | null): ProcessFigures | null {
    if (pid === undefined || pid === null) return null;
    const f = this.figures.get(pid);
    return f ? { ...f } : null;
  }
}
