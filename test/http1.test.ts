// The http1 layer with real clients: node:http, curl, raw sockets.
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Http1Server, type Http1Exchange, type Http1Handler, type Http1Limits } from '../src/server/http1/server.js';
import { hashOfChunks, patternChunks, peer, sha256 } from './helpers.js';
import { parseResponses, talk as talkRaw } from './http1-wire.js';

const CURL = peer('curl');

interface Started {
  server: Http1Server;
  port: number;
  url: string;
  refused: Array<{ status: number; reason: string }>;
  handlerErrors: unknown[];
}

const servers: Http1Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.destroyAll();
});

async function start(onRequest: (ex: Http1Exchange) => void, limits: Partial<Http1Limits> = {}): Promise<Started> {
  const refused: Started['refused'] = [];
  const handlerErrors: unknown[] = [];
  const handler: Http1Handler = {
    onRequest,
    onRefused: (status, reason) => { refused.push({ status, reason }); },
    onHandlerError: (err) => { handlerErrors.push(err); },
  };
  const server = new Http1Server(limits, handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.net.listen(0, '127.0.0.1', resolve));
  const port = (server.net.address() as AddressInfo).port;
  return { server, port, url: `http://127.0.0.1:${port}`, refused, handlerErrors };
}

/** Reads the body whole, then answers a JSON summary of the request. */
function echo(ex: Http1Exchange): void {
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  ex.readBody({
    onBodyData(c) { hash.update(c); bytes += c.length; return true; },
    onBodyEnd() {
      ex.respond(200, null, ['Content-Type', 'application/json'], JSON.stringify({ method: ex.method, target: ex.target, version: ex.versionMinor, headers: ex.headers, bytes, sha256: hash.digest('hex'), keepAlive: ex.keepAlive }));
    },
    onBodyError() { /* the layer answers */ },
  });
}

function curl(args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    execFile(CURL!, args, { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as NodeJS.ErrnoException & { code?: unknown }).code ?? 1) : 0, stdout, stderr: stderr.toString() });
    });
  });
}

function get(url: string, opts: http.RequestOptions & { body?: Buffer | AsyncIterable<Buffer> } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), socket: req.socket! }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const body = opts.body;
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else (async () => { for await (const c of body) if (!req.write(c)) await new Promise((r) => req.once('drain', r)); req.end(); })().catch(reject);
  });
}

/** A raw exchange that also waits (up to 1 s) to see whether the server closes after its answers. */
const talk: typeof talkRaw = (port, bytes, opts) => talkRaw(port, bytes, { closeWaitMs: 1000, ...opts });

function ms(since: number): number {
  return Date.now() - since;
}

describe('http1 layer: connections', () => {
  it('keeps connections alive: 20 requests from a keep-alive agent over one connection', async () => {
    const s = await start(echo);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 20; i++) {
      const r = await get(`${s.url}/n/${i}`, { agent });
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body.toString()).target).toBe(`/n/${i}`);
      expect(r.headers.connection).toBeUndefined();
      expect(r.headers.date).toMatch(/GMT$/);
    }
    agent.destroy();
    expect(s.server.acceptedConn).toBe(1);
  });

  it('answers pipelined requests in order, even when the first is answered last', async () => {
    const delays: Record<string, number> = { '/a': 150, '/b': 50, '/c': 0 };
    const s = await start((ex) => {
      setTimeout(() => ex.respond(200, null, [], ex.target), delays[ex.target]);
    });
    const bytes = Buffer.from('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n');
    const t = await talk(s.port, bytes, { expect: 3, closeWaitMs: 0 });
    expect(t.responses.map((r) => r.body.toString())).toEqual(['/a', '/b', '/c']);
    expect(s.server.activeExchanges).toBe(0);
  });

  it('HEAD: the head with the Content-Length of the body, no body; the next pipelined answer follows at once', async () => {
    const s = await start((ex) => ex.respond(200, null, ['Content-Type', 'text/plain'], 'twelve bytes'));
    const t = await talk(s.port, Buffer.from('HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n'), { expect: 2, methods: ['HEAD', 'GET'], closeWaitMs: 0 });
    expect(t.responses).toHaveLength(2);
    expect(t.responses[0].headers.get('content-length')).toEqual(['12']);
    expect(t.raw.toString('latin1').match(/twelve bytes/g)).toHaveLength(1);
    expect(t.responses[1].body.toString()).toBe('twelve bytes');
  });

  it('HTTP/1.0: closes without keep-alive, keeps with it (answering Connection: keep-alive); unknown length is close-delimited', async () => {
    const s = await start((ex) => {
      if (ex.target === '/stream') {
        ex.writeHead(200, null, [], -1);
        ex.write(Buffer.from('part1,'));
        ex.end(Buffer.from('part2'));
      } else echo(ex);
    });
    const plain = await talk(s.port, Buffer.from('GET /one HTTP/1.0\r\n\r\n'), { expect: 1, closeWaitMs: 0 });
    expect(plain.responses[0].headers.get('connection')).toEqual(['close']);
    const closed = await talk(s.port, Buffer.from('GET /one HTTP/1.0\r\n\r\nGET /two HTTP/1.0\r\n\r\n'), { expect: 2 });
    expect(closed.responses).toHaveLength(1);
    expect(closed.closed).toBe(true);
    const kept = await talk(s.port, Buffer.from('GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /two HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'), { expect: 2, closeWaitMs: 200 });
    expect(kept.responses.map((r) => JSON.parse(r.body.toString()).target)).toEqual(['/one', '/two']);
    expect(kept.responses[0].headers.get('connection')).toEqual(['keep-alive']);
    expect(kept.closed).toBe(false);
    const stream = await talk(s.port, Buffer.from('GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'), { expect: 2 });
    expect(stream.closed).toBe(true);
    expect(stream.responses[0].headers.get('connection')).toEqual(['close']);
    expect(stream.responses[0].headers.has('transfer-encoding')).toBe(false);
    expect(stream.responses[0].body.toString()).toBe('part1,part2');
    if (CURL) {
      const c = await curl(['-s', '--http1.0', `${s.url}/stream`]);
      expect(c.stdout.toString()).toBe('part1,part2');
    }
  });

  it('serves an Upgrade request as an ordinary one and stays HTTP/1.1 on that connection', async () => {
    const s = await start(echo);
    const head = 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
    const t = await talk(s.port, Buffer.from(head + 'GET /after HTTP/1.1\r\nHost: x\r\n\r\n'), { expect: 2, closeWaitMs: 0 });
    expect(t.responses.map((r) => r.status)).toEqual([200, 200]);
    expect(JSON.parse(t.responses[0].body.toString()).headers).toContain('websocket');
    expect(JSON.parse(t.responses[1].body.toString()).target).toBe('/after');
  });

  it('answers CONNECT with 501 and closes; the handler never sees it', async () => {
    let seen = 0;
    const s = await start(() => { seen++; });
    const t = await talk(s.port, Buffer.from('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'), { expect: 1 });
    expect(t.responses[0].status).toBe(501);
    expect(t.responses[0].headers.get('connection')).toEqual(['close']);
    expect(t.responses[0].body.toString()).toMatch(/CONNECT/);
    expect(t.closed).toBe(true);
    expect(seen).toBe(0);
    expect(s.refused).toEqual([{ status: 501, reason: expect.stringMatching(/CONNECT/) }]);
  });

  it('refusals name the problem in a text/plain body, say Connection: close, and close', async () => {
    const s = await start(echo);
    const cases: Array<[string, number, RegExp]> = [
      ['GET / HTTP/1.1\r\n\r\n', 400, /Host/],
      ['GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n', 400, /colon/],
      ['GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n', 400, /folding/],
      ['GET / HTTP/1.1\nHost: a\n\n', 400, /bare LF/],
      ['GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n', 400, /0x00/],
      ['POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /Content-Length and Transfer-Encoding/],
      ['POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n', 400, /Content-Length/],
      ['GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400, /two Host/],
      ['BREW / HTTP/1.1\r\nHost: a\r\n\r\n', 501, /unknown method BREW/],
      ['GET / HTTP/1.2\r\nHost: a\r\n\r\n', 505, /HTTP\/1\.2/],
      ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 505, /HTTP\/2/],
      ['GET / HTTP/1.1\r\nHost: a\r\nExpect: tea\r\n\r\n', 417, /100-continue/],
      [`GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: a\r\n\r\n`, 414, /8192/],
      [`GET / HTTP/1.1\r\nHost: a\r\nX: ${'a'.repeat(17_000)}\r\n\r\n`, 431, /16384/],
      [`GET / HTTP/1.1\r\nHost: a\r\n${'X: y\r\n'.repeat(101)}\r\n`, 431, /100 header/],
      ['POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501, /Transfer-Encoding/],
      ['POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n', 400, /chunk size/],
    ];
    for (const [bytes, status, why] of cases) {
      const t = await talk(s.port, Buffer.from(bytes, 'latin1'), { expect: 1 });
      const r = t.responses[0];
      expect(r?.status, JSON.stringify(bytes.slice(0, 60))).toBe(status);
      expect(r.headers.get('content-type')).toEqual(['text/plain; charset=utf-8']);
      expect(r.headers.get('connection')).toEqual(['close']);
      expect(r.body.toString()).toMatch(why);
      expect(t.closed).toBe(true);
    }
    expect(s.refused.map((r) => r.status)).toEqual(cases.map((c) => c[1]));
  });

  it('parses requests the same when every byte arrives in its own read', async () => {
    const s = await start(echo);
    const requests = [
      'GET /split?x=1 HTTP/1.1\r\nHost: a\r\nX-Long: ' + 'v'.repeat(10) + ' \r\n\r\n',
      '\r\nPOST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world',
      'POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext="q"\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n',
    ];
    for (const req of requests) {
      const whole = await talk(s.port, Buffer.from(req), { expect: 1, closeWaitMs: 0 });
      const bytes = [...Buffer.from(req)].map((b) => Buffer.from([b]));
      const split = await talk(s.port, bytes, { expect: 1, gapMs: 1, closeWaitMs: 0 });
      expect(split.responses[0].status).toBe(200);
      expect(split.responses[0].body.toString()).toBe(whole.responses[0].body.toString());
    }
    const body = JSON.parse((await talk(s.port, Buffer.from(requests[2]), { expect: 1, closeWaitMs: 0 })).responses[0].body.toString());
    expect(body.bytes).toBe(16);
    expect(body.sha256).toBe(sha256(Buffer.from('hello 0123456789')));
  });

  it('a handler that throws gets a 500 and close; the server and the next connection go on', async () => {
    const s = await start((ex) => {
      if (ex.target === '/throw') throw new Error('boom');
      ex.respond(200, null, [], 'fine');
    });
    const t = await talk(s.port, Buffer.from('GET /throw HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n'), { expect: 2 });
    expect(t.responses.map((r) => r.status)).toEqual([500]);
    expect(t.closed).toBe(true);
    expect((s.handlerErrors[0] as Error).message).toBe('boom');
    const ok = await get(`${s.url}/ok`, { agent: false });
    expect(ok.body.toString()).toBe('fine');
    expect(s.server.activeExchanges).toBe(0);
  });

  it('respond() goes out in one write: a raw client reads head and small body in a single read', async () => {
    const s = await start((ex) => ex.respond(200, null, ['Content-Type', 'text/plain', 'X-A', 'b'], 'x'.repeat(2400)));
    for (let i = 0; i < 5; i++) {
      const t = await talk(s.port, Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), { expect: 1, closeWaitMs: 0 });
      expect(t.responses[0].body.length).toBe(2400);
      expect(t.reads).toBe(1);
    }
  });
});

describe('http1 layer: bodies', () => {
  it('Expect: 100-continue from curl uploading 3 MiB: 100 Continue, then the body byte-exact', async () => {
    if (!CURL) return;
    const s = await start(echo);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'upfront-http1-'));
    try {
      const file = path.join(dir, 'body');
      const data = crypto.randomBytes(3 * 1024 * 1024);
      fs.writeFileSync(file, data);
      const c = await curl(['-sv', '--data-binary', `@${file}`, `${s.url}/upload`]);
      expect(c.stderr).toMatch(/> Expect: 100-continue/);
      expect(c.stderr).toMatch(/< HTTP\/1\.1 100 Continue/);
      const got = JSON.parse(c.stdout.toString());
      expect(got.bytes).toBe(data.length);
      expect(got.sha256).toBe(sha256(data));
      // chunked up (curl -T - sends chunked), byte-exact
      const up = await new Promise<string>((resolve) => {
        const child = spawn(CURL, ['-s', '-T', '-', '-X', 'POST', `${s.url}/chunked`], { stdio: ['pipe', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d) => { out += d; });
        child.on('close', () => resolve(out));
        child.stdin.end(data);
      });
      const chunkedUp = JSON.parse(up);
      expect(chunkedUp.headers.map((h: string) => h.toLowerCase())).toContain('transfer-encoding');
      expect(chunkedUp.sha256).toBe(sha256(data));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an answer without reading an Expect: 100-continue body: no 100, Connection: close', async () => {
    const s = await start((ex) => ex.respond(403, null, [], 'no'));
    const t = await talk(s.port, Buffer.from('PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n'), { expect: 1 });
    expect(t.responses[0].status).toBe(403);
    expect(t.responses[0].interim).toEqual([]);
    expect(t.responses[0].headers.get('connection')).toEqual(['close']);
    expect(t.closed).toBe(true);
  });

  it('a response ended before its body was read: the body is dropped and the connection kept', async () => {
    const s = await start((ex) => ex.respond(200, null, [], ex.target));
    const t = await talk(s.port, Buffer.from('POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n'), { expect: 3, closeWaitMs: 0 });
    expect(t.responses.map((r) => r.body.toString())).toEqual(['/a', '/b', '/c']);
    expect(t.responses[0].headers.has('connection')).toBe(false);
  });

  it('chunked both ways, byte-exact: a chunked upload streamed back chunked', async () => {
    const s = await start((ex) => {
      ex.writeHead(200, null, ['Content-Type', 'application/octet-stream'], -1);
      ex.setClientEvents({ onClientDrain: () => ex.resumeBody(), onClientClose: () => {} });
      ex.readBody({
        onBodyData: (c) => ex.write(Buffer.from(c)),
        onBodyEnd: () => ex.end(),
        onBodyError: () => {},
      });
    });
    const size = 5 * 1024 * 1024 + 123;
    const r = await get(`${s.url}/echo`, { method: 'POST', agent: false, body: patternChunks(size, 100_000) });
    expect(r.headers['transfer-encoding']).toBe('chunked');
    expect(r.body.length).toBe(size);
    expect(sha256(r.body)).toBe(await hashOfChunks(patternChunks(size, 100_000)));
  });

  it('50 MB upload with pause/resume: bytes read ahead of the sink stay bounded', async () => {
    let maxAhead = 0;
    let pauses = 0;
    const s = await start((ex) => {
      const socket = ex.connection.socket;
      const hash = crypto.createHash('sha256');
      let delivered = 0;
      ex.readBody({
        onBodyData(c) {
          hash.update(c);
          delivered += c.length;
          maxAhead = Math.max(maxAhead, socket.bytesRead - delivered - 200);
          if (delivered % (1024 * 1024) < c.length) {
            // A slow consumer now and then: pause, resume a little later.
            pauses++;
            setTimeout(() => ex.resumeBody(), 2);
            return false;
          }
          return true;
        },
        onBodyEnd() { ex.respond(200, null, [], JSON.stringify({ delivered, sha256: hash.digest('hex') })); },
        onBodyError() {},
      });
    });
    const size = 50 * 1024 * 1024;
    const r = await get(`${s.url}/big`, { method: 'POST', agent: false, headers: { 'Content-Length': String(size) }, body: patternChunks(size, 1024 * 1024) });
    const got = JSON.parse(r.body.toString());
    expect(got.delivered).toBe(size);
    expect(got.sha256).toBe(await hashOfChunks(patternChunks(size, 1024 * 1024)));
    expect(pauses).toBeGreaterThan(40);
    // Memory stays flat: what was read from the kernel but not yet taken by the sink is
    // node's socket buffer (16 KiB high-water mark) plus the layer's read-ahead, far below the body.
    expect(maxAhead).toBeLessThan(1024 * 1024);
  });

  it('413 at once for a Content-Length over maxBodyBytes, body unread; 413 when a chunked body crosses it', async () => {
    let seen = 0;
    const errors: string[] = [];
    const s = await start((ex) => {
      seen++;
      ex.readBody({ onBodyData: () => true, onBodyEnd: () => ex.respond(200, null, [], 'ok'), onBodyError: (e) => { errors.push(e.message); } });
    }, { maxBodyBytes: 1000 });
    const started = Date.now();
    const t = await talk(s.port, Buffer.from('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n'), { expect: 1 });
    expect(t.responses[0].status).toBe(413);
    expect(t.closed).toBe(true);
    expect(ms(started)).toBeLessThan(1000);
    expect(seen).toBe(0);
    const chunk = 'x'.repeat(600);
    const c = await talk(s.port, Buffer.from(`POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`), { expect: 1 });
    expect(c.responses[0].status).toBe(413);
    expect(c.closed).toBe(true);
    expect(errors).toEqual([expect.stringMatching(/larger than 1000/)]);
    const ok = await talk(s.port, Buffer.from('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n' + 'y'.repeat(1000)), { expect: 1, closeWaitMs: 0 });
    expect(ok.responses[0].status).toBe(200);
  });
});

describe('http1 layer: timeouts', () => {
  it('slowloris (one header byte per 100 ms) gets 408 and a close within headersTimeoutMs + 1 s', async () => {
    const s = await start(echo, { headersTimeoutMs: 1500 });
    const head = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ' + 'z'.repeat(100) + '\r\n\r\n');
    const started = Date.now();
    const t = await talk(s.port, [...head].map((b) => Buffer.from([b])), { expect: 1, gapMs: 100, idleMs: 5000 });
    const elapsed = ms(started);
    expect(t.responses[0]?.status).toBe(408);
    expect(t.closed).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual(1500);
    expect(elapsed).toBeLessThan(2500);
    expect(s.refused[0]).toEqual({ status: 408, reason: expect.stringMatching(/1500 ms/) });
  });

  it('a connection that never sends a byte is closed silently after headersTimeoutMs', async () => {
    const s = await start(echo, { headersTimeoutMs: 800 });
    const started = Date.now();
    const t = await talk(s.port, Buffer.alloc(0), { expect: 1, idleMs: 5000 });
    expect(t.closed).toBe(true);
    expect(t.raw.length).toBe(0);
    expect(ms(started)).toBeGreaterThanOrEqual(800);
    expect(ms(started)).toBeLessThan(1800);
  });

  it('body timeout: 408 when the client stalls mid-body, the sink hears of it', async () => {
    const errors: string[] = [];
    const s = await start((ex) => {
      ex.readBody({ onBodyData: () => true, onBodyEnd: () => ex.respond(200, null, [], 'ok'), onBodyError: (e) => { errors.push(e.message); } });
    }, { bodyTimeoutMs: 1000 });
    const started = Date.now();
    const t = await talk(s.port, Buffer.from('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789'), { expect: 1, idleMs: 5000 });
    expect(t.responses[0]?.status).toBe(408);
    expect(t.closed).toBe(true);
    expect(ms(started)).toBeGreaterThanOrEqual(1000);
    expect(ms(started)).toBeLessThan(2000);
    expect(errors).toEqual([expect.stringMatching(/no request body bytes for 1000 ms/)]);
  });

  it('keep-alive timeout: an idle kept connection is closed silently', async () => {
    const s = await start(echo, { keepAliveTimeoutMs: 700 });
    const socket = net.connect(s.port, '127.0.0.1');
    const received: Buffer[] = [];
    socket.on('data', (d) => received.push(d));
    await new Promise((r) => socket.once('connect', r));
    // From the request on: the idle clock starts at the response, which comes after it
    // (a busy test process may see the response late, so not from when it saw it).
    const sent = Date.now();
    socket.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    await new Promise((r) => socket.once('data', r));
    await new Promise((r) => socket.once('close', r));
    expect(ms(sent)).toBeGreaterThanOrEqual(700);
    expect(ms(sent)).toBeLessThan(1700);
    expect(parseResponses(Buffer.concat(received), ['GET'], true).responses).toHaveLength(1);
  });
});

describe('http1 layer: responses', () => {
  it('frames what the caller gives: chunked writes, 204/304 without framing, the caller\'s framing headers dropped', async () => {
    const s = await start((ex) => {
      switch (ex.target) {
        case '/chunks':
          ex.writeHead(200, 'Fine', ['Content-Length', '999', 'Transfer-Encoding', 'gzip'], -1);
          ex.write(Buffer.from('ab'));
          ex.write(Buffer.alloc(0));
          ex.end(Buffer.from('cd'));
          break;
        case '/204':
          ex.respond(204, null, ['Content-Length', '5'], 'ignored');
          break;
        case '/304':
          ex.writeHead(304, null, ['ETag', '"x"'], 10);
          ex.end();
          break;
        case '/hints':
          ex.writeInformational(103, null, ['Link', '</style.css>; rel=preload']);
          ex.respond(200, null, [], 'after hints');
          break;
        case '/date':
          ex.respond(200, null, ['Date', 'Mon, 01 Jan 2024 00:00:00 GMT', 'Connection', 'close'], 'x');
          break;
      }
    });
    const t = await talk(s.port, Buffer.from('GET /chunks HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /hints HTTP/1.1\r\nHost: a\r\n\r\nGET /date HTTP/1.1\r\nHost: a\r\n\r\n'), { expect: 5 });
    const [chunks, noContent, notModified, hinted, dated] = t.responses;
    expect(hinted.interim).toEqual([103]);
    expect(hinted.body.toString()).toBe('after hints');
    expect(chunks.head).toMatch(/^HTTP\/1\.1 200 Fine\r\n/);
    expect(chunks.headers.get('transfer-encoding')).toEqual(['chunked']);
    expect(chunks.headers.has('content-length')).toBe(false);
    expect(chunks.body.toString()).toBe('abcd');
    expect(noContent.status).toBe(204);
    expect(noContent.headers.has('content-length')).toBe(false);
    expect(notModified.status).toBe(304);
    expect(notModified.headers.has('content-length')).toBe(false);
    expect(notModified.headers.get('etag')).toEqual(['"x"']);
    expect(dated.headers.get('date')).toEqual(['Mon, 01 Jan 2024 00:00:00 GMT']);
    expect(dated.headers.get('connection')).toEqual(['close']);
    expect(t.closed).toBe(true);
  });

  it('a body longer or shorter than its Content-Length never passes for complete: the connection is cut', async () => {
    const s = await start((ex) => {
      ex.writeHead(200, null, [], 10);
      if (ex.target === '/long') {
        ex.write(Buffer.from('0123456789'));
        ex.write(Buffer.from('extra'));
      } else {
        ex.write(Buffer.from('01234'));
        ex.end();
      }
    });
    for (const target of ['/long', '/short']) {
      const err = await get(`${s.url}${target}`, { agent: false }).then(
        (r) => (target === '/long' && r.body.length === 10 ? 'complete-but-then-cut' : `unexpected ${r.status} ${r.body}`),
        (e: Error) => e.message,
      );
      if (target === '/short') expect(err).toMatch(/aborted|socket hang up|ECONNRESET/);
      else expect(err).toMatch(/complete-but-then-cut|aborted|ECONNRESET/);
    }
    expect(s.handlerErrors.map((e) => (e as Error).message)).toEqual([
      expect.stringMatching(/longer than its Content-Length/),
      expect.stringMatching(/shorter than its Content-Length/),
    ]);
  });

  it('the client leaving: onClientClose for the response in progress, onBodyError for the body', async () => {
    const events: string[] = [];
    let closed!: () => void;
    const done = new Promise<void>((r) => { closed = r; });
    let gotData!: () => void;
    const reading = new Promise<void>((r) => { gotData = r; });
    const s = await start((ex) => {
      ex.setClientEvents({ onClientDrain: () => {}, onClientClose: () => { events.push('close'); closed(); } });
      ex.readBody({ onBodyData: () => { gotData(); return true; }, onBodyEnd: () => {}, onBodyError: (e) => events.push(`body: ${e.message}`) });
    });
    const socket = net.connect(s.port, '127.0.0.1', () => socket.write('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc'));
    await reading;
    socket.destroy();
    await done;
    expect(events).toEqual(['body: client closed the connection', 'close']);
    expect(s.server.activeExchanges).toBe(0);
  });
});

describe('http1 layer: a client that does not read', () => {
  it('send timeout: a response the client does not take is cut after sendTimeoutMs, the handler hears onClientClose', async () => {
    let closedAt = 0;
    let stalledAt = 0;
    let closed!: () => void;
    const done = new Promise<void>((r) => { closed = r; });
    const s = await start((ex) => {
      ex.setClientEvents({ onClientDrain: () => pump(), onClientClose: () => { closedAt = Date.now(); closed(); } });
      ex.writeHead(200, null, [], -1);
      const chunk = Buffer.alloc(1024 * 1024, 120);
      const pump = () => {
        while (!ex.finished) {
          if (!ex.write(chunk)) {
            stalledAt = Date.now();
            return;
          }
        }
      };
      pump();
    }, { sendTimeoutMs: 500 });
    const socket = net.connect(s.port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n'));
    socket.on('error', () => {});
    socket.pause(); // never reads
    await done;
    socket.destroy();
    expect(stalledAt).toBeGreaterThan(0);
    expect(closedAt - stalledAt).toBeGreaterThanOrEqual(500);
    expect(closedAt - stalledAt).toBeLessThan(1500);
  });
});

describe('http1 layer: stopping', () => {
  it('stopAccepting: idle connections close now, a busy one answers with Connection: close then closes, no new connections', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    let slowArrived!: () => void;
    const arrived = new Promise<void>((r) => { slowArrived = r; });
    const s = await start((ex) => {
      if (ex.target === '/slow') {
        slowArrived();
        void gate.then(() => ex.respond(200, null, [], 'slow'));
      } else ex.respond(200, null, [], 'fast');
    });
    const idle = net.connect(s.port, '127.0.0.1');
    const idleClosed = new Promise((r) => idle.on('close', r));
    idle.on('data', () => {});
    idle.on('connect', () => idle.write('GET /fast HTTP/1.1\r\nHost: a\r\n\r\n'));
    await new Promise((r) => idle.once('data', r));
    const busy = talk(s.port, Buffer.from('GET /slow HTTP/1.1\r\nHost: a\r\n\r\n'), { expect: 1, idleMs: 5000 });
    await arrived;
    expect(s.server.activeExchanges).toBe(1);
    s.server.stopAccepting();
    await idleClosed;
    const refused = await new Promise<string>((resolve) => {
      const c = net.connect(s.port, '127.0.0.1');
      c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? ''));
      c.on('connect', () => { c.destroy(); resolve('connected'); });
    });
    expect(refused).toBe('ECONNREFUSED');
    const idleWait = s.server.whenIdle();
    release();
    const t = await busy;
    expect(t.responses[0].body.toString()).toBe('slow');
    expect(t.responses[0].headers.get('connection')).toEqual(['close']);
    expect(t.closed).toBe(true);
    await idleWait;
    expect(s.server.activeExchanges).toBe(0);
  });
});
