// Logs that help an operator: a child's stderr at warn (its error stream), stdout at
// info; the ready line short; the queue's refusals warned about with counts and the
// limit to raise, at most once per cause every 10 s; the banner's hints work on unix
// sockets too.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { PY_HELLO, ROOT, peer, request, startTestFront, tmpDir, waitUntil, type TestFront } from './helpers.js';

const CURL = peer('curl');

describe('logs', () => {
  let front: TestFront | null = null;
  afterEach(async () => {
    await front?.stop();
    front = null;
  });

  it('a child\'s stderr is logged at warn, its stdout at info; the ready line is short', async () => {
    front = await startTestFront({ procs: 1, command: ['/bin/sh', '-c', `echo to-stdout; echo to-stderr >&2; exec python3 ${PY_HELLO}`] });
    const err = await front.log.waitFor((l) => l.msg === 'to-stderr', 'the stderr line');
    const out = await front.log.waitFor((l) => l.msg === 'to-stdout', 'the stdout line');
    expect(err).toMatchObject({ level: 40, backend: 'b0', stream: 'stderr', pid: expect.any(Number) });
    expect(out).toMatchObject({ level: 30, backend: 'b0', stream: 'stdout' });
    const ready = await front.log.waitFor((l) => /^backend b0 ready/.test(l.msg), 'the ready line');
    expect(ready.msg).toBe(`backend b0 ready: pid ${ready.pid}, 1 slot`);
    expect(ready).toMatchObject({ multithreaded: false, multiplexed: false, slots: 1, source: expect.any(String) }); // the details stay in the fields
  });

  it('shed and queue timeouts: one warning per cause, with the count and the limit to raise', async () => {
    front = await startTestFront({ procs: 1, overflow: 'shed', command: ['python3', PY_HELLO] });
    const statuses = await Promise.all(Array.from({ length: 4 }, () => request(`${front!.url}/sleep/300`, { agent: false }).then((r) => r.status)));
    const shed = statuses.filter((s) => s === 503).length;
    expect(shed).toBeGreaterThan(0);
    const line = await front.log.waitFor((l) => l.cause === 'shed', 'the shed warning', 5000);
    expect(line).toMatchObject({ level: 40, refused: shed, total: shed, status: 503, slots: 1 });
    expect(line.msg).toMatch(new RegExp(`^shed: ${shed} requests? answered 503 in the last \\d+ s \\(${shed} since start\\), all 1 slots busy \\(--overflow shed\\): add processes, or use --overflow queue$`));
    await front.stop();

    front = await startTestFront({ procs: 1, 'queue-timeout': 200, command: ['python3', PY_HELLO] });
    const timedOut = (await Promise.all(Array.from({ length: 5 }, () => request(`${front!.url}/sleep/700`, { agent: false }).then((r) => r.status)))).filter((s) => s === 503).length;
    expect(timedOut).toBeGreaterThan(0);
    const t = await front.log.waitFor((l) => l.cause === 'queue-timeout', 'the queue-timeout warning', 5000);
    expect(t).toMatchObject({ level: 40, refused: timedOut, queueTimeoutMs: 200 });
    expect(t.msg).toMatch(/^front queue timeout: \d+ requests? answered 503 in the last \d+ s \(\d+ since start\) after waiting 200 ms for a slot \(--queue-timeout\)/);
    // More refusals within 10 s: counted, not warned again.
    await Promise.all(Array.from({ length: 4 }, () => request(`${front!.url}/sleep/700`, { agent: false })));
    await waitUntil(() => front!.stats.frontResponses!.counts['queue-timeout'] > timedOut, 'more timeouts');
    const n = front.stats.history!.sampledAt;
    await waitUntil(() => front!.stats.history!.sampledAt > n, 'a stats tick after them');
    expect(front.log.count((l) => l.cause === 'queue-timeout')).toBe(1);
  });

  it.skipIf(!CURL)('the banner\'s hints work with unix sockets (curl --unix-socket, upfront top --admin unix:)', async () => {
    const dir = tmpDir();
    const pub = path.join(dir, 'front.sock');
    const adm = path.join(dir, 'admin.sock');
    const cli = spawn(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'run', '--listen', `unix:${pub}`, '--admin', `unix:${adm}`, '-n', '1', '--', 'python3', PY_HELLO],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    cli.stderr!.on('data', (c) => { err += c; });
    const exited = new Promise((r) => cli.once('exit', r));
    try {
      await waitUntil(() => /Ctrl-C stops it/.test(err) || cli.exitCode !== null, 'the banner', 20_000);
      expect(err).toContain(`  curl --unix-socket ${pub} http://localhost/Hello/100\n`);
      expect(err).toContain(`  curl --unix-socket ${adm} http://localhost/stats\n`);
      expect(err).toContain(`  upfront top --admin unix:${adm}\n`);
      expect(err).not.toMatch(/curl unix:/);
      // They work as printed.
      for (const line of err.split('\n').filter((l) => /^ {2}curl /.test(l))) {
        const args = line.trim().split(' ').slice(1);
        const { stdout } = await promisify(execFile)(CURL!, ['-sS', '-o', '/dev/null', '-w', '%{http_code}', ...args], { timeout: 10_000 });
        expect(stdout, line).toBe('200');
      }
    } finally {
      cli.kill('SIGTERM');
      const timer = setTimeout(() => cli.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
