// The HTTP transport (src/http/): the response decoder fed every response split at
// every byte boundary (and random bytes), the transport against real unix-socket
// servers written byte for byte (keep-alive, close-delimited bodies, bytes after a
// response, 101, timeouts, aborts, connect errors), and learned slots against real
// apps under wrk: gunicorn's sync worker serves one connection at a time and gets 1
// slot with no request ever queued behind an unaccepted connection; the Node example
// takes them all and keeps its 8.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { coarseNow } from '../src/clock.js';
import { HttpTransport, PROBE_MS } from '../src/http/transport.js';
import { ResponseDecoder } from '../src/http/responseDecoder.js';
import {
  Capabilities, type RequestControl, type ResponseHandler, type ResponseHead, type TransportError, type TransportRequest,
} from '../src/transport.js';
import { ROOT, getStats, maxAcceptQueued, peer, request, startTestFront, tmpDir, waitUntil, type TestFront } from './helpers.js';

// --- the decoder, without sockets ---

interface Decoded {
  heads: ResponseHead[];
  body: string;
  complete: boolean;
  /** Where the bytes after a complete response start (-1: none). */
  extraAt: number;
  error: string | null;
  keepAlive: boolean;
}

/** Decodes `pieces` in order, as reads would bring them; `pauseEvery`: the sink says stop on each body chunk (the rest is pushed again). */
function decode(pieces: Buffer[], opts: { head?: boolean; maxHead?: number; pauseEvery?: boolean; eof?: boolean } = {}): Decoded {
  const heads: ResponseHead[] = [];
  const body: Buffer[] = [];
  const d = new ResponseDecoder({
    onResponseHead: (h) => { heads.push({ ...h, headers: [...h.headers] }); return true; },
    onResponseBody: (c) => { body.push(Buffer.from(c)); return !opts.pauseEvery; },
  }, opts.maxHead ?? 64 * 1024);
  d.begin(opts.head ?? false);
  let offset = 0;
  let extraAt = -1;
  const total = pieces.reduce((n, p) => n + p.length, 0);
  outer: for (const p of pieces) {
    let pos = 0;
    for (;;) {
      pos = d.push(p, pos);
      if (d.complete || d.failed) {
        // Bytes left in this read or in later ones: either way not this response's.
        if (d.complete && offset + pos < total) extraAt = offset + pos;
        break outer;
      }
      if (pos >= p.length) break;
    }
    offset += p.length;
  }
  if (opts.eof && !d.complete && !d.failed) d.eof();
  return { heads, body: Buffer.concat(body).toString('latin1'), complete: d.complete, extraAt, error: d.failed ? `${d.errorKind}: ${d.error}` : null, keepAlive: d.complete && d.keepAlive };
}

/** The same result whole, split in two at every byte boundary, and byte by byte (with pauses). */
function decodeEverySplit(text: string, opts: { head?: boolean; maxHead?: number; eof?: boolean } = {}): Decoded {
  const bytes = Buffer.from(text, 'latin1');
  const whole = decode([bytes], opts);
  for (let k = 1; k < bytes.length; k++) {
    const split = decode([bytes.subarray(0, k), bytes.subarray(k)], opts);
    expect(split, `split at byte ${k} of ${JSON.stringify(text)}`).toEqual(whole);
  }
  const single = decode(Array.from(bytes, (b) => Buffer.from([b])), { ...opts, pauseEvery: true });
  expect(single, `byte by byte, pausing at every body chunk: ${JSON.stringify(text)}`).toEqual(whole);
  return whole;
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

describe('ResponseDecoder: every response split at every byte boundary', () => {
  it('Content-Length: the body, exactly; Content-Length in the head, not in the headers; kept alive', () => {
    const r = decodeEverySplit('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-A:  spaced  \r\n\r\nhello');
    expect(r.heads).toEqual([{ status: 200, reason: 'OK', headers: ['Content-Type', 'text/plain', 'X-A', 'spaced'], contentLength: 5 }]);
    expect(r).toMatchObject({ body: 'hello', complete: true, extraAt: -1, error: null, keepAlive: true });
  });

  it('chunked with extensions and trailers: data only; Transfer-Encoding and the trailers dropped', () => {
    const r = decodeEverySplit('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n'
      + '5;name=value;q="a \\"quoted\\" one"\r\nhello\r\n6;ext\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\nX-More: m\r\n\r\n');
    expect(r.heads).toEqual([{ status: 200, reason: 'OK', headers: ['X-A', '1'], contentLength: -1 }]);
    expect(r).toMatchObject({ body: 'hello world0123456789', complete: true, extraAt: -1, keepAlive: true });
  });

  it('close-delimited: the body is everything until the end; the connection is not kept', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the\r\n\r\nend';
    const open = decodeEverySplit(text);
    expect(open).toMatchObject({ body: 'until the\r\n\r\nend', complete: false });
    const ended = decodeEverySplit(text, { eof: true });
    expect(ended).toMatchObject({ body: 'until the\r\n\r\nend', complete: true, keepAlive: false });
    expect(ended.heads[0].contentLength).toBe(-1);
  });

  it('HEAD: no body whatever the Content-Length says; the declared length is kept for the client', () => {
    const r = decodeEverySplit('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n', { head: true });
    expect(r).toMatchObject({ body: '', complete: true, keepAlive: true, extraAt: -1 });
    expect(r.heads[0].contentLength).toBe(1234);
    const chunked = decodeEverySplit('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', { head: true });
    expect(chunked).toMatchObject({ body: '', complete: true });
  });

  it('204 and 304 have no body; bytes after them are not theirs', () => {
    expect(decodeEverySplit('HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n')).toMatchObject({ complete: true, body: '', extraAt: -1 });
    const r = decodeEverySplit(`HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: "x"\r\n\r\n${OK}`);
    expect(r).toMatchObject({ complete: true, body: '' });
    expect(r.extraAt).toBe('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: "x"\r\n\r\n'.length);
  });

  it('1xx interim responses are skipped: the final head is the one reported', () => {
    const r = decodeEverySplit(`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n${OK}`);
    expect(r.heads).toEqual([{ status: 200, reason: 'OK', headers: [], contentLength: 2 }]);
    expect(r).toMatchObject({ body: 'ok', complete: true });
  });

  it('keep-alive: HTTP/1.0 only with Connection: keep-alive; Connection: close; hop-by-hop and Connection-named fields dropped', () => {
    expect(decodeEverySplit('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok')).toMatchObject({ keepAlive: false, complete: true });
    expect(decodeEverySplit('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok')).toMatchObject({ keepAlive: true });
    const r = decodeEverySplit('HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nUpgrade: h2c\r\nTrailer: X-T\r\n'
      + 'Proxy-Connection: keep-alive\r\nX-Kept: 2\r\nContent-Length: 2\r\n\r\nok');
    expect(r).toMatchObject({ keepAlive: false, body: 'ok' });
    expect(r.heads[0].headers).toEqual(['X-Kept', '2']);
  });

  it('a status line without reason phrase; the same Content-Length twice is one length', () => {
    const r = decodeEverySplit('HTTP/1.1 200\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok');
    expect(r.heads).toEqual([{ status: 200, reason: null, headers: [], contentLength: 2 }]);
    expect(r.body).toBe('ok');
  });

  it('bytes after a complete response are left for the connection to refuse', () => {
    const first = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello';
    const r = decodeEverySplit(`${first}HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Smuggled: yes\r\n\r\nPWNED`);
    expect(r).toMatchObject({ body: 'hello', complete: true, extraAt: first.length });
    const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n';
    expect(decodeEverySplit(`${chunked}junk`)).toMatchObject({ body: 'ok', complete: true, extraAt: chunked.length });
  });

  const refused: Array<[string, string, RegExp]> = [
    ['101 Switching Protocols', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n', /^head: .*101 Switching Protocols/],
    ['two different Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello, ', /^head: .*two different Content-Lengths \(5 and 7\)/],
    ['a Content-Length that is not a number', 'HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello', /^head: .*Content-Length is not a decimal number/],
    ['a Content-Length list', 'HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello', /^head: .*Content-Length is not a decimal number/],
    ['a bare LF ending a header line', 'HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok', /^head: .*bare LF/],
    ['a bare LF ending the status line', 'HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok', /^head: .*bare LF/],
    ['a bare CR in a value', 'HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\nContent-Length: 2\r\n\r\nok', /^head: .*bare CR/],
    ['a NUL in a header value', 'HTTP/1.1 200 OK\r\nX-Bad: a\0b\r\nContent-Length: 2\r\n\r\nok', /^head: .*invalid byte 0x00 in the value of header X-Bad/],
    ['a CTL in a header value', 'HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 2\r\n\r\nok', /^head: .*invalid byte 0x01/],
    ['DEL in a header value', 'HTTP/1.1 200 OK\r\nX-Bad: a\x7fb\r\nContent-Length: 2\r\n\r\nok', /^head: .*invalid byte 0x7f/],
    ['obsolete line folding', 'HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\nok', /^head: .*obsolete line folding/],
    ['whitespace before a colon', 'HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 2\r\n\r\nok', /^head: .*whitespace between a header name and its colon/],
    ['a coding other than chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', /^head: .*Transfer-Encoding "gzip, chunked" is not supported/],
    ['Transfer-Encoding and Content-Length', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n', /^head: .*both Content-Length and Transfer-Encoding/],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n', /^protocol: .*invalid byte 0x7a in a chunk size/],
    ['a chunk size that is not hex after good chunks', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n-1\r\n', /^protocol: .*invalid byte 0x2d in a chunk size/],
    ['chunk data longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n', /^protocol: .*chunk data longer than its size/],
    ['Content-Length in the trailers', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nContent-Length: 5\r\n\r\n', /^protocol: .*Content-Length or Transfer-Encoding in the trailer/],
    ['not HTTP at all', 'hello, this is not HTTP\r\n\r\n', /^head: .*does not start with "HTTP\/1\."/],
    ['HTTP/2.0 in the status line', 'HTTP/2.0 200 OK\r\n\r\n', /^head: .*does not start with "HTTP\/1\."/],
    ['HTTP/1.2', 'HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok', /^head: .*unsupported version HTTP\/1\.2/],
    ['a two-digit status', 'HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok', /^head: .*malformed status code/],
    ['a status below 100', 'HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok', /^head: .*malformed status code/],
  ];
  for (const [what, text, error] of refused) {
    it(`refused: ${what}`, () => {
      const r = decodeEverySplit(text);
      expect(r.error).toMatch(error);
      expect(r.complete).toBe(false);
      // A bad head reaches no one: the front answers 502 before any byte went to the client.
      if (r.error!.startsWith('head:')) {
        expect(r.heads).toEqual([]);
        expect(r.body).toBe('');
      }
    });
  }

  it('a head over the limit is refused once it passes the limit, not when it ends', () => {
    const big = `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(3000)}\r\nContent-Length: 2\r\n\r\nok`;
    expect(decode([Buffer.from(big)], { maxHead: 1024 }).error).toMatch(/^head: .*response head larger than 1024 bytes/);
    // Never complete: refused on the bytes so far, without waiting for the head's end.
    expect(decode([Buffer.from(big.slice(0, 2000))], { maxHead: 1024 }).error).toMatch(/larger than 1024 bytes/);
    expect(decode([Buffer.from(big)], { maxHead: 8192 })).toMatchObject({ complete: true, body: 'ok' });
  });

  it('random bytes after a valid start: never throws, never reports more body than was framed', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, chunked) => {
      const start = Buffer.from(chunked ? 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' : 'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n', 'latin1');
      const r = decode([start, Buffer.from(bytes)], { eof: true });
      if (!chunked) expect(r.body.length).toBeLessThanOrEqual(50);
      expect(r.body.length).toBeLessThanOrEqual(bytes.length);
    }), { numRuns: 300 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const r = decode([Buffer.from(bytes)], { eof: true });
      expect(r.complete && r.heads.length === 0).toBe(false);
    }), { numRuns: 300 });
  });
});

// --- the transport against real sockets ---

/** One request's life as the handler saw it. */
class Recorder implements ResponseHandler {
  control: RequestControl | null = null;
  head: ResponseHead | null = null;
  chunks: Buffer[] = [];
  ended = false;
  error: TransportError | null = null;
  releasedAt = 0;
  drains = 0;
  /** onBody returns this (false: pause until control.resume()). */
  accept = true;
  private resolveDone!: () => void;
  readonly done = new Promise<void>((r) => { this.resolveDone = r; });
  onStart(control: RequestControl): void { this.control = control; }
  onBodyDrain(): void { this.drains++; }
  onHead(head: ResponseHead): void { this.head = head; }
  onBody(chunk: Buffer): boolean { this.chunks.push(Buffer.from(chunk)); return this.accept; }
  onEnd(): void { this.ended = true; }
  onError(err: TransportError): void { this.error = err; }
  onStderr(): void {}
  onRelease(): void { this.releasedAt = Date.now(); this.resolveDone(); }
  get body(): string { return Buffer.concat(this.chunks).toString('latin1'); }
}

function transportRequest(method: string, target: string, bodyLength = 0): TransportRequest {
  return {
    head: {
      method, target, versionMinor: 1, headers: ['Host', 'example.test', 'Connection', 'keep-alive, X-Drop', 'X-Drop', '1', 'X-Kept', 'yes'],
      host: 'example.test', contentType: undefined,
      connection: { remoteAddress: '192.0.2.7', remotePort: 5555, localAddress: '127.0.0.1', localPort: 80, encrypted: false },
    },
    bodyLength, pipelinable: bodyLength === 0, receivedAt: coarseNow,
  };
}

interface SeenRequest { head: string; body: Buffer; connection: number; firstChunk: Buffer }

/**
 * A raw HTTP server on a unix socket: reads each request (head, then its Content-Length or
 * chunked body, kept raw) and calls `respond` with the socket to write any bytes it likes.
 */
class ScriptedServer {
  readonly dir = tmpDir('upfront-httpt-');
  readonly path = path.join(this.dir, 'app.sock');
  readonly seen: SeenRequest[] = [];
  connections = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(private respond: (sock: net.Socket, req: SeenRequest, index: number) => void) {
    this.server = net.createServer((sock) => {
      const connection = ++this.connections;
      this.sockets.add(sock);
      let buf = Buffer.alloc(0);
      let first: Buffer | null = null;
      sock.on('error', () => {});
      sock.on('close', () => { this.sockets.delete(sock); });
      sock.on('data', (chunk: Buffer) => {
        first ??= Buffer.from(chunk);
        buf = Buffer.concat([buf, chunk]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.subarray(0, end).toString('latin1');
          const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
          let bodyEnd: number;
          let body: Buffer;
          if (cl) {
            bodyEnd = end + 4 + Number(cl[1]);
            if (buf.length < bodyEnd) return;
            body = buf.subarray(end + 4, bodyEnd);
          } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
            const last = buf.indexOf('\r\n0\r\n\r\n', end + 2);
            if (last < 0) return;
            bodyEnd = last + 7;
            body = buf.subarray(end + 4, bodyEnd);
          } else {
            bodyEnd = end + 4;
            body = Buffer.alloc(0);
          }
          const req = { head, body: Buffer.from(body), connection, firstChunk: first };
          first = null;
          buf = buf.subarray(bodyEnd);
          this.seen.push(req);
          this.respond(sock, req, this.seen.length - 1);
        }
      });
    });
  }

  set handler(fn: (sock: net.Socket, req: SeenRequest, index: number) => void) { this.respond = fn; }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function caps(slots: number): Capabilities {
  return new Capabilities({ multithreaded: slots > 1, multiplexed: false, slots, answersGetValues: false, keepConn: true, pipelineDepth: 1, source: 'test' });
}

interface Events { drains: number; connectErrors: string[]; protocolErrors: string[] }

function makeTransport(address: { path: string }, opts: { slots?: number; readTimeoutMs?: number; forwarded?: boolean } = {}): { t: HttpTransport; events: Events } {
  const events: Events = { drains: 0, connectErrors: [], protocolErrors: [] };
  const t = new HttpTransport({ address, readTimeoutMs: opts.readTimeoutMs ?? 5000, connectTimeoutMs: 1000, forwarded: opts.forwarded ?? false, maxHeadBytes: 64 * 1024 },
    caps(opts.slots ?? 1), {
      onDrain: () => { events.drains++; },
      onConnectError: (code) => { events.connectErrors.push(code); },
      onProtocolError: (what) => { events.protocolErrors.push(what); },
    });
  return { t, events };
}

async function send(t: HttpTransport, method: string, target: string, body?: Buffer | Buffer[] | 'chunked'): Promise<Recorder> {
  const parts = body === undefined ? [] : Buffer.isBuffer(body) ? [body] : body === 'chunked' ? [] : body;
  const length = body === undefined ? 0 : Buffer.isBuffer(body) ? body.length : -1;
  const rec = new Recorder();
  expect(t.canTake(length === 0)).toBe(true);
  t.dispatch(transportRequest(method, target, length), rec);
  for (const p of parts) rec.control!.writeBody(p);
  if (length !== 0) rec.control!.endBody();
  await rec.done;
  return rec;
}

describe('HttpTransport against a raw HTTP server on a unix socket', () => {
  let server: ScriptedServer;
  let transport: HttpTransport | null = null;
  beforeAll(async () => {
    server = new ScriptedServer(() => {});
    await server.listen();
  });
  afterEach(() => { transport?.close(true); transport = null; });
  afterAll(async () => { await server.stop(); });

  it('one head write: method, origin-form target, forwarded headers, Host kept; the body with it in one write; kept alive', async () => {
    server.handler = (sock) => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=30\r\nX-Back: 1\r\n\r\nok');
    const { t } = makeTransport({ path: server.path }, { forwarded: true });
    transport = t;
    const from = server.seen.length;
    const conns = server.connections;
    const get = await send(t, 'GET', '/a?b=c');
    expect(get).toMatchObject({ ended: true, error: null, body: 'ok' });
    expect(get.head).toEqual({ status: 200, reason: 'OK', headers: ['X-Back', '1'], contentLength: 2 });
    const post = await send(t, 'POST', '/up', Buffer.from('hello body'));
    expect(post.body).toBe('ok');
    const [g, p] = server.seen.slice(from);
    expect(g.head).toBe('GET /a?b=c HTTP/1.1\r\nHost: example.test\r\nX-Kept: yes\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n'
      + 'X-Forwarded-Host: example.test\r\nForwarded: for=192.0.2.7;proto=http;host="example.test"');
    expect(p.head).toMatch(/^POST \/up HTTP\/1\.1\r\nHost: example\.test\r\nX-Kept: yes\r\nContent-Length: 10\r\n/);
    expect(p.firstChunk.toString('latin1')).toMatch(/\r\n\r\nhello body$/);
    expect(p.body.toString()).toBe('hello body');
    // Both on one kept connection.
    expect(server.connections - conns).toBe(1);
    expect(g.connection).toBe(p.connection);
    expect(t.figures).toMatchObject({ connectionsOpened: 1, openConnections: 1 });
  });

  it('a body of unknown length goes chunked; an empty POST declares Content-Length: 0', async () => {
    server.handler = (sock) => sock.write(OK);
    const { t } = makeTransport({ path: server.path });
    transport = t;
    const from = server.seen.length;
    await send(t, 'PUT', '/chunked', [Buffer.from('abc'), Buffer.alloc(20_000, 120), Buffer.from('z')]);
    await send(t, 'POST', '/empty');
    const [c, e] = server.seen.slice(from);
    expect(c.head).toMatch(/\r\nTransfer-Encoding: chunked(\r\n|$)/);
    expect(c.body.toString('latin1')).toBe(`3\r\nabc\r\n4e20\r\n${'x'.repeat(20_000)}\r\n1\r\nz\r\n0\r\n\r\n`);
    expect(e.head).toMatch(/\r\nContent-Length: 0(\r\n|$)/);
  });

  it('Connection: close, HTTP/1.0, a close-delimited body: each ends its connection; the next request opens another', async () => {
    const answers = [
      (s: net.Socket) => s.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok'),
      (s: net.Socket) => s.write('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok'),
      (s: net.Socket) => { s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil '); setImmediate(() => s.end('the end')); },
    ];
    const { t } = makeTransport({ path: server.path });
    transport = t;
    const conns = server.connections;
    for (const answer of answers) {
      server.handler = (s) => answer(s);
      const r = await send(t, 'GET', '/');
      expect(r).toMatchObject({ ended: true, error: null });
      expect(r.body).toMatch(/^(ok|until the end)$/);
    }
    expect(server.connections - conns).toBe(3);
    expect(t.figures.connectionsOpened).toBe(3);
  });

  it('bytes after a complete response on a kept connection: that connection is dropped, the request before named; the next request is unharmed', async () => {
    server.handler = (s, req) => {
      if (req.head.startsWith('GET /first')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Smuggled: yes\r\n\r\nPWNED');
      else s.write(OK);
    };
    const { t, events } = makeTransport({ path: server.path });
    transport = t;
    const first = await send(t, 'GET', '/first');
    expect(first).toMatchObject({ ended: true, body: 'hello' });
    expect(events.protocolErrors).toHaveLength(1);
    expect(events.protocolErrors[0]).toMatch(/after the complete response to "GET \/first".*dropped/);
    const next = await send(t, 'GET', '/next');
    expect(next).toMatchObject({ ended: true, body: 'ok' });
    expect(next.head!.headers).toEqual([]);
    expect(t.figures.connectionsOpened).toBe(2);
  });

  it('bytes on an idle kept connection: dropped and reported', async () => {
    let keep: net.Socket | null = null;
    server.handler = (s) => { keep = s; s.write(OK); };
    const { t, events } = makeTransport({ path: server.path });
    transport = t;
    await send(t, 'GET', '/idle');
    const closed = new Promise((r) => keep!.once('close', r));
    keep!.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    await closed;
    expect(events.protocolErrors).toHaveLength(1);
    expect(events.protocolErrors[0]).toMatch(/sent \d+ bytes on an idle connection after the response to "GET \/idle"/);
    expect(t.figures.openConnections).toBe(0);
    // A 408 on an idle connection is a server closing it, not a fault: dropped, not reported.
    await send(t, 'GET', '/idle2');
    const closed408 = new Promise((r) => keep!.once('close', r));
    keep!.write('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    await closed408;
    expect(events.protocolErrors).toHaveLength(1);
    expect(t.figures.openConnections).toBe(0);
  });

  it('101 Switching Protocols is refused (head error, nothing for the client); 1xx before a final response are skipped', async () => {
    server.handler = (s, req) => {
      if (req.head.startsWith('GET /upgrade')) s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello');
      else s.write(`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n${OK}`);
    };
    const { t } = makeTransport({ path: server.path });
    transport = t;
    const up = await send(t, 'GET', '/upgrade');
    expect(up.head).toBeNull();
    expect(up.error).toMatchObject({ kind: 'head', notStarted: false });
    expect(up.error!.message).toMatch(/101 Switching Protocols/);
    const interim = await send(t, 'GET', '/interim');
    expect(interim.head).toMatchObject({ status: 200 });
    expect(interim.body).toBe('ok');
  });

  it('a kept connection the backend closes before answering: "closed", not started (the proxy may retry an idempotent request)', async () => {
    let n = 0;
    server.handler = (s) => { if (n++ === 0) s.write(OK); else s.destroy(); };
    const { t } = makeTransport({ path: server.path });
    transport = t;
    await send(t, 'GET', '/one');
    const r = await send(t, 'GET', '/two');
    expect(r.error).toMatchObject({ kind: 'closed', notStarted: true, freshConnection: false });
    expect(r.error!.message).toMatch(/closed the connection before answering/);
  });

  it('a body cut short of its Content-Length: "length", after the head (the proxy cuts the client)', async () => {
    server.handler = (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
    const { t } = makeTransport({ path: server.path });
    transport = t;
    const r = await send(t, 'GET', '/short');
    expect(r.head).toMatchObject({ status: 200, contentLength: 100 });
    expect(r.body).toBe('0123456789');
    expect(r.error).toMatchObject({ kind: 'length', notStarted: false });
    expect(r.error!.message).toMatch(/after 10 of its declared 100 bytes/);
  });

  it('read timeout: no byte for read-timeout → "timeout" (ETIMEDOUT), the connection closed', async () => {
    server.handler = () => {};
    const { t } = makeTransport({ path: server.path }, { readTimeoutMs: 300 });
    transport = t;
    let sock: net.Socket | null = null;
    server.handler = (s) => { sock = s; };
    const started = Date.now();
    const r = await send(t, 'GET', '/silent');
    expect(r.error).toMatchObject({ kind: 'timeout', code: 'ETIMEDOUT' });
    expect(r.error!.message).toMatch(/sent nothing for 300 ms \(read timeout\)/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(Date.now() - started).toBeLessThan(2000);
    if (!sock!.destroyed) await new Promise((r) => sock!.once('close', r));
  });

  it('abort (the client left): the connection is closed at once and the request released at once', async () => {
    server.handler = (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npart');
    const { t } = makeTransport({ path: server.path });
    transport = t;
    let sock: net.Socket | null = null;
    server.handler = (s) => { sock = s; s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npart'); };
    const rec = new Recorder();
    t.dispatch(transportRequest('GET', '/slow'), rec);
    await new Promise<void>((resolve) => { const orig = rec.onBody.bind(rec); rec.onBody = (c) => { const r = orig(c); resolve(); return r; }; });
    rec.control!.abort();
    expect(rec.releasedAt, 'released inside abort()').toBeGreaterThan(0);
    expect(rec.ended || rec.error !== null).toBe(false);
    if (!sock!.destroyed) await new Promise((r) => sock!.once('close', r));
    expect(t.figures.openConnections).toBe(0);
    expect(t.canTake(true)).toBe(true);
  });

  it('backpressure on the response: reading waits for resume(); the rest arrives after it', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 97);
    server.handler = (s) => { s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`); s.write(big); };
    const { t } = makeTransport({ path: server.path });
    transport = t;
    const rec = new Recorder();
    rec.accept = false;
    t.dispatch(transportRequest('GET', '/big'), rec);
    await new Promise<void>((resolve) => { const orig = rec.onBody.bind(rec); rec.onBody = (c) => { orig(c); resolve(); return false; }; });
    const seen = rec.chunks.length;
    await new Promise((r) => setTimeout(r, 50)); // nothing arrives while paused (an absence: no event to wait for)
    expect(rec.chunks.length).toBe(seen);
    rec.onBody = (c) => { rec.chunks.push(Buffer.from(c)); return true; };
    rec.control!.resume();
    await rec.done;
    expect(rec.ended).toBe(true);
    expect(Buffer.concat(rec.chunks).equals(big)).toBe(true);
  });

  it('connect errors carry the errno in nginx\'s words and are not started', async () => {
    const missing = path.join(server.dir, 'nobody.sock');
    const { t, events } = makeTransport({ path: missing });
    transport = t;
    const r = await send(t, 'GET', '/');
    expect(r.error).toMatchObject({ kind: 'connect', code: 'ENOENT', notStarted: true });
    expect(r.error!.message).toBe(`connect() to unix:${missing} failed (2: No such file or directory)`);
    expect(events.connectErrors).toEqual(['ENOENT']);
  });
});

// --- learned slots under load, real apps ---

const SYSTEM_PYTHON = '/usr/bin/python3';
const hasGunicorn = fs.existsSync('/usr/lib/python3/dist-packages/gunicorn');
if (process.env.CI && !hasGunicorn) throw new Error('python3-gunicorn is not installed; .ci/run should have installed it');
const wrk = peer('wrk');

interface Load { requests: number; failures: number; out: string }

/** wrk -c50 for `seconds` (2 s timeout counted as a failure). */
function load(url: string, seconds: number): Promise<Load> {
  return new Promise((resolve, reject) => {
    const p = spawn(wrk!, ['-t2', '-c50', `-d${seconds}s`, '--timeout', '2s', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c) => { out += c; });
    p.on('error', reject);
    p.on('exit', () => {
      const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const failures = (errs ? errs.slice(1).reduce((a, n) => a + Number(n), 0) : 0) + Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
      resolve({ requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0), failures, out });
    });
  });
}

describe.skipIf(!wrk)('learned slots over HTTP (defaults: auto is 8 slots)', () => {
  let front: TestFront | null = null;
  afterEach(async () => { await front?.stop(); front = null; });

  it.skipIf(!hasGunicorn)('gunicorn --workers 1 --worker-class sync: slots learned 1, no request queued behind an unaccepted connection, no failure under 50 clients', async () => {
    front = await startTestFront({
      procs: 1, protocol: 'http', 'log-level': 'info',
      command: [SYSTEM_PYTHON, '-m', 'gunicorn', '--workers', '1', '--worker-class', 'sync', '--bind', 'unix:{socket}', '--chdir', path.join(ROOT, 'examples/python'), 'hello:application'],
    });
    expect((await request(`${front.url}/Hello/1`)).status).toBe(200);
    const backend = front.pool.backends[0];
    const socketPath = (backend.address as { path: string }).path;
    const run = load(`${front.url}/Hello/100`, 3);
    const queued = await maxAcceptQueued([socketPath], run);
    const l = await run;
    expect(l.failures, l.out).toBe(0);
    expect(l.requests).toBeGreaterThan(100);
    const b = (await getStats(front)).pools[0].backends[0];
    expect(b, JSON.stringify(b)).toMatchObject({ slots: 1, slotsClaimed: 8, slotsLearned: 1, switchesFrom: 'measured' });
    // The app serves one connection at a time, and its accept queue held at most the next
    // connection with its request and a standby without one — not the 7 requests 8
    // connections would queue there. In flight as the front counts: the one served, plus
    // those the app answered and closed before accepting the next but whose response the
    // front has not read yet (an instant) — not 8.
    expect(queued, JSON.stringify(b)).toBeLessThanOrEqual(2);
    expect(b.maxInflight, JSON.stringify(b)).toBeLessThanOrEqual(3);
    const line = front.log.lines.find((x) => typeof x.change === 'string' && x.change === 'slots 8 → 1');
    expect(line?.evidence, JSON.stringify(front.log.lines.filter((x) => x.change !== undefined))).toMatch(/accept queue/);
  }, 60_000);

  it('the Node example (concurrent, keeps connections) keeps its 8 slots and is given them', async () => {
    front = await startTestFront({ procs: 1, protocol: 'http', command: [process.execPath, path.join(ROOT, 'examples/node/http-app.mjs')] });
    expect((await request(`${front.url}/Hello/1`)).status).toBe(200);
    const l = await load(`${front.url}/Hello/100`, 3);
    expect(l.failures, l.out).toBe(0);
    // wrk's 50 clients leave at once: the closes that follow are no evidence either. Evidence
    // would be taken PROBE_MS after it began; nothing signals that none was taken, so wait that out.
    const f = front;
    await waitUntil(() => f.pool.inflight === 0, 'the requests wrk left end', 5000);
    await new Promise((r) => setTimeout(r, 2 * PROBE_MS));
    const b = (await getStats(front)).pools[0].backends[0];
    expect(b, JSON.stringify(b)).toMatchObject({ slots: 8, slotsLearned: null });
    expect(b.maxInflight).toBe(8);
  }, 60_000);

  it('a concurrent app accepting slowly (150 ms between accepts): connections it takes late are no evidence of a limit', async () => {
    // Each accept is growth (one more at once than before), which starts the evidence over:
    // the 8 slots are reached over ~1.2 s, with probes seen waiting in the accept queue all along.
    front = await startTestFront({
      procs: 1, protocol: 'http', 'log-level': 'info',
      command: [SYSTEM_PYTHON, path.join(ROOT, 'test/fixtures/slow-accept-http.py'), '{socket}', '--accept-gap-ms', '150'],
    });
    expect((await request(`${front.url}/Hello/1`)).status).toBe(200);
    const l = await load(`${front.url}/Hello/100`, 3);
    expect(l.failures, l.out).toBe(0);
    const f = front;
    await waitUntil(() => f.pool.inflight === 0, 'the requests wrk left end', 5000);
    await new Promise((r) => setTimeout(r, 2 * PROBE_MS));
    const b = (await getStats(front)).pools[0].backends[0];
    expect(b, JSON.stringify(b)).toMatchObject({ slots: 8, slotsLearned: null });
    expect(b.maxInflight, 'it was given all 8 once it had taken them').toBe(8);
    expect(front.log.lines.filter((x) => x.change !== undefined), 'no change of slots logged').toEqual([]);
  }, 60_000);
});
