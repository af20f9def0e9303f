// Clients as adversaries (issue 13, items 0, 2, 3), against the spawned CLI in front
// of each transport: FastCGI (the Python example) and HTTP (the Node app, and the
// Tornado Hello/N app where Debian's python3-tornado is installed).
//   0. 200 concurrent clients leaving abruptly — at the response head, mid-body, between
//      requests, mid-upload — and wrk -c200 killed with SIGKILL: the front lives, answers,
//      and has nothing left in flight.
//   2. Requests undici refuses (`OPTIONS *`, two Host headers, any Expect): each answered,
//      no slot kept busy; a normal request right after is answered at once.
//   3. curl's 5 MiB uploads (Expect: 100-continue above 1 MiB) arrive byte-exact; two Host
//      headers → 400.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, cliBusy, cliLines } from './cliLog.js';
import { PY_HELLO, ROOT, peer, spawnCli, tmpDir, waitUntil, type RunningCli } from './helpers.js';
import { cutLoad, finals, get, rawExchange, type RawExchange } from './rawHttp.js';

const NODE_APP = path.join(ROOT, 'examples/node/http-app.mjs');
const TORNADO_APP = path.join(ROOT, 'examples/python/tornado_hello.py');
const SYSTEM_PYTHON = '/usr/bin/python3';
const hasTornado = spawnSync(SYSTEM_PYTHON, ['-c', 'import tornado'], { stdio: 'ignore' }).status === 0;
if (process.env.CI && !hasTornado) throw new Error('python3-tornado is not installed; .ci/run should have installed it');
const CURL = peer('curl');
const WRK = peer('wrk');

interface Row { name: string; args: string[]; command: string[]; skip?: boolean }
const ROWS: Row[] = [
  { name: 'FastCGI: examples/python/hello.py', args: ['-n', '2'], command: ['python3', PY_HELLO] },
  { name: 'HTTP: examples/node/http-app.mjs', args: ['--protocol', 'http', '-n', '2', '--max-requests-per-backend', '8'], command: [process.execPath, NODE_APP] },
  { name: 'HTTP: examples/python/tornado_hello.py', args: ['--protocol', 'http', '-n', '2', '--max-requests-per-backend', '4'], command: [SYSTEM_PYTHON, TORNADO_APP], skip: !hasTornado },
];

/** Big enough that every client is cut long before its response ends. */
const BIG = '/bytes/20000000';

function describeExchange(ex: RawExchange): string {
  return `${ex.closed ? 'closed' : 'open'} after ${ex.ms} ms, ${ex.data.length} bytes: ${JSON.stringify(ex.data.toString('latin1').slice(0, 300))}`;
}

/** The front survived: its process is there, nothing is left in flight (bounded wait), a normal request is answered. */
async function expectHealthy(c: RunningCli, what: string): Promise<void> {
  expect(alive(c), `${what}: the front exited (${c.proc.exitCode ?? c.proc.signalCode}):\n${c.stderr().slice(-2000)}`).toBe(true);
  let busy = -1;
  await waitUntil(async () => (busy = await cliBusy(c)) === 0, `${what}: /stats shows no request in flight or queued (now ${busy})`, 20_000);
  const hp = c.base.replace('http://', '');
  const ex = await rawExchange(hp, get('/Hello/3', 'Connection: close\r\n'), { timeoutMs: 5000 });
  expect(finals(ex.parsed).map((r) => r.status), `${what}: a normal request afterwards: ${describeExchange(ex)}`).toEqual([200]);
  // The front's own lines (a child's stderr lines carry `stream`: Tornado logs its own "Uncaught exception"s).
  const fatal = cliLines(c).filter((l) => l.stream === undefined && (l.level >= 60 || /uncaught|unhandled/i.test(l.msg)));
  expect(fatal.map((l) => l.msg), `${what}: fatal log lines`).toEqual([]);
}

/** Requests undici refuses (or once did), and what the client must get. */
const ODD: Array<[string, RegExp]> = [
  ['OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', /^[2-5]\d\d$/],
  ['GET /Hello/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: example.com\r\nConnection: close\r\n\r\n', /^400$/],
  ['GET /Hello/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n', /^(100 )?200$/],
  ['POST /sha256 HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello', /^(100 )?200$/],
  ['GET /Hello/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: the-unexpected\r\nConnection: close\r\n\r\n', /^417$/],
];

/**
 * 50 odd requests one after another, each on its own connection; then a normal request and
 * a burst of 20 must be answered within 2 s (had each odd request kept a slot or a backend
 * connection, they would wait for good). Wrong answers are reported after the hang check.
 */
async function expectOddRequestsHarmless(c: RunningCli): Promise<void> {
  const hp = c.base.replace('http://', '');
  const wrong: string[] = [];
  for (let i = 0; i < 50; i++) {
    const [head, want] = ODD[i % ODD.length];
    const ex = await rawExchange(hp, head, { timeoutMs: 3000 });
    const statuses = ex.parsed.responses.map((r) => r.status).join(' ');
    if (ex.parsed.error !== null || !want.test(statuses)) wrong.push(`#${i} ${JSON.stringify(head.slice(0, 70))} → ${describeExchange(ex)}`);
    if (!ex.closed) break; // unanswered: the front hangs; what follows would only wait too
  }
  const started = Date.now();
  const ok = await rawExchange(hp, get('/Hello/1', 'Connection: close\r\n'), { timeoutMs: 5000 });
  expect(finals(ok.parsed).map((r) => r.status), `a normal request after the odd ones: ${describeExchange(ok)}\nodd ones answered wrongly:\n${wrong.join('\n')}`).toEqual([200]);
  expect(Date.now() - started).toBeLessThan(2000);
  const burst = await Promise.all(Array.from({ length: 20 }, () => rawExchange(hp, get('/Hello/1', 'Connection: close\r\n'), { timeoutMs: 5000 })));
  expect(burst.map((ex) => finals(ex.parsed).map((r) => r.status).join())).toEqual(Array(20).fill('200'));
  expect(Date.now() - started).toBeLessThan(2000);
  await waitUntil(async () => (await cliBusy(c)) === 0, 'no request is left in flight', 2000);
  expect(wrong, 'odd requests answered wrongly').toEqual([]);
}

// Item 2 where it bites: one HTTP backend with 2 slots, so 2 requests that each lose
// an undici connection for good are enough to hang every request after them.
describe('requests undici refuses, against one HTTP backend with 2 slots (item 2)', () => {
  let cli: RunningCli;
  beforeAll(async () => {
    cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--shutdown-grace', '3000', '--protocol', 'http', '-n', '1',
      '--max-requests-per-backend', '2', '--', process.execPath, NODE_APP]);
  }, 30_000);
  afterAll(async () => { await cli?.stop(); });

  it('50 odd requests, then normal ones answered at once', async () => {
    await expectOddRequestsHarmless(cli);
  }, 60_000);
});

for (const row of ROWS) {
  describe.skipIf(row.skip)(`hostile clients against ${row.name}`, () => {
    let cli: RunningCli;
    let dir: string;
    beforeAll(async () => {
      dir = tmpDir('upfront-hostile-clients-');
      cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--shutdown-grace', '3000', ...row.args, '--', ...row.command]);
    }, 30_000);
    afterAll(async () => {
      await cli?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    // --- item 0: clients leaving abruptly ---

    for (const cut of ['head', 'body', 'between', 'upload'] as const) {
      it(`200 clients leaving ${cut === 'head' ? 'at the response head' : cut === 'body' ? `mid-body (${BIG})` : cut === 'between' ? 'between requests' : 'mid-upload'} for 1 s: the front lives and has nothing in flight`, async () => {
        const { cuts } = await cutLoad(cli.base.replace('http://', ''), cut, 200, 1000, BIG);
        expect(cuts).toBeGreaterThan(0);
        await expectHealthy(cli, `after cuts ${cut}`);
      }, 60_000);
    }

    it.skipIf(!WRK)('wrk -c200 killed with SIGKILL after 2 s (on /Hello/100 and /bytes/1000000): the front lives and has nothing in flight', async () => {
      for (const p of ['/Hello/100', '/bytes/1000000']) {
        const wrk = spawn(WRK!, ['-t2', '-c200', '-d30s', '--timeout', '5s', `${cli.base}${p}`], { stdio: 'ignore' });
        const exited = new Promise((r) => wrk.once('exit', r));
        // The load's length is the point here, not an event to wait for.
        await new Promise((r) => setTimeout(r, 2000));
        wrk.kill('SIGKILL');
        await exited;
        await expectHealthy(cli, `after wrk on ${p} was SIGKILLed`);
      }
    }, 60_000);

    // --- item 2: requests undici refuses ---

    it('50 odd requests (OPTIONS *, two Host headers, Expect) are each answered and hold no slot; a normal request right after is answered at once', async () => {
      await expectOddRequestsHarmless(cli);
    }, 60_000);

    // --- item 3: uploads through curl, and two Host headers ---

    it.skipIf(!CURL)('curl uploads 5 MiB (-T and --data-binary @file, Expect: 100-continue) byte-exact', async () => {
      const file = path.join(dir, 'upload.bin');
      const data = crypto.randomBytes(5 * 1024 * 1024);
      fs.writeFileSync(file, data);
      const want = crypto.createHash('sha256').update(data).digest('hex');
      for (const how of [['-T', file], ['--data-binary', `@${file}`, '-H', 'Content-Type: application/octet-stream']]) {
        const r = spawnSync(CURL!, ['-sS', '-v', '--max-time', '20', ...how, `${cli.base}/sha256`], { encoding: 'latin1', timeout: 30_000 });
        expect(r.stderr, `curl ${how[0]} sent Expect (the case this is about)`).toMatch(/^> Expect: 100-continue/m);
        expect(r.status, `curl ${how[0]}: ${r.stderr.slice(-800)}`).toBe(0);
        expect(r.stderr, `curl ${how[0]}`).toMatch(/^< HTTP\/1\.1 200/m);
        expect(JSON.parse(r.stdout), `curl ${how[0]}`).toEqual({ bytes: data.length, sha256: want });
      }
    }, 60_000);

    it('two Host headers → 400', async () => {
      const ex = await rawExchange(cli.base.replace('http://', ''), 'GET /Hello/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n', { finalResponses: 1, timeoutMs: 5000 });
      expect(finals(ex.parsed).map((r) => r.status), describeExchange(ex)).toEqual([400]);
    }, 10_000);
  });
}

// Out of file descriptors: more connections than the front may hold. libuv accepts and
// closes what it cannot hold (its reserve-fd trick); net would turn an accept error into an
// 'error' event, fatal with no listener — the front's own accept handler must not.
describe.skipIf(!fs.existsSync('/usr/bin/prlimit'))('more connections than open files allow (item 0)', () => {
  it('300 connections against a limit of 150 open files: each is answered or closed, the front lives and serves again', async () => {
    const c = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--shutdown-grace', '3000', '-n', '1', '--', 'python3', PY_HELLO]);
    const sockets: net.Socket[] = [];
    try {
      const pid = String(c.proc.pid);
      const before = spawnSync('/usr/bin/prlimit', ['--pid', pid, '--nofile', '--output=SOFT,HARD', '--noheadings'], { encoding: 'utf8' }).stdout.trim().split(/\s+/);
      expect(before, 'the front\'s open-files limit').toHaveLength(2);
      // The soft limit only: without CAP_SYS_RESOURCE (a container) a hard limit never goes up again.
      expect(spawnSync('/usr/bin/prlimit', ['--pid', pid, `--nofile=150:${before[1]}`]).status).toBe(0);
      const url = new URL(c.base);
      let closed = 0;
      let connected = 0;
      for (let i = 0; i < 300; i++) {
        const s = net.connect(Number(url.port), url.hostname);
        s.on('connect', () => { connected++; });
        s.on('error', () => {});
        s.on('close', () => { closed++; });
        sockets.push(s);
      }
      // The kernel completes every handshake (backlog 1024); the front holds what it can.
      await waitUntil(() => connected + closed >= 300, 'every connection is made (or refused)', 10_000);
      await waitUntil(() => closed > 0, 'the front closes the connections it cannot hold', 10_000);
      expect(alive(c), c.stderr().slice(-2000)).toBe(true);
      // A request on each connection still open: an answer (200, or a 5xx if the front had no
      // fd left for the app) or a close — never a hang, never an exit.
      const outcomes = await Promise.all(sockets.filter((s) => !s.destroyed).map((s) => new Promise<string>((resolve) => {
        let data = '';
        const timer = setTimeout(() => resolve(`hang: ${JSON.stringify(data.slice(0, 100))}`), 10_000);
        s.on('data', (d: Buffer) => { data += d.toString('latin1'); });
        // Connection: close: the front closes after its answer.
        s.on('close', () => { clearTimeout(timer); resolve(data === '' ? 'closed' : /^HTTP\/1\.1 (\d{3}) /.exec(data)?.[1] ?? `garbled: ${JSON.stringify(data.slice(0, 100))}`); });
        s.write('GET /Hello/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      })));
      expect(outcomes.filter((o) => !/^(closed|200|50[234])$/.test(o)), 'unclear outcomes').toEqual([]);
      expect(outcomes.filter((o) => o === '200').length, JSON.stringify(outcomes)).toBeGreaterThan(0);
      for (const s of sockets) s.destroy();
      // Back to what it was.
      expect(spawnSync('/usr/bin/prlimit', ['--pid', pid, `--nofile=${before[0]}:${before[1]}`]).status).toBe(0);
      await expectHealthy(c, 'after the fd limit');
    } finally {
      for (const s of sockets) s.destroy();
      await c.stop();
    }
  }, 60_000);
});
