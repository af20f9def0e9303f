// The processes start under SCHED_BATCH (or the policy asked for), set around fork so
// there is no window; the front puts its own threads under SCHED_BATCH (or the policy
// asked for) while it runs. Read back from the kernel: /proc/PID/stat field 41 (0
// SCHED_OTHER, 3 SCHED_BATCH). The fronts here run inside the test process: their threads are its.
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { setThreadSched, threadSched } from '../src/native/sock.js';
import { statFields } from '../src/stats/proc.js';
import { putProcessUnder, spawnUnderPolicy } from '../src/supervisor/schedPolicy.js';
import { PY_HELLO, request, startTestFront, waitUntil, type TestFront } from './helpers.js';
import { spawn, spawnSync } from 'node:child_process';

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;

/** The scheduling policy of thread/process `pid`: field 41 of /proc/PID/stat. */
function policyOf(pid: number): number {
  return Number(statFields(pid)![41 - 3]);
}

/** The policy of each thread of this process, from /proc/self/task/TID/stat. */
function ownThreadPolicies(): number[] {
  const out: number[] = [];
  for (const tid of fs.readdirSync('/proc/self/task')) {
    const fields = statFields(`self/task/${tid}`);
    if (fields !== null) out.push(Number(fields[41 - 3])); // null: it ended meanwhile
  }
  return out;
}

let front: TestFront | null = null;
afterEach(async () => { await front?.stop(); front = null; });

describe('the processes\' CPU scheduling policy', () => {
  it('by default every process, restarted ones too, and every thread of the front run under SCHED_BATCH; stopped, the front\'s threads get their own back', async () => {
    expect(new Set(ownThreadPolicies())).toEqual(new Set([SCHED_OTHER]));
    front = await startTestFront({ procs: 2, 'restart-backoff': 50, command: ['python3', PY_HELLO] });
    const f = front;
    expect((await request(`${f.url}/Hello/1`)).status).toBe(200);
    const pids = f.pool.backends.map((b) => b.pid!);
    expect(pids.map(policyOf)).toEqual([SCHED_BATCH, SCHED_BATCH]);
    expect(new Set(ownThreadPolicies())).toEqual(new Set([SCHED_BATCH]));
    process.kill(pids[0], 'SIGKILL');
    await waitUntil(() => f.pool.backends[0].state === 'ready' && f.pool.backends[0].pid !== pids[0], 'b0 restarted');
    expect(policyOf(f.pool.backends[0].pid!)).toBe(SCHED_BATCH);
    expect(policyOf(process.pid)).toBe(SCHED_BATCH);
    await f.stop();
    front = null;
    expect(new Set(ownThreadPolicies())).toEqual(new Set([SCHED_OTHER]));
  });

  it('front-sched-policy other: the front\'s threads stay SCHED_OTHER, its processes still start under SCHED_BATCH', async () => {
    front = await startTestFront({ procs: 1, 'front-sched-policy': 'other', command: ['python3', PY_HELLO] });
    expect((await request(`${front.url}/Hello/1`)).status).toBe(200);
    expect(new Set(ownThreadPolicies())).toEqual(new Set([SCHED_OTHER]));
    expect(policyOf(front.pool.backends[0].pid!)).toBe(SCHED_BATCH);
  });

  it('sched-policy other: the processes run under SCHED_OTHER', async () => {
    front = await startTestFront({ procs: 1, 'sched-policy': 'other', command: ['python3', PY_HELLO] });
    expect((await request(`${front.url}/Hello/1`)).status).toBe(200);
    expect(policyOf(front.pool.backends[0].pid!)).toBe(SCHED_OTHER);
  });

  it('/stats gives each process\'s policy as the kernel has it, the front\'s too', async () => {
    front = await startTestFront({ procs: 2, admin: '127.0.0.1:0', command: ['python3', PY_HELLO] });
    const f = front;
    type Row = { process: { schedPolicy: string } | null };
    const stats = async () => JSON.parse((await request(`http://${f.adminAddress}/stats`)).body.toString()) as { front: { schedPolicy: string }; pools: Array<{ backends: Row[] }> };
    let s = await stats();
    await waitUntil(async () => (s = await stats()).pools[0].backends.every((b) => b.process !== null), 'the processes sampled');
    expect(s.pools[0].backends.map((b) => b.process!.schedPolicy)).toEqual(['batch', 'batch']);
    expect(s.front.schedPolicy).toBe('batch');
    // read from the kernel, not from the flag: a process moved to SCHED_OTHER shows it
    const pid = f.pool.backends[1].pid!;
    expect(spawnSync('chrt', ['-o', '-p', '0', String(pid)]).status).toBe(0);
    await waitUntil(async () => (s = await stats()).pools[0].backends[1].process!.schedPolicy === 'other', 'b1 shows other');
  });

  it('putProcessUnder: every thread moves, a thread started after inherits it, restore() gives each its own back', async () => {
    const { restore, error } = putProcessUnder('batch');
    let worker: Worker | null = null;
    try {
      expect(error).toBeNull();
      expect(new Set(ownThreadPolicies())).toEqual(new Set([SCHED_BATCH]));
      const before = new Set(fs.readdirSync('/proc/self/task'));
      worker = new Worker('setInterval(() => {}, 1000)', { eval: true });
      await new Promise((resolve) => worker!.once('online', resolve));
      const started = fs.readdirSync('/proc/self/task').filter((t) => !before.has(t));
      expect(started.length).toBeGreaterThan(0);
      for (const tid of started) expect(threadSched(Number(tid))[0]).toBe(SCHED_BATCH);
    } finally {
      restore();
      await worker?.terminate();
    }
    expect(new Set(ownThreadPolicies())).toEqual(new Set([SCHED_OTHER]));
  });

  it('a thread that is gone: the native calls say ESRCH (what putProcessUnder skips)', async () => {
    const child = spawn('true', { stdio: 'ignore' });
    await new Promise((resolve) => child.once('exit', resolve));
    const gone = child.pid!; // reaped: no such thread now
    let err: NodeJS.ErrnoException | null = null;
    try { threadSched(gone); } catch (e) { err = e as NodeJS.ErrnoException; }
    expect(err?.code).toBe('ESRCH');
    err = null;
    try { setThreadSched(SCHED_BATCH, 0, gone); } catch (e) { err = e as NodeJS.ErrnoException; }
    expect(err?.code).toBe('ESRCH');
  });

  it('spawnUnderPolicy: the child gets the policy, the calling thread gets its own back, whichever it was', async () => {
    const own = threadSched();
    try {
      for (const [threadPolicy, wanted, expected] of [[SCHED_OTHER, 'batch', SCHED_BATCH], [SCHED_BATCH, 'other', SCHED_OTHER], [SCHED_BATCH, 'batch', SCHED_BATCH]] as const) {
        setThreadSched(threadPolicy, 0);
        const { result: child, error } = spawnUnderPolicy(wanted, () => spawn('sleep', ['5'], { stdio: 'ignore' }));
        try {
          expect(error).toBeNull();
          expect(policyOf(child.pid!)).toBe(expected);
          expect(threadSched()[0]).toBe(threadPolicy);
        } finally {
          child.kill('SIGKILL');
          await new Promise((resolve) => child.once('exit', resolve));
        }
      }
    } finally {
      setThreadSched(own[0], own[1]);
    }
  });
});
