// Hostile inputs against the front as users start it: the built binary, `dist/cli.js run`,
// as a process of its own, one long-lived process per block taking every input in turn.
// The in-process suites (http1.test.ts, faults.test.ts) see a refusal or a 502 but not
// what only the real binary would show: an uncaught exception or an unhandled rejection
// (fatal there, a log line at most in a test worker), a process.exit on some path, a log
// call that throws on the way to stdout. So after every input: the process is still
// there (no exit, no signal), nothing is left in flight, and a normal GET /Hello/1 is
// answered 200; at the end its stderr and log show no crash, and a SIGTERM stops it
// with exit code 0, its backends and socket dir gone.
// The expectations are those of the suites the inputs come from: the refusal table of
// http1.test.ts, hostile-{requests,clients,targets}.test.ts; for backends faults.test.ts
// and hostile-backends.test.ts (the fault modes of test/fixtures/fault-backend.mjs, here
// served by an in-test FastCGI server on a unix socket, one mode per request path,
// reached with --upstream).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, cliBusy, cliLines, cliStats, waitForCliLine } from './cliLog.js';
import { PY_HELLO, pidAlive, sha256, spawnCli, tmpDir, waitUntil, type RunningCli } from './helpers.js';
import { talk, type Talk } from './http1-wire.js';
import { finals, get, header, parseResponses, rawExchange, type RawExchange } from './rawHttp.js';

function describeExchange(ex: RawExchange): string {
  return `${ex.closed ? 'closed' : 'open'} after ${ex.ms} ms, ${ex.data.length} bytes: ${JSON.stringify(ex.data.toString('latin1').slice(0, 300))}`;
}

function describeTalk(t: Talk): string {
  return `${t.closed ? 'closed' : 'open'} after ${t.ms} ms, ${t.raw.length} bytes: ${JSON.stringify(t.raw.toString('latin1').slice(0, 300))}`;
}

function hostPort(c: RunningCli): string {
  return c.base.replace('http://', '');
}

function port(c: RunningCli): number {
  return Number(new URL(c.base).port);
}

/** The process lives, has nothing in flight or queued, and answers a normal request. */
async function expectServing(c: RunningCli, what: string): Promise<void> {
  expect(alive(c), `${what}: the CLI exited (${c.proc.exitCode ?? c.proc.signalCode}):\n${c.stderr().slice(-2000)}`).toBe(true);
  let busy = -1;
  await waitUntil(async () => (busy = await cliBusy(c)) === 0, `${what}: /stats shows no request in flight or queued (now ${busy})`, 10_000);
  const ex = await rawExchange(hostPort(c), get('/Hello/1', 'Connection: close\r\n'), { timeoutMs: 5000 });
  expect(finals(ex.parsed).map((r) => r.status), `${what}: GET /Hello/1 afterwards: ${describeExchange(ex)}`).toEqual([200]);
  expect(alive(c), `${what}: the CLI exited after the normal request:\n${c.stderr().slice(-2000)}`).toBe(true);
}

/** What a crash (or a caught programming error) leaves in the CLI's stderr. */
const CRASH_IN_STDERR = /uncaught|unhandled|TypeError|RangeError|ReferenceError|Node\.js v\d+|^\s+at /im;

/** The front's own log lines (a child's stderr lines carry `stream`) that tell of a crash or a caught programming error. */
function crashLines(c: RunningCli): string[] {
  return cliLines(c)
    .filter((l) => l.stream === undefined)
    .filter((l) => l.level >= 60 || /uncaught|unhandled/i.test(l.msg) || /TypeError|RangeError|ReferenceError/.test(JSON.stringify(l)))
    .map((l) => JSON.stringify(l).slice(0, 500));
}

/** Gone: no such process, or a zombie nobody has reaped yet (it runs nothing). */
function gone(pid: number): boolean {
  if (!pidAlive(pid)) return true;
  try {
    return /^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** SIGTERM: exit code 0 after a graceful stop that found nothing open; nothing in stderr or the log tells of a crash; no backend process and no socket dir left. */
async function expectCleanEnd(c: RunningCli): Promise<void> {
  const stats = await cliStats(c);
  const pids: number[] = stats.pools.flatMap((p: { backends: Array<{ pid: number | null }> }) => p.backends.map((b) => b.pid)).filter((p: number | null): p is number => typeof p === 'number');
  const socketDir = path.join(process.env.TMPDIR ?? os.tmpdir(), `upfront-${c.proc.pid}`);
  expect(alive(c), `the CLI exited before the stop:\n${c.stderr().slice(-2000)}`).toBe(true);
  await c.stop();
  expect([c.proc.exitCode, c.proc.signalCode], `how the CLI ended:\n${c.stderr().slice(-2000)}`).toEqual([0, null]);
  expect(c.stderr(), 'the CLI\'s stderr').not.toMatch(CRASH_IN_STDERR);
  expect(crashLines(c), 'log lines telling of a crash').toEqual([]);
  expect(cliLines(c).some((l) => l.msg === 'stopped'), 'a "stopped" log line').toBe(true);
  expect(cliLines(c).find((l) => /shutdown grace .* is over/.test(l.msg)), 'the graceful stop waited out --shutdown-grace: a response never closed').toBeUndefined();
  await waitUntil(() => pids.every(gone), `the backend processes ${pids.join(', ')} are gone`, 10_000);
  expect(fs.existsSync(socketDir), `the socket dir ${socketDir} is removed`).toBe(false);
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/**
 * Refusals as http1.test.ts's table has them (and hostile-{requests,targets} for the ones marked):
 * status, the reason in a text/plain body, Connection: close, then a close. `null`: the suite
 * asserts the status only (the front's answer to a request it parsed, not the http1 layer's refusal).
 */
const REFUSALS: Array<[string, string, number, RegExp | null]> = [
  ['an HTTP/1.1 request without Host', 'GET /Hello/1 HTTP/1.1\r\n\r\n', 400, /Host/],
  ['a malformed request line (hostile-targets: "garbage")', 'garbage\r\n\r\n', 400, /invalid byte/],
  ['obs-fold (a header line starting with whitespace)', 'GET /Hello/1 HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n', 400, /folding/],
  ['bare LF line ends', 'GET /Hello/1 HTTP/1.1\nHost: a\n\n', 400, /bare LF/],
  ['a NUL in a header value', 'GET /Hello/1 HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n', 400, /0x00/],
  ['a NUL in the path, %00 (hostile-requests)', 'GET /env%00.jpg HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 400, null],
  ['Content-Length and Transfer-Encoding both', 'POST /sha256 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /Content-Length and Transfer-Encoding/],
  ['a signed Content-Length (-1)', 'POST /sha256 HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n', 400, /Content-Length/],
  ['two Content-Length fields', 'POST /sha256 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello', 400, /two Content-Length/],
  ['an unknown method (BREW)', 'BREW /Hello/1 HTTP/1.1\r\nHost: a\r\n\r\n', 501, /unknown method BREW/],
  ['HTTP/2.0 in the request line', 'GET /Hello/1 HTTP/2.0\r\nHost: a\r\n\r\n', 505, /HTTP\/2/],
  ['the HTTP/2 preface (PRI * HTTP/2.0)', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 505, /HTTP\/2/],
  ['a target over 8192 bytes', `GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: a\r\n\r\n`, 414, /8192/],
  ['a header over 16 KiB', `GET /Hello/1 HTTP/1.1\r\nHost: a\r\nX: ${'a'.repeat(17_000)}\r\n\r\n`, 431, /16384/],
  ['101 header fields', `GET /Hello/1 HTTP/1.1\r\nHost: a\r\n${'X: y\r\n'.repeat(101)}\r\n`, 431, /100 header/],
  ['a bad chunk size ("5 ")', 'POST /sha256 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n', 400, /chunk size/],
];

/** Sends a head with Expect: 100-continue and only the head; the body goes once 100 Continue came. */
function expectContinueFlow(hp: string, body: Buffer): Promise<{ interim: string; final: RawExchange['parsed']; closed: boolean }> {
  const colon = hp.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(hp.slice(colon + 1)), hp.slice(0, colon));
    let data = Buffer.alloc(0);
    let interim = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no answer within 5 s: ${JSON.stringify(data.toString('latin1').slice(0, 300))}`)); }, 5000);
    const done = (closed: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ interim, final: parseResponses(data.subarray(interim.length), closed), closed });
    };
    s.on('error', () => {});
    s.on('close', () => done(true));
    s.on('data', (c: Buffer) => {
      data = Buffer.concat([data, c]);
      const text = data.toString('latin1');
      if (interim === '' && /^HTTP\/1\.1 100 [^\r]*\r\n\r\n/.test(text)) {
        interim = /^HTTP\/1\.1 100 [^\r]*\r\n\r\n/.exec(text)![0];
        s.write(body);
      }
      if (interim !== '' && finals(parseResponses(data.subarray(interim.length), false)).some((r) => r.complete)) done(false);
      else if (interim === '' && /^HTTP\/1\.1 [2-5]/.test(text) && finals(parseResponses(data, false)).some((r) => r.complete)) done(false);
    });
    s.on('connect', () => s.write(`POST /sha256 HTTP/1.1\r\nHost: ${hp}\r\nExpect: 100-continue\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`));
  });
}

/** A client that leaves at the chosen moment, by FIN or RST; resolves once its socket is closed. */
function leaveAt(hp: string, how: 'fin' | 'rst', what: 'mid-body' | 'mid-response'): Promise<{ bytesIn: number }> {
  const colon = hp.lastIndexOf(':');
  return new Promise((resolve) => {
    const s = net.connect(Number(hp.slice(colon + 1)), hp.slice(0, colon));
    let bytesIn = 0;
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      if (how === 'rst') s.resetAndDestroy();
      else s.destroy();
    };
    const timer = setTimeout(leave, 5000); // bounded
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(timer); resolve({ bytesIn }); });
    s.on('data', (c: Buffer) => {
      bytesIn += c.length;
      if (what === 'mid-response') leave();
    });
    s.on('connect', () => {
      if (what === 'mid-body') {
        // 64 KiB of a declared 1 MB, then gone.
        s.write(`POST /sha256 HTTP/1.1\r\nHost: ${hp}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n`);
        s.write(Buffer.alloc(65536, 0x61), () => setImmediate(leave));
      } else {
        s.write(get('/bytes/20000000'));
      }
    });
  });
}

describe('dist/cli.js run (FastCGI, hello.py) against hostile clients, one process throughout', () => {
  let cli: RunningCli;
  beforeAll(async () => {
    cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '1', '--shutdown-grace', '3000', '--client-header-timeout', '1500',
      '--', 'python3', PY_HELLO]);
    await expectServing(cli, 'at start');
  }, 30_000);
  afterAll(async () => { await cli?.stop(); });

  for (const [what, bytes, status, why] of REFUSALS) {
    it(`${what} → ${status}, then a close; the process lives and serves`, async () => {
      const t = await talk(port(cli), Buffer.from(bytes, 'latin1'), { expect: 1, closeWaitMs: 1000, idleMs: 5000 });
      const r = t.responses[0];
      expect(r?.status, `${what}: ${describeTalk(t)}`).toBe(status);
      expect(t.responses, describeTalk(t)).toHaveLength(1);
      if (why !== null) {
        expect(r.headers.get('content-type'), describeTalk(t)).toEqual(['text/plain; charset=utf-8']);
        expect(r.headers.get('connection'), describeTalk(t)).toEqual(['close']);
        expect(r.body.toString(), describeTalk(t)).toMatch(why);
      }
      expect(t.closed, `the connection closes after the refusal: ${describeTalk(t)}`).toBe(true);
      await expectServing(cli, what);
    }, 20_000);
  }

  it('a slowloris head (a byte per 100 ms) → 408 once --client-header-timeout (1.5 s) passed, then a close', async () => {
    const head = Buffer.from(`GET /Hello/1 HTTP/1.1\r\nHost: a\r\nX-Slow: ${'z'.repeat(100)}\r\n\r\n`);
    const t = await talk(port(cli), [...head].map((b) => Buffer.from([b])), { expect: 1, gapMs: 100, idleMs: 5000, closeWaitMs: 1000 });
    expect(t.responses.map((r) => r.status), describeTalk(t)).toEqual([408]);
    expect(t.closed, describeTalk(t)).toBe(true);
    expect(t.ms).toBeGreaterThanOrEqual(1400);
    expect(t.ms).toBeLessThan(4000);
    await expectServing(cli, 'slowloris');
  }, 20_000);

  it('Upgrade: websocket is served as an ordinary request and the connection stays HTTP/1.1 (a pipelined GET after it is answered)', async () => {
    const upgrade = 'GET /Hello/1 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
    const t = await talk(port(cli), Buffer.from(upgrade + 'GET /Hello/2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'), { expect: 2, closeWaitMs: 1000 });
    expect(t.responses.map((r) => r.status), describeTalk(t)).toEqual([200, 200]);
    expect(t.responses.flatMap((r) => r.interim), 'no 101 Switching Protocols').toEqual([]);
    await expectServing(cli, 'Upgrade');
  }, 20_000);

  it('Expect: 100-continue with the body in the same write (hostile-clients) → (100 and) 200, the body byte-exact', async () => {
    const ex = await rawExchange(hostPort(cli), 'POST /sha256 HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello', { timeoutMs: 5000 });
    expect(ex.parsed.error, describeExchange(ex)).toBeNull();
    expect(ex.parsed.responses.map((r) => r.status).join(' '), describeExchange(ex)).toMatch(/^(100 )?200$/);
    expect(JSON.parse(finals(ex.parsed)[0].body.toString())).toEqual({ bytes: 5, sha256: sha256(Buffer.from('hello')) });
    await expectServing(cli, 'Expect with the body at once');
  }, 20_000);

  it('Expect: 100-continue, the body sent only after 100 Continue → 100, then 200 with the body byte-exact', async () => {
    const body = Buffer.alloc(200_000, 0x62);
    const r = await expectContinueFlow(hostPort(cli), body);
    expect(r.interim, 'a 100 Continue before the body').toMatch(/^HTTP\/1\.1 100 /);
    const f = finals(r.final);
    expect(f.map((x) => x.status)).toEqual([200]);
    expect(JSON.parse(f[0].body.toString())).toEqual({ bytes: body.length, sha256: sha256(body) });
    await expectServing(cli, 'Expect, waiting for 100');
  }, 20_000);

  it('pipelined: a good request, a malformed one (obs-fold), a good one → 200 then 400, then a close (the third is never read)', async () => {
    const bytes = get('/Hello/1') + 'GET /Hello/1 HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n' + get('/Hello/2');
    const t = await talk(port(cli), Buffer.from(bytes, 'latin1'), { expect: 3, closeWaitMs: 1000, idleMs: 5000 });
    expect(t.responses.map((r) => r.status), describeTalk(t)).toEqual([200, 400]);
    expect(t.responses[1].body.toString()).toMatch(/folding/);
    expect(t.closed, describeTalk(t)).toBe(true);
    await expectServing(cli, 'pipelined with a bad one');
  }, 20_000);

  it('a half-closed client (request, then FIN): answered or closed, never a hang', async () => {
    const colon = hostPort(cli).lastIndexOf(':');
    const got = await new Promise<{ data: Buffer; closed: boolean }>((resolve) => {
      const s = net.connect(port(cli), hostPort(cli).slice(0, colon));
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => { s.destroy(); resolve({ data: Buffer.concat(chunks), closed: false }); }, 5000);
      s.on('error', () => {});
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('close', () => { clearTimeout(timer); resolve({ data: Buffer.concat(chunks), closed: true }); });
      s.on('connect', () => s.end(get('/Hello/1')));
    });
    const what = `${got.closed ? 'closed' : 'open'}, ${got.data.length} bytes: ${JSON.stringify(got.data.toString('latin1').slice(0, 200))}`;
    expect(got.closed, `the front closes the half-closed connection: ${what}`).toBe(true);
    const p = parseResponses(got.data, true);
    expect(p.error, what).toBeNull();
    // node:http and nginx abandon a request whose client half-closed (http1/connection.ts onEnd); a 200 is fine too.
    expect(finals(p).map((r) => `${r.status} ${r.complete}`), what).toEqual(got.data.length === 0 ? [] : ['200 true']);
    await expectServing(cli, 'half-closed client');
  }, 20_000);

  for (const how of ['fin', 'rst'] as const) {
    it(`a client leaving mid-body (64 KiB of 1 MB, then ${how.toUpperCase()}): nothing left in flight`, async () => {
      await leaveAt(hostPort(cli), how, 'mid-body');
      await expectServing(cli, `mid-body ${how}`);
    }, 30_000);

    it(`a client leaving mid-response (/bytes/20000000, ${how.toUpperCase()} at the first bytes): nothing left in flight`, async () => {
      const { bytesIn } = await leaveAt(hostPort(cli), how, 'mid-response');
      expect(bytesIn).toBeGreaterThan(0);
      await expectServing(cli, `mid-response ${how}`);
    }, 30_000);
  }

  it('at the end: SIGTERM → exit 0; no "Uncaught", "unhandled", TypeError or RangeError in stderr or the log; no backend process or socket dir left', async () => {
    await expectCleanEnd(cli);
  }, 30_000);
});

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

const FCGI = { BEGIN_REQUEST: 1, ABORT_REQUEST: 2, END_REQUEST: 3, PARAMS: 4, STDIN: 5, STDOUT: 6, STDERR: 7, GET_VALUES: 9, GET_VALUES_RESULT: 10 } as const;

function record(type: number, id: number, content: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = typeof content === 'string' ? Buffer.from(content, 'latin1') : content;
  const h = Buffer.alloc(8);
  h[0] = 1;
  h[1] = type;
  h.writeUInt16BE(id, 2);
  h.writeUInt16BE(body.length, 4);
  return Buffer.concat([h, body]);
}
const endRequest = (id: number, protocolStatus = 0) => record(FCGI.END_REQUEST, id, Buffer.from([0, 0, 0, 0, protocolStatus, 0, 0, 0]));
const stdoutAll = (id: number, text: string) => Buffer.concat([record(FCGI.STDOUT, id, text), record(FCGI.STDOUT, id), endRequest(id)]);

function decodeParams(buf: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let p = 0;
  const len = () => {
    if (buf[p] < 128) return buf[p++];
    const n = buf.readUInt32BE(p) & 0x7fffffff;
    p += 4;
    return n;
  };
  while (p < buf.length) {
    const nl = len();
    const vl = len();
    const name = buf.toString('latin1', p, p + nl);
    p += nl;
    out.set(name, buf.toString('latin1', p, p + vl));
    p += vl;
  }
  return out;
}

/** The bytes a client must never see parsed as a response of its own (fault-backend.mjs). */
const SMUGGLED = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Smuggled: yes\r\n\r\nPWNED';

/** What the fake upstream sends for a request to /m/MODE (fault-backend.mjs's modes, plus two malformed records); any other path: 200 "hello". */
function answer(sock: net.Socket, id: number, mode: string): void {
  switch (mode) {
    case 'garbage': sock.write('HTTP/1.1 200 OK\r\n\r\nthis is not FastCGI'); return;
    case 'wrong-id': sock.write(record(FCGI.STDOUT, id + 5, 'Content-Type: text/plain\r\n\r\nnot yours')); return;
    case 'end-unknown': sock.write(Buffer.concat([endRequest(id + 7), stdoutAll(id, 'Content-Type: text/plain\r\n\r\nhello')])); return;
    // 64 KB of FCGI_STDERR that is no UTF-8 (and a NUL, an ESC), then a good answer: the front logs it.
    case 'stderr-flood':
      sock.write(Buffer.concat([record(FCGI.STDERR, id, Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0x1b]), Buffer.alloc(65000, 0xc3)])),
        stdoutAll(id, 'Content-Type: text/plain\r\n\r\nhello')]));
      return;
    case 'truncated': sock.end(record(FCGI.STDOUT, id, 'Content-Type: text/plain\r\n\r\nhalf').subarray(0, 12)); return;
    case 'close': sock.destroy(); return;
    case 'bad-type': sock.write(record(42, id, 'what is this')); return;
    // A malformed record: END_REQUEST with 3 content bytes instead of 8.
    case 'end-short': sock.write(record(FCGI.END_REQUEST, id, Buffer.from([0, 0, 0]))); return;
    // A response head of ~8 KB against --max-head-bytes 4096.
    case 'big-head': sock.write(stdoutAll(id, `Content-Type: text/plain\r\nX-Big: ${'x'.repeat(8000)}\r\n\r\nok`)); return;
    case 'cl-two': sock.write(stdoutAll(id, 'Content-Type: text/plain\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello, ')); return;
    case 'bad-header-char': sock.write(stdoutAll(id, 'Content-Type: text/plain\r\nX-Bad: a\x00b\r\nContent-Length: 2\r\n\r\nok')); return;
    case 'status-1xx': sock.write(stdoutAll(id, 'Status: 100 Continue\r\n\r\n')); return;
    case 'cl-long': sock.write(stdoutAll(id, `Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello${SMUGGLED}`)); return;
    // The head and 30000 of 100000 body bytes, then the connection closed (fault-backend's crash-mid, as a close).
    case 'mid-response':
      sock.write(record(FCGI.STDOUT, id, Buffer.concat([Buffer.from('Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n'), Buffer.alloc(30000, 97)])),
        () => sock.destroy());
      return;
    case 'silent': return;
    case 'overloaded': sock.write(endRequest(id, 2)); return;
    default: sock.write(stdoutAll(id, 'Content-Type: text/plain\r\n\r\nhello')); return;
  }
}

/** A FastCGI server on a unix socket in this process: answers GET_VALUES (empty), and each request as its path says. */
function fakeUpstream(socketPath: string): Promise<{ server: net.Server; sockets: Set<net.Socket>; requests: string[] }> {
  const sockets = new Set<net.Socket>();
  const requests: string[] = [];
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    const params = new Map<number, Buffer[]>();
    const uris = new Map<number, string>();
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 8 && !sock.destroyed) {
        const len = buf.readUInt16BE(4);
        const pad = buf[6];
        if (buf.length < 8 + len + pad) break;
        const type = buf[1];
        const id = buf.readUInt16BE(2);
        const content = buf.subarray(8, 8 + len);
        buf = buf.subarray(8 + len + pad);
        if (type === FCGI.GET_VALUES) sock.write(record(FCGI.GET_VALUES_RESULT, 0));
        else if (type === FCGI.BEGIN_REQUEST) params.set(id, []);
        else if (type === FCGI.PARAMS && len > 0) params.get(id)?.push(Buffer.from(content));
        else if (type === FCGI.PARAMS) uris.set(id, decodeParams(Buffer.concat(params.get(id) ?? [])).get('REQUEST_URI') ?? '');
        else if (type === FCGI.STDIN && len === 0) {
          const uri = uris.get(id) ?? '';
          requests.push(uri);
          answer(sock, id, uri.startsWith('/m/') ? uri.slice(3) : 'ok');
        }
        // ABORT_REQUEST is ignored, as fault-backend.mjs does.
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve({ server, sockets, requests }));
  });
}

/** What the client may see (hostile-backends.test.ts's outcomes, and faults.test.ts's statuses); ok: 200 "hello". */
type Outcome = 502 | 503 | 504 | 'cut-or-502' | 'declared-or-502' | 'ok';

const BACKEND_CASES: Array<[string, Outcome, string]> = [
  ['garbage', 502, 'bytes that are not FastCGI (bad version)'],
  ['wrong-id', 502, 'STDOUT for a request id not in flight'],
  ['end-unknown', 502, 'END_REQUEST for a request id not in flight'],
  ['truncated', 502, 'half a record, then a close'],
  ['close', 502, 'a close without an answer'],
  ['bad-type', 502, 'a record of an undefined type (42)'],
  ['end-short', 502, 'a malformed END_REQUEST (3 content bytes, not 8)'],
  ['big-head', 502, 'a response head of 8 KB over --max-head-bytes 4096'],
  ['cl-two', 502, 'two different Content-Lengths'],
  ['bad-header-char', 502, 'a NUL in a response header value'],
  ['status-1xx', 502, 'Status: 100 as its only head'],
  ['cl-long', 'declared-or-502', 'a body longer than its Content-Length, hiding a whole HTTP response'],
  ['mid-response', 'cut-or-502', 'the head and 30000 of 100000 bytes, then a close'],
  ['silent', 504, 'no answer at all (--read-timeout 1000)'],
  ['overloaded', 503, 'FCGI_OVERLOADED'],
  ['stderr-flood', 'ok', '64 KB of FCGI_STDERR that is not UTF-8, then a good answer (logged, not fatal)'],
];

describe('dist/cli.js run --upstream (a hostile FastCGI server on a unix socket), one process throughout', () => {
  let cli: RunningCli;
  let dir: string;
  let fake: Awaited<ReturnType<typeof fakeUpstream>>;
  beforeAll(async () => {
    dir = tmpDir('upfront-hostile-cli-');
    fake = await fakeUpstream(path.join(dir, 'fake.sock'));
    cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--upstream', `unix:${path.join(dir, 'fake.sock')}`,
      '--retries', '0', '--read-timeout', '1000', '--max-head-bytes', '4096', '--shutdown-grace', '3000']);
    await waitForCliLine(cli, (l) => /^upstream u0 .* ready/.test(l.msg), 'saying the upstream is ready');
    await expectServing(cli, 'at start');
  }, 30_000);
  afterAll(async () => {
    await cli?.stop();
    for (const s of fake?.sockets ?? []) s.destroy();
    await new Promise<void>((resolve) => (fake ? fake.server.close(() => resolve()) : resolve()));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const [mode, outcome, what] of BACKEND_CASES) {
    it(`${mode}: ${what} → ${outcome}, ${outcome === 'ok' ? 'its stderr logged' : 'an error line naming u0'}; a pipelined GET /Hello/1 behind it is answered; the process lives and serves`, async () => {
      const hp = hostPort(cli);
      const target = `/m/${mode}`;
      // Alone, then with a normal request pipelined behind it on the same client connection.
      const one = await rawExchange(hp, get(target), { finalResponses: 1, timeoutMs: 5000 });
      const two = await rawExchange(hp, get(target) + get('/Hello/1'), { finalResponses: 2, timeoutMs: 5000 });
      for (const [ex, requests] of [[one, 1], [two, 2]] as const) {
        const d = describeExchange(ex);
        expect(ex.parsed.error, `a bad frame on the client connection: ${d}`).toBeNull();
        for (const r of ex.parsed.responses) {
          expect(header(r, 'x-smuggled'), `the hidden response reached the client: ${d}`).toBeUndefined();
          expect(r.status, `a 1xx reached the client: ${d}`).toBeGreaterThanOrEqual(200);
        }
        const f = finals(ex.parsed);
        expect(f.length, `no response: ${d}`).toBeGreaterThanOrEqual(1);
        if (outcome === 'ok') {
          expect(f.map((r) => `${r.status} ${r.body.toString('latin1')} ${r.complete}`), d).toEqual(Array(requests).fill('200 hello true')); // /Hello/1 is "hello" too
        } else if (typeof outcome === 'number' || f[0].status === 502) {
          expect(f[0].status, d).toBe(outcome === 'cut-or-502' || outcome === 'declared-or-502' ? 502 : outcome);
          expect(f[0].complete, d).toBe(true);
          // The client connection stays usable after the error answer.
          if (requests === 2) expect(f.map((r) => r.status), `the pipelined GET /Hello/1: ${d}`).toEqual([f[0].status, 200]);
        } else if (outcome === 'cut-or-502') {
          expect(f[0].status, d).toBe(200);
          expect(f[0].complete, `the cut shows: ${d}`).toBe(false);
          expect(ex.closed, `the client connection closes at the cut: ${d}`).toBe(true);
        } else {
          // Exactly the declared 5 bytes; what the backend hid after them is never a response.
          expect(f[0].status, d).toBe(200);
          expect(f[0].body.toString('latin1'), d).toBe('hello');
          expect(f[0].complete, d).toBe(true);
          expect(ex.parsed.rest.length, d).toBe(0);
          if (requests === 2 && !ex.closed) expect(f.map((r) => r.status), d).toEqual([200, 200]);
        }
      }
      if (outcome === 'ok') {
        await waitForCliLine(cli, (l) => l.stream === 'FCGI_STDERR' && l.backend === 'u0', 'with the FCGI_STDERR bytes', 5000);
      } else if (outcome !== 'declared-or-502' || finals(one.parsed)[0].status === 502) {
        // request: "GET /m/MODE HTTP/1.1" (nginx's wording), or "GET /m/MODE" (the excess-body line).
        const line = await waitForCliLine(cli, (l) => l.level >= 50 && (l.msg.includes(`"GET ${target} `) || l.msg.includes(`"GET ${target}"`)), `at error level about GET ${target}`, 5000);
        expect(line.backend).toBe('u0');
      }
      expect(fake.requests.filter((u) => u === target).length, 'the requests reached the fake upstream').toBeGreaterThanOrEqual(1);
      await expectServing(cli, mode);
    }, 30_000);
  }

  it('at the end: SIGTERM → exit 0; no "Uncaught", "unhandled", TypeError or RangeError in stderr or the log; no socket dir left', async () => {
    await expectCleanEnd(cli);
  }, 30_000);
});
