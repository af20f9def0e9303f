// Hostile clients on the HTTP/2 + TLS front: clients that shut their flow-control
// window and take nothing, while the session goes on moving bytes on other streams.
// Real TLS sockets, node:http2 clients, the FastCGI Python example behind a whole front.
import fs from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientExchange } from '../src/server/exchange.js';
import { H2Server } from '../src/server/h2/server.js';
import { DEFAULT_HTTP1_LIMITS, Http1Server } from '../src/server/http1/server.js';
import { TlsListener } from '../src/server/tls/tlsListener.js';
import { makeCertificate } from './edge-helpers.js';
import { PY_HELLO, getStats, peer, request, startTestFront, tmpDir, waitUntil, type TestFront } from './helpers.js';

const OPENSSL = peer('openssl');
const { NGHTTP2_INTERNAL_ERROR } = http2.constants;

/** A TLS listener over our HTTP/1.1 and HTTP/2 layers on a loopback port, with a throwaway certificate. */
interface TlsPair { dir: string; http1: Http1Server; h2: H2Server; listener: TlsListener; port: number; url: string }

async function startTlsPair(limits: typeof DEFAULT_HTTP1_LIMITS, handle: (ex: ClientExchange) => void, handshakeTimeoutMs: number): Promise<TlsPair> {
  const dir = tmpDir('upfront-hostile-h2-');
  const certs = makeCertificate(dir);
  const http1 = new Http1Server(limits, { onRequest: handle });
  const h2 = new H2Server(limits, { onRequest: handle, onHandlerError: () => {} });
  const listener = new TlsListener({ certFile: certs.cert, keyFile: certs.key, handshakeTimeoutMs }, http1, h2, pino({ level: 'silent' }));
  await new Promise<void>((r) => listener.server.listen(0, '127.0.0.1', r));
  const port = (listener.server.address() as AddressInfo).port;
  return { dir, http1, h2, listener, port, url: `https://127.0.0.1:${port}` };
}

function stopTlsPair(t: TlsPair | undefined): void {
  if (!t) return;
  t.listener.server.close();
  t.h2.destroyAll();
  t.http1.destroyAll();
  fs.rmSync(t.dir, { recursive: true, force: true });
}

/** Resolves with the stream's RST_STREAM code when it closes (bounded). */
function closed(stream: http2.ClientHttp2Stream, what: string, timeoutMs: number): Promise<number> {
  stream.on('error', () => { /* the reset, seen in 'close' */ });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: the stream was not closed within ${timeoutMs} ms`)), timeoutMs);
    const done = () => { clearTimeout(timer); resolve(stream.rstCode ?? -1); };
    if (stream.closed) done();
    else stream.once('close', done);
  });
}

/** A GET every 50 ms on the session, read whole: bytes keep moving on it. */
function keepBusy(session: http2.ClientHttp2Session, target: string): () => void {
  const timer = setInterval(() => {
    if (session.closed || session.destroyed) return;
    const r = session.request({ ':path': target });
    r.on('error', () => { /* the session went away */ });
    r.resume();
  }, 50);
  return () => clearInterval(timer);
}

describe.skipIf(!OPENSSL)('HTTP/2: a client that takes nothing, FastCGI behind', () => {
  let dir: string;
  let front: TestFront;
  let url: string;

  beforeAll(async () => {
    dir = tmpDir('upfront-hostile-h2-');
    const certs = makeCertificate(dir);
    front = await startTestFront({ procs: 2, command: ['python3', PY_HELLO], 'tls-cert': certs.cert, 'tls-key': certs.key, 'send-timeout': 500 });
    url = `https://127.0.0.1:${front.address.split(':').pop()}`;
  });
  afterAll(async () => {
    await front?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a stalled stream is reset after --send-timeout while other streams of its session move, and its backend slot is freed (the app is told to abort)', async () => {
    const s = http2.connect(url, { rejectUnauthorized: false });
    s.on('error', () => { /* closed at the end */ });
    try {
      // Big enough that the app is still writing it long after the send timeout.
      const stalled = s.request({ ':path': '/bytes/2000000000' });
      stalled.pause();
      await new Promise((r) => stalled.once('response', r));
      // node's own stream timeout is put off by bytes sent on any stream of the session.
      const stop = keepBusy(s, '/Hello/1');
      try {
        expect(await closed(stalled, 'the stalled stream', 15_000)).toBe(NGHTTP2_INTERNAL_ERROR);
      } finally {
        stop();
      }
      // The cut reaches the app (FCGI_ABORT_REQUEST), not only the client: the slot is free again.
      await front.log.waitFor((l) => /ABORT_REQUEST/.test(l.msg), 'the backend is sent FCGI_ABORT_REQUEST for the stalled stream', 10_000);
      await waitUntil(async () => (await getStats(front)).pools[0].backends.every((b: { inflight: number }) => b.inflight === 0),
        'no request is in flight at a backend any more', 10_000);
    } finally {
      s.destroy();
    }
  });
});

describe.skipIf(!OPENSSL)('HTTP/2: a finished response the client never takes', () => {
  let pair: TlsPair | undefined;
  let url: string;
  let h2: H2Server;

  /** /small: 10 bytes with a length (writeHead, write, end); the response is ended at once. */
  const handle = (ex: ClientExchange) => {
    ex.writeHead(200, null, ['Content-Type', 'application/octet-stream'], 10);
    ex.write(Buffer.alloc(10, 120));
    ex.end();
  };

  beforeAll(async () => {
    const limits = { ...DEFAULT_HTTP1_LIMITS, sendTimeoutMs: 300, keepAliveTimeoutMs: 300 };
    pair = await startTlsPair(limits, handle, 5000);
    ({ url, h2 } = pair);
  });
  afterAll(() => stopTlsPair(pair));

  it.each([
    ['a GET', false],
    ['a POST whose upload goes on (the RST_STREAM(NO_ERROR) that stops it waits for the response to go out)', true],
  ])('a window of 0 that never opens, %s: the stream is reset after the send timeout and the idle session closes, instead of both staying open for ever', async (_what, upload) => {
    const s = http2.connect(url, { rejectUnauthorized: false, settings: { initialWindowSize: 0 } });
    s.on('error', () => { /* closed by the server */ });
    try {
      const r = s.request({ ':path': '/small', ':method': upload ? 'POST' : 'GET' });
      if (upload) r.write('the first bytes of a body that has no end');
      r.on('data', () => { /* nothing arrives: the window is shut */ });
      expect(await closed(r, 'the unread stream', 5000)).toBe(NGHTTP2_INTERNAL_ERROR);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the session was not closed within 5000 ms')), 5000);
        s.once('close', () => { clearTimeout(timer); resolve(); });
      });
      await waitUntil(() => h2.sessionCount === 0, 'the server has forgotten the session', 5000);
    } finally {
      s.destroy();
    }
  });
});

describe.skipIf(!OPENSSL)('TLS: handshakes that never end', () => {
  let pair: TlsPair | undefined;
  let port: number;
  let listener: TlsListener;
  let http1: Http1Server;

  beforeAll(async () => {
    const handle = (ex: ClientExchange) => ex.respond(200, null, ['Content-Type', 'text/plain'], 'ok\n');
    pair = await startTlsPair(DEFAULT_HTTP1_LIMITS, handle, 1000);
    ({ port, listener, http1 } = pair);
  });
  afterAll(() => stopTlsPair(pair));

  it('a client that sends nothing, or half a ClientHello, is closed at the handshake timeout (node reports it and leaves the socket open)', async () => {
    const opened = (first: Buffer | null) => new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => { if (first) s.write(first); resolve(s); });
      s.on('error', reject);
    });
    // A TLS record header announcing a 512-byte handshake message, and one byte of it.
    const socks = [await opened(null), await opened(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))];
    try {
      const t0 = Date.now();
      await Promise.all(socks.map((s, i) => new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`connection ${i} still open ${Date.now() - t0} ms after connecting (handshake timeout 1000 ms)`)), 6000);
        s.on('close', () => { clearTimeout(timer); resolve(); });
        s.resume();
      })));
      expect(listener.handshakeErrors).toBeGreaterThanOrEqual(2);
    } finally {
      for (const s of socks) s.destroy();
    }
  });

  it('a plain HTTP request on the TLS port is answered 400 saying so (as nginx), not closed in silence; TLS still served after', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
      let data = '';
      const timer = setTimeout(() => { s.destroy(); reject(new Error(`no answer within 5000 ms: ${JSON.stringify(data)}`)); }, 5000);
      s.setEncoding('latin1');
      s.on('data', (c: string) => { data += c; });
      s.on('error', (err) => { clearTimeout(timer); reject(err); });
      s.on('close', () => { clearTimeout(timer); resolve(data); });
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(reply).toMatch(/\r\n\r\n400 Bad Request: a plain HTTP request was sent to this port; use https:\/\/\n$/);
    const s = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    s.on('error', () => { /* closed at the end */ });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const r = s.request({ ':path': '/' });
        r.on('response', (h) => resolve(Number(h[':status'])));
        r.on('error', reject);
        r.resume();
      });
      expect(status).toBe(200);
    } finally {
      s.destroy();
    }
  });

  it('a client that offers only ALPN http/1.0 (curl --http1.0) is served, not refused with a no_application_protocol alert', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.0'] }, () => {
        s.write('GET / HTTP/1.0\r\nHost: localhost\r\n\r\n');
      });
      let data = '';
      const timer = setTimeout(() => { s.destroy(); reject(new Error(`no answer within 5000 ms: ${JSON.stringify(data)}`)); }, 5000);
      s.setEncoding('latin1');
      s.on('data', (c: string) => { data += c; });
      s.on('error', (err) => { clearTimeout(timer); reject(err); });
      s.on('close', () => { clearTimeout(timer); resolve(data); });
    });
    expect(reply).toMatch(/^HTTP\/1\.[01] 200 /);
    expect(reply).toMatch(/\r\n\r\nok\n$/);
  });
});

describe.skipIf(!OPENSSL)('HTTP/2: header field counts as on HTTP/1.1', () => {
  let pair: TlsPair | undefined;
  let url: string;
  let h2: H2Server;

  /** /dup/same, /dup/different (?stream: writeHead + write + end): a head with a field node sends once, twice; else the Cookie field and the field count. */
  const handle = (ex: ClientExchange) => {
    if (ex.target === '/big') return ex.respond(200, null, ['Content-Type', 'text/plain', 'X-Big', 'x'.repeat(70_000)], 'big\n');
    const dup = /^\/dup\/(same|different|999)(\?stream)?$/.exec(ex.target);
    if (dup?.[1] === '999') {
      if (!dup[2]) return ex.respond(999, null, ['Content-Type', 'text/plain'], 'odd\n');
      ex.writeHead(999, null, ['Content-Type', 'text/plain'], 4);
      ex.write(Buffer.from('odd\n'));
      ex.end();
      return;
    }
    if (dup) {
      const head = ['Content-Type', 'text/plain', 'X-Content-Type-Options', 'nosniff', 'Date', 'Thu, 03 Dec 2026 10:00:00 GMT',
        'X-Content-Type-Options', 'nosniff', 'Date', dup[1] === 'same' ? 'Thu, 03 Dec 2026 10:00:00 GMT' : 'Fri, 04 Dec 2026 10:00:00 GMT'];
      if (!dup[2]) return ex.respond(200, null, head, 'ok\n');
      ex.writeHead(200, null, head, 3);
      ex.write(Buffer.from('ok\n'));
      ex.end();
      return;
    }
    const cookie: string[] = [];
    for (let i = 0; i + 1 < ex.headers.length; i += 2) if (ex.headers[i] === 'cookie') cookie.push(ex.headers[i + 1]);
    ex.respond(200, null, ['Content-Type', 'application/json'], JSON.stringify({ cookie, fields: ex.headers.length / 2 }));
  };

  beforeAll(async () => {
    pair = await startTlsPair(DEFAULT_HTTP1_LIMITS, handle, 5000);
    ({ url, h2 } = pair);
  });
  afterAll(() => stopTlsPair(pair));

  const get = (s: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders) => new Promise<{ status: number; body: string; rst: number }>((resolve, reject) => {
    const r = s.request({ ':path': '/', ...headers });
    let body = '';
    let status = 0;
    const timer = setTimeout(() => reject(new Error('no answer within 5000 ms')), 5000);
    r.on('response', (h) => { status = Number(h[':status']); });
    r.on('data', (c: Buffer) => { body += c; });
    r.on('error', () => { /* seen in 'close' */ });
    r.on('close', () => { clearTimeout(timer); resolve({ status, body, rst: r.rstCode ?? 0 }); });
  });

  it.each(['', '?stream'])('a backend head with a field node:http2 sends once, twice (%s): the same value goes once, different values are 502 naming it, as is a status over 599; never a bare reset, nothing left in flight', async (mode) => {
    const s = http2.connect(url, { rejectUnauthorized: false });
    s.on('error', () => { /* closed at the end */ });
    try {
      const same = await new Promise<{ status: number; headers: http2.IncomingHttpHeaders; rst: number }>((resolve) => {
        const r = s.request({ ':path': `/dup/same${mode}` });
        let headers: http2.IncomingHttpHeaders = {};
        r.on('response', (h) => { headers = h; });
        r.on('error', () => { /* seen in 'close' */ });
        r.resume();
        r.on('close', () => resolve({ status: Number(headers[':status'] ?? 0), headers, rst: r.rstCode ?? 0 }));
      });
      expect(same.status, `rst ${same.rst}`).toBe(200);
      expect(same.headers['x-content-type-options']).toBe('nosniff');
      const different = await get(s, { ':path': `/dup/different${mode}` });
      expect(different.status, `rst ${different.rst}`).toBe(502);
      expect(different.body).toMatch(/two different Date fields/);
      const odd = await get(s, { ':path': `/dup/999${mode}` });
      expect(odd.status, `rst ${odd.rst}`).toBe(502);
      expect(odd.body).toMatch(/status 999 is not one HTTP\/2 can carry/);
      await waitUntil(() => h2.activeExchanges === 0, 'no exchange is left in flight (a graceful stop would wait for it)', 5000);
    } finally {
      s.destroy();
    }
  });

  it('a head over what the client takes, from any handler (not only the proxy), is 502 on that stream, the session goes on', async () => {
    const s = http2.connect(url, { rejectUnauthorized: false });
    s.on('error', () => { /* closed at the end */ });
    try {
      const big = await get(s, { ':path': '/big' });
      expect(big.status, `rst ${big.rst}`).toBe(502);
      expect(big.body).toMatch(/over the 65535 bytes this HTTP\/2 client takes/);
      expect((await get(s, { ':path': '/' })).status).toBe(200);
    } finally {
      s.destroy();
    }
  });

  it('a request head over the HTTP/1.1 limit (16384 bytes) is 431 as on HTTP/1.1, not a reset; over the hard cap (4x) node resets the stream; the session goes on', async () => {
    const s = http2.connect(url, { rejectUnauthorized: false });
    s.on('error', () => { /* closed at the end */ });
    try {
      const within = await get(s, { 'x-a': 'v'.repeat(16_000) });
      expect(within.status, `rst ${within.rst}`).toBe(200);
      const over = await get(s, { 'x-a': 'v'.repeat(10_000), 'x-b': 'v'.repeat(10_000) });
      expect(over.status, `rst ${over.rst}`).toBe(431);
      expect(over.body).toMatch(/request head larger than 16384 bytes/);
      const flood = await get(s, { 'x-a': 'v'.repeat(70_000) });
      expect(flood.status).toBe(0);
      expect(flood.rst).not.toBe(0);
      const fine = await get(s, { 'x-a': '1' });
      expect(fine.status, `rst ${fine.rst}`).toBe(200);
      expect(h2.sessionCount).toBe(1);
    } finally {
      s.destroy();
    }
  });

  it('a Host naming another entity than :authority is malformed (RFC 9113 8.3.1): 400, not passed on; the same name in another case passes', async () => {
    const s = http2.connect(url, { rejectUnauthorized: false });
    s.on('error', () => { /* closed at the end */ });
    try {
      const refused = await get(s, { ':authority': 'shop.example', host: 'admin.example' });
      expect(refused.status, `rst ${refused.rst}`).toBe(400);
      expect(refused.body).toMatch(/Host "admin.example" differs from :authority "shop.example"/);
      const same = await get(s, { ':authority': 'shop.example', host: 'Shop.Example' });
      expect(same.status, `rst ${same.rst}`).toBe(200);
    } finally {
      s.destroy();
    }
  });

  it('a browser\'s 150 cookie crumbs (one field each in HTTP/2) pass as one Cookie field; 101 other fields are 431, not a reset', async () => {
    const s = http2.connect(url, { rejectUnauthorized: false });
    s.on('error', () => { /* closed at the end */ });
    try {
      const crumbs = Array.from({ length: 150 }, (_, i) => `c${i}=v${i}`);
      const ok = await get(s, { cookie: crumbs });
      expect(ok.status, `rst ${ok.rst}`).toBe(200);
      expect(JSON.parse(ok.body).cookie).toEqual([crumbs.join('; ')]);
      const many: http2.OutgoingHttpHeaders = {};
      for (let i = 0; i < 101; i++) many[`x-f${i}`] = 'v';
      const refused = await get(s, many);
      expect(refused.status, `rst ${refused.rst}`).toBe(431);
      expect(refused.body).toMatch(/more than 100 header fields/);
      const fine = await get(s, { 'x-a': '1' });
      expect(fine.status).toBe(200);
    } finally {
      s.destroy();
    }
  });
});

describe('admin API: hostile bodies', () => {
  let front: TestFront;
  let admin: string;
  let token: string;

  beforeAll(async () => {
    front = await startTestFront({ procs: 1, admin: '127.0.0.1:0', command: ['python3', PY_HELLO] });
    admin = `http://${front.adminAddress}`;
    token = fs.readFileSync(path.join(front.socketDir, 'admin.token'), 'utf8').trim();
  });
  afterAll(async () => {
    await front?.stop();
  });

  it('the 4096-byte body limit counts bytes: 2000 "€" (6000 bytes) in valid JSON are 413, not taken', async () => {
    const body = Buffer.from(JSON.stringify({ procs: 2, pad: '€'.repeat(2000) }), 'utf8');
    expect(body.length).toBeGreaterThan(4096);
    const r = await request(`${admin}/scale`, { method: 'POST', body, headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, agent: false });
    expect(r.status, r.body.toString()).toBe(413);
    expect(r.body.toString()).toMatch(/at most 4096 bytes/);
    expect(front.supervisor!.procs).toBe(1);
  });
});

describe.skipIf(!OPENSSL)('HTTP/2: what a FastCGI app sends and is sent', () => {
  let dir: string;
  let front: TestFront;
  let url: string;

  beforeAll(async () => {
    dir = tmpDir('upfront-hostile-h2-');
    const certs = makeCertificate(dir);
    front = await startTestFront({ procs: 2, command: ['python3', PY_HELLO], 'tls-cert': certs.cert, 'tls-key': certs.key });
    url = `https://127.0.0.1:${front.address.split(':').pop()}`;
  });
  afterAll(async () => {
    await front?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** One stream, read whole (bounded): its status, body and RST_STREAM code. */
  const fetch2 = (s: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders) => new Promise<{ status: number; body: string; rst: number }>((resolve, reject) => {
    const r = s.request({ ':path': '/', ...headers });
    let body = '';
    let status = 0;
    const timer = setTimeout(() => reject(new Error(`${String(headers[':path'])}: no answer within 10000 ms`)), 10_000);
    r.setEncoding('utf8');
    r.on('response', (h) => { status = Number(h[':status']); });
    r.on('data', (c: string) => { body += c; });
    r.on('error', () => { /* seen in 'close' */ });
    r.on('close', () => { clearTimeout(timer); resolve({ status, body, rst: r.rstCode ?? 0 }); });
  });

  it('a response head over what the client takes (~100 KB of fields, node\'s client takes 64 KB) is 502 on its stream alone, logged with the backend and the size; the other stream and the session go on', async () => {
    const s = http2.connect(url, { rejectUnauthorized: false });
    let sessionError: Error | null = null;
    s.on('error', (err) => { sessionError = err; });
    try {
      const [big, ok] = await Promise.all([fetch2(s, { ':path': '/big-headers' }), fetch2(s, { ':path': '/Hello/1' })]);
      expect(big.status, `rst ${big.rst}, session error ${sessionError}`).toBe(502);
      expect(big.body).toMatch(/response head/);
      expect(ok.status, `rst ${ok.rst}`).toBe(200);
      const after = await fetch2(s, { ':path': '/Hello/1' });
      expect(after.status, `rst ${after.rst}`).toBe(200);
      expect(sessionError).toBeNull();
      const line = await front.log.waitFor((l) => /too big header/.test(l.msg), 'the 502 is logged', 5000);
      expect(line.msg).toMatch(/\(10\d{4} bytes, this client takes 65535\)/);
      expect(line.backend).toBeDefined();
      await waitUntil(async () => (await getStats(front)).pools[0].backends.every((b: { inflight: number }) => b.inflight === 0),
        'no request is in flight at a backend any more', 5000);
    } finally {
      s.destroy();
    }
  });

  it('TE (hop-by-hop, RFC 9110 7.6.1) does not reach the app as HTTP_TE, from HTTP/2 nor from HTTP/1.1; other fields do', async () => {
    const s = http2.connect(url, { rejectUnauthorized: false });
    s.on('error', () => { /* closed at the end */ });
    try {
      const r = await fetch2(s, { ':path': '/env', te: 'trailers', 'x-kept': 'yes' });
      expect(r.status, `rst ${r.rst}`).toBe(200);
      const env = JSON.parse(r.body) as Record<string, string>;
      expect(env.HTTP_X_KEPT).toBe('yes');
      expect(env.HTTP_TE).toBeUndefined();
    } finally {
      s.destroy();
    }
    const h1 = await new Promise<Record<string, string>>((resolve, reject) => {
      const q = https.get(`${url}/env`, { rejectUnauthorized: false, agent: false, headers: { TE: 'trailers', Connection: 'TE', 'X-Kept': 'yes' }, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { body += c; });
        res.on('end', () => resolve(JSON.parse(body) as Record<string, string>));
      });
      q.on('timeout', () => q.destroy(new Error('no answer within 10000 ms')));
      q.on('error', reject);
    });
    expect(h1.HTTP_X_KEPT).toBe('yes');
    expect(h1.HTTP_TE).toBeUndefined();
  });
});
