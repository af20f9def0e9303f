// CPU seconds and resident memory of processes, and the machine's CPU, from /proc (bench cells, --max-rss).
import fs from 'node:fs';

/** Linux USER_HZ: /proc/PID/stat times are in 1/100 s on every mainstream kernel. */
export const CLK_TCK = 100;

/**
 * The fields of /proc/PID/stat (or /proc/self/stat) after the command name, which may hold
 * spaces and parentheses: [0] is field 3 (state), so field N of proc(5) is [N - 3]. Null when
 * the process is gone.
 */
export function statFields(pid: number | string): string[] | null {
  let stat: string;
  try { stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1'); } catch { return null; }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * The nice of a process's session under autogroup scheduling (`/proc/PID/autogroup` reads
 * `/autogroup-25 nice 0`), or null without it (no CONFIG_SCHED_AUTOGROUP) or when it is gone.
 */
export function sessionNiceOf(pid: number | 'self'): number | null {
  try {
    const m = /nice (-?\d+)/.exec(fs.readFileSync(`/proc/${pid}/autogroup`, 'latin1'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** utime + stime of a process in seconds (0 when it is gone). */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / CLK_TCK : 0; // utime, stime (fields 14, 15)
}

/**
 * utime + stime of this process and of its children that have exited and been waited for
 * (cutime, cstime), in seconds: around a child that runs to its end (a load tool), the
 * difference is its CPU and ours.
 */
export function ownAndReapedCpuSeconds(): number {
  const f = statFields('self');
  return f ? (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK : 0; // fields 14-17
}

/**
 * The whole machine's CPU seconds so far (/proc/stat's first line): busy (user, nice,
 * system, irq, softirq) and all (busy, idle, iowait). Steal — time the hypervisor gave
 * to someone else — is in neither: the machine did not have it. Null where unreadable.
 */
export function machineCpu(): { busy: number; all: number } | null {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    if (f.length < 7 || f.some((x) => !Number.isFinite(x))) return null;
    const [user, nice, system, idle, iowait, irq, softirq] = f;
    const busy = (user + nice + system + irq + softirq) / CLK_TCK;
    return { busy, all: busy + (idle + iowait) / CLK_TCK };
  } catch {
    return null;
  }
}

export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Direct children of a process (for nginx's worker). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(name); // null: gone
    if (f !== null && Number(f[1]) === pid) out.push(Number(name));
  }
  return out;
}
