// --cpu-affinity auto: each process starts bound to one CPU, spread over the front's;
// a restarted or reloaded process keeps its CPU, a new one goes where the fewest are;
// the front's own thread keeps its mask. Read back from the kernel: /proc/PID/status.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { setThreadAffinity, threadAffinity } from '../src/native/sock.js';
import { leastTakenCpu, spawnOnCpu } from '../src/supervisor/cpuAffinity.js';
import { PY_HELLO, request, startTestFront, waitUntil, type TestFront } from './helpers.js';

/** The CPUs process/thread `pid` may run on (Cpus_allowed_list, "0-1,3" expanded). */
function cpusOf(pid: number): number[] {
  const line = /^Cpus_allowed_list:\s*(\S+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1];
  const cpus: number[] = [];
  for (const part of line.split(',')) {
    const [a, b] = part.split('-').map(Number);
    for (let c = a; c <= (b ?? a); c++) cpus.push(c);
  }
  return cpus;
}

let front: TestFront | null = null;
afterEach(async () => { await front?.stop(); front = null; });

describe('the processes\' CPU affinity', () => {
  it('auto: each process on one CPU, spread over the front\'s; restarts and reloads keep theirs, a new one takes the least taken', async () => {
    const own = threadAffinity();
    front = await startTestFront({ procs: 2, 'cpu-affinity': 'auto', 'restart-backoff': 50, admin: '127.0.0.1:0', command: ['python3', PY_HELLO] });
    const f = front;
    expect((await request(`${f.url}/Hello/1`)).status).toBe(200);
    const placed = () => f.pool.backends.filter((b) => b.state === 'ready').map((b) => cpusOf(b.pid!));
    const first = [[own[0]], [own[1 % own.length]]];
    expect(placed()).toEqual(first);
    // /stats says where each process is bound
    const stats = JSON.parse((await request(`http://${f.adminAddress}/stats`)).body.toString());
    expect(stats.children.map((c: { pid: number; cpu: number }) => [c.cpu])).toEqual(first);
    expect(cpusOf(process.pid)).toEqual(own);

    const pid0 = f.pool.backends[0].pid!;
    process.kill(pid0, 'SIGKILL');
    await waitUntil(() => f.pool.backends[0].state === 'ready' && f.pool.backends[0].pid !== pid0, 'b0 restarted');
    expect(placed()).toEqual(first);

    await f.supervisor!.reload('test');
    expect(placed().sort()).toEqual([...first].sort());

    await f.supervisor!.scale(3, 'test');
    const counts = new Map<number, number>();
    for (const [cpu] of placed()) counts.set(cpu, (counts.get(cpu) ?? 0) + 1);
    expect(Math.max(...counts.values()) - Math.min(...own.map((c) => counts.get(c) ?? 0))).toBeLessThanOrEqual(1);
    expect(cpusOf(process.pid)).toEqual(own);
  });

  it('by default (none) the processes may run wherever the front may', async () => {
    front = await startTestFront({ procs: 1, command: ['python3', PY_HELLO] });
    expect((await request(`${front.url}/Hello/1`)).status).toBe(200);
    expect(cpusOf(front.pool.backends[0].pid!)).toEqual(threadAffinity());
    expect(front.supervisor!.children()[0].cpu).toBeNull();
  });

  it('spawnOnCpu: the child starts on the CPU, the calling thread gets its own CPUs back', async () => {
    const own = threadAffinity();
    const cpu = own[own.length - 1];
    const { result: child, error } = spawnOnCpu(cpu, () => spawn('sleep', ['5'], { stdio: 'ignore' }));
    try {
      expect(error).toBeNull();
      expect(cpusOf(child.pid!)).toEqual([cpu]);
      expect(threadAffinity()).toEqual(own);
    } finally {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      setThreadAffinity(own);
    }
  });

  it('spawnOnCpu: a CPU the kernel refuses gives the error and an unbound child, never a lost spawn', async () => {
    const own = threadAffinity();
    const { result: child, error } = spawnOnCpu(1023, () => spawn('sleep', ['5'], { stdio: 'ignore' }));
    try {
      expect(error?.code).toBe('EINVAL');
      expect(cpusOf(child.pid!)).toEqual(own);
      expect(threadAffinity()).toEqual(own);
    } finally {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });

  it('leastTakenCpu: the first CPU the fewest are on', () => {
    expect(leastTakenCpu([0, 1], [])).toBe(0);
    expect(leastTakenCpu([0, 1], [0])).toBe(1);
    expect(leastTakenCpu([0, 1], [0, 1])).toBe(0);
    expect(leastTakenCpu([2, 5, 7], [2, 5, null, 2])).toBe(7);
    expect(leastTakenCpu([2, 5, 7], [2, 5, 7, 7, 2])).toBe(5);
  });
});
