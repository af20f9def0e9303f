// CPU seconds and resident memory of processes, and the machine's CPU, from /proc (bench cells, --max-rss).
import fs from 'node:fs';

const CLK_TCK = 100; // Linux USER_HZ: /proc/PID/stat times are in 1/100 s on every mainstream kernel

/** utime + stime of a process in seconds (0 when it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14, 15)
  } catch {
    return 0;
  }
}

/**
 * utime + stime of this process and of its children that have exited and been waited for
 * (cutime, cstime), in seconds: around a child that runs to its end (a load tool), the
 * difference is its CPU and ours.
 */
export function ownAndReapedCpuSeconds(): number {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK; // fields 14-17
  } catch {
    return 0;
  }
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
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch { /* gone */ }
  }
  return out;
}
