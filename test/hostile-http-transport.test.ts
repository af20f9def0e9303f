// A hostile pass on the HTTP transport (--protocol http) with backends as adversaries:
// the response decoder fed what a malicious app can send, and the spawned front
// against test/fixtures/hostile-http-responses.mjs, read by raw-socket clients.
// Whatever the backend does, the front answers in bounded time and CPU, names the
// problem in one log line with the backend, and serves the next request.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { coarseNow } from '../src/clock.js';
import { HttpTransport } from '../src/http/transport.js';
import { ResponseDecoder } from '../src/http/responseDecoder.js';
import { ResponseHeadParser } from '../src/http/responseHead.js';
import { Capabilities, type RequestControl, type ResponseHandler, type TransportError } from '../src/transport.js';
import { alive, cliBusy, cliLines, waitForCliLine } from './cliLog.js';
import { FIXTURES, spawnCli, tmpDir, waitUntil, type RunningCli } from './helpers.js';
import { finals, get, rawExchange } from './rawHttp.js';

const RESPONSES = path.join(FIXTURES, 'hostile-http-responses.mjs');

let cli: RunningCli | null = null;
afterEach(async () => {
  await cli?.stop();
  cli = null;
});

/** The front with one HTTP backend running hostile-http-responses.mjs, one slot: every request goes over the same connection. */
function front(args: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<RunningCli> {
  return spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '1', '--shutdown-grace', '4000', '--protocol', 'http',
    '--max-requests-per-backend', '1', ...args, '--', process.execPath, RESPONSES], { env });
}

function hostPort(c: RunningCli): string {
  return c.base.replace('http://', '');
}

/** The next request on the backend is answered (the slot was freed, nothing left on the connection). */
async function expectServedAfter(c: RunningCli): Promise<void> {
  const ok = await rawExchange(hostPort(c), get('/m/ok', 'Connection: close\r\n'), { timeoutMs: 5000 });
  expect(finals(ok.parsed).map((r) => `${r.status} ${r.body.toString('latin1')}`)).toEqual(['200 ok']);
  expect(alive(c)).toBe(true);
  await waitUntil(async () => (await cliBusy(c)) === 0, 'no request is left in flight or queued', 5000);
}

describe('a response head trickled in small pieces (the decoder)', () => {
  it('a 512 KB head in 16-byte reads is parsed a few dozen times, not once a read (it was parsed again from its start on every read: minutes of a blocked front)', () => {
    let heads = 0;
    const d = new ResponseDecoder({ onResponseHead: () => { heads++; return true; }, onResponseBody: () => true }, 1024 * 1024);
    d.begin(false);
    const line = 'X-Pad: 0123456789abcdef0123456789abcdef0123456789abcdef\r\n';
    const head = Buffer.from(`HTTP/1.1 200 OK\r\n${line.repeat(Math.floor(512 * 1024 / line.length))}Content-Length: 2\r\n\r\nok`, 'latin1');
    // Counted, not timed: each parse of the pieces reads them from the start, so the work is
    // the parses times the bytes — one a read (~33,000 here) was quadratic; a doubling buffer
    // parses again only at a blank line or when the bytes doubled.
    const parses = vi.spyOn(ResponseHeadParser.prototype, 'parse');
    try {
      for (let p = 0; p < head.length; p += 16) {
        // Each read a buffer of its own, as from a socket.
        const piece = Buffer.from(head.subarray(p, Math.min(head.length, p + 16)));
        if (d.push(piece, 0) !== piece.length) throw new Error(`push took less than the whole read at ${p}`);
        if (d.complete || d.failed) break;
        if (parses.mock.calls.length >= 64) break; // quadratic: stop here, not minutes later
      }
      expect(parses.mock.calls.length).toBeLessThan(64);
    } finally {
      parses.mockRestore();
    }
    expect(d.failed ? d.error : null).toBeNull();
    expect(d.complete).toBe(true);
    expect(heads).toBe(1);
  });

  it('a head over the limit, trickled, is still refused once the bytes pass the limit', () => {
    const d = new ResponseDecoder({ onResponseHead: () => true, onResponseBody: () => true }, 4096);
    d.begin(false);
    const piece = Buffer.from('X-Pad: abcdefgh\r\n', 'latin1');
    d.push(Buffer.from('HTTP/1.1 200 OK\r\n', 'latin1'), 0);
    let sent = 17;
    while (!d.failed && sent < 10_000) { d.push(Buffer.from(piece), 0); sent += piece.length; }
    expect(d.error).toMatch(/response head larger than 4096 bytes/);
    expect(sent).toBeLessThan(4096 + 2 * piece.length);
  });

  it('a bad byte early in a trickled head is refused before the head ends (not only at its end)', () => {
    const d = new ResponseDecoder({ onResponseHead: () => true, onResponseBody: () => true }, 1024 * 1024);
    d.begin(false);
    const bytes = Buffer.from(`HTTP/1.1 200 OK\r\nX-Bad: a\0b\r\n${'X-Pad: abcdefgh\r\n'.repeat(1000)}`, 'latin1');
    let p = 0;
    for (; p < bytes.length && !d.failed; p += 7) d.push(Buffer.from(bytes.subarray(p, p + 7)), 0);
    expect(d.error).toMatch(/invalid byte 0x00 in the value of header X-Bad/);
    expect(p).toBeLessThan(200);
  });
});

describe('Transfer-Encoding in an HTTP/1.0 response (the decoder)', () => {
  it('is decoded, but the connection is not kept even with Connection: keep-alive (RFC 9112 §6.1: its framing is faulty)', () => {
    const d = new ResponseDecoder({ onResponseHead: () => true, onResponseBody: () => true }, 64 * 1024);
    d.begin(false);
    const text = 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n';
    expect(d.push(Buffer.from(text, 'latin1'), 0)).toBe(text.length);
    expect(d.complete).toBe(true);
    expect(d.keepAlive).toBe(false);
  });
});

describe('a response head trickled over the read timeout (the front)', () => {
  it('a header line every 300 ms, never the end of the head, with --read-timeout 1000 → 504 in about a second (head bytes are not progress the client sees: it held the slot until the app stopped)', async () => {
    cli = await front(['--read-timeout', '1000']);
    const ex = await rawExchange(hostPort(cli), get('/m/head-slow'), { finalResponses: 1, timeoutMs: 8000 });
    const f = finals(ex.parsed);
    expect(f.map((r) => r.status), `${ex.ms} ms: ${ex.data.toString('latin1').slice(0, 300)}`).toEqual([504]);
    expect(ex.ms).toBeLessThan(3000);
    const line = await waitForCliLine(cli, (l) => l.level >= 50 && l.msg.includes('/m/head-slow'), 'an error line about the request', 3000);
    expect(line.msg).toMatch(/did not finish its response head in 1000 ms/);
    expect(line.backend).toBe('b0');
    expect(typeof line.pid).toBe('number');
    expect(cliLines(cli).filter((l) => l.level >= 50 && l.msg.includes('/m/head-slow'))).toHaveLength(1);
    await expectServedAfter(cli);
  }, 30_000);
});

describe('chunk framing trickled over the read timeout (the front)', () => {
  for (const [mode, what] of [['ext-slow', 'a chunk extension'], ['trailer-slow', 'a trailer field']]) {
    it(`${mode}: ${what} growing a byte every 300 ms after "ok", with --read-timeout 1000 → the client's response cut in about a second (framing is no progress: it held the slot for hours)`, async () => {
      cli = await front(['--read-timeout', '1000']);
      const ex = await rawExchange(hostPort(cli!), get(`/m/${mode}`), { timeoutMs: 8000 });
      const what = `${ex.ms} ms, ${ex.closed ? 'closed' : 'open'}: ${JSON.stringify(ex.data.toString('latin1').slice(0, 300))}`;
      expect(ex.closed, what).toBe(true);
      expect(ex.ms, what).toBeLessThan(3000);
      const f = finals(ex.parsed);
      expect(f.map((r) => `${r.status} ${r.body.toString('latin1')} ${r.complete}`), what).toEqual(['200 ok false']);
      const line = await waitForCliLine(cli!, (l) => l.level >= 50 && l.msg.includes(`/m/${mode}`), 'an error line about the request', 3000);
      expect(line.msg).toMatch(/sent no body bytes for 1000 ms \(read timeout/);
      expect(line.backend).toBe('b0');
      await expectServedAfter(cli!);
    }, 30_000);
  }
});

describe('backends the transport already answers well (one front each, --read-timeout 1000)', () => {
  const upload = (mode: string) => Buffer.concat([
    Buffer.from(`POST /m/${mode} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: ${4 << 20}\r\n\r\n`, 'latin1'),
    Buffer.alloc(4 << 20, 0x61),
  ]);
  const cases: Array<[string, () => Buffer | string, number, RegExp | null]> = [
    // Answered before the 4 MB upload was read, the app reading no more of it: the answer goes through, the connection is not reused.
    ['early-413', () => upload('early-413'), 413, null],
    // Never reading the upload: the send timeout frees the slot.
    ['noread', () => upload('noread'), 504, /took no request body bytes for 1000 ms \(send timeout\)/],
    ['silent', () => get('/m/silent'), 504, /sent nothing for 1000 ms \(read timeout\)/],
    // Closing on every request: a GET is tried again a bounded number of times, then 502.
    ['fin', () => get('/m/fin'), 502, /closed the connection before answering/],
    // 1000 × 103 Early Hints: skipped, the final response is the answer.
    ['hints', () => get('/m/hints'), 200, null],
  ];
  for (const [mode, bytes, status, logged] of cases) {
    it(`${mode} → ${status}${logged ? ', one error line naming the backend and its pid' : ''}; the next request is served`, async () => {
      cli = await front(['--read-timeout', '1000']);
      const ex = await rawExchange(hostPort(cli!), bytes(), { finalResponses: 1, timeoutMs: 8000 });
      const f = finals(ex.parsed);
      expect(f.map((r) => r.status), `${ex.ms} ms: ${ex.data.toString('latin1').slice(0, 300)}`).toEqual([status]);
      expect(ex.ms).toBeLessThan(4000);
      if (logged) {
        const line = await waitForCliLine(cli!, (l) => l.level >= 50 && l.msg.includes(`/m/${mode}`), 'an error line about the request', 3000);
        expect(line.msg).toMatch(logged);
        expect(line.backend).toBe('b0');
        expect(typeof line.pid).toBe('number');
      }
      await expectServedAfter(cli!);
    }, 30_000);
  }
});

describe('a backend that closes right after its response, read while the client was slow (the transport)', () => {
  const cases: Array<[string, string, string, RegExp | null]> = [
    ['whole', '2\r\nok\r\n2\r\nOK\r\n2\r\n!!\r\n0\r\n\r\n', 'okOK!!', null],
    ['cut', '2\r\nok\r\n2\r\nOK\r\n2\r\n!', 'okOK!', /closed the connection in the middle of the response/],
  ];
  for (const [what, body, expected, failure] of cases) it(`${what}: chunks read before the close and held for the slow client are delivered on resume; ${failure ? 'then the cut is reported' : 'the response is whole, not cut as "closed in the middle"'}`, async () => {
    const dir = tmpDir('upfront-hhttp-');
    const sockPath = path.join(dir, 'app.sock');
    let appSide: net.Socket | null = null;
    const appClosed = new Promise<void>((resolve) => {
      const server = net.createServer((sock) => {
        appSide = sock;
        sock.on('error', () => {});
        sock.once('close', () => { server.close(); resolve(); });
        // Three chunks and the last one in one write, then the close: all of it in one read at the front.
        sock.once('data', () => sock.end(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body}`));
      });
      server.listen(sockPath);
    });
    await new Promise<void>((r) => setTimeout(r, 0));
    const t = new HttpTransport({ address: { path: sockPath }, readTimeoutMs: 5000, connectTimeoutMs: 1000, forwarded: false, maxHeadBytes: 64 * 1024 },
      new Capabilities({ multithreaded: false, multiplexed: false, slots: 1, answersGetValues: false, keepConn: true, pipelineDepth: 1, source: 'test' }),
      { onDrain: () => {}, onConnectError: () => {}, onProtocolError: () => {} });
    try {
      const chunks: string[] = [];
      let control: RequestControl | null = null;
      let error: TransportError | null = null;
      let ended = false;
      let accept = false;
      let release!: () => void;
      const released = new Promise<void>((r) => { release = r; });
      const handler: ResponseHandler = {
        onStart: (c) => { control = c; },
        onBodyDrain: () => {},
        onHead: () => {},
        // The client is slow: it takes the first chunk and says stop.
        onBody: (c) => { chunks.push(c.toString('latin1')); return accept; },
        onEnd: () => { ended = true; },
        onError: (e) => { error = e; },
        onStderr: () => {},
        onRelease: () => release(),
      };
      t.dispatch({
        head: { method: 'GET', target: '/', versionMinor: 1, headers: ['Host', 'x'], host: 'x', contentType: undefined,
          connection: { remoteAddress: '192.0.2.7', remotePort: 5555, localAddress: '127.0.0.1', localPort: 80, encrypted: false } },
        bodyLength: 0, pipelinable: true, receivedAt: coarseNow,
      }, handler);
      // The app's socket closes once the front's side closed too: the front read the close while paused.
      await appClosed;
      expect(appSide).not.toBeNull();
      expect(error, 'the response was failed while the client was slow').toBeNull();
      accept = true;
      control!.resume();
      await released;
      expect(chunks.join('')).toBe(expected);
      if (failure) {
        expect((error as TransportError | null)?.message).toMatch(failure);
        expect(ended).toBe(false);
      } else {
        expect(error).toBeNull();
        expect(ended).toBe(true);
      }
    } finally {
      t.close(true);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 10_000);
});
