// TLS and HTTP/2 at module level: one TLS listener, ALPN h2 and http/1.1, HTTP/1.1
// sockets to the HTTP/1.1 layer and h2 sessions to the H2 adapter, one handler for
// both. Real clients (curl --http1.1 / --http2, node:http2, node:tls), a certificate
// made with openssl, bodies byte-exact both ways, certificates swapped on reload.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BodySink, ClientExchange } from '../src/server/exchange.js';
import { H2Server } from '../src/server/h2/server.js';
import { DEFAULT_HTTP1_LIMITS, Http1Server } from '../src/server/http1/server.js';
import { RedirectListener, httpsLocation } from '../src/server/redirectListener.js';
import { TlsListener, loadCertificate } from '../src/server/tls/tlsListener.js';
import { curl, header, makeCertificate } from './edge-helpers.js';
import { peer, tmpDir, waitUntil } from './helpers.js';

const CURL = peer('curl');
const OPENSSL = peer('openssl');
const log = pino({ level: 'silent' });

let dir: string;
let certs: { cert: string; key: string };
let http1: Http1Server;
let h2: H2Server;
let listener: TlsListener;
let port: number;
let base: string;
const handlerErrors: unknown[] = [];

const pattern = (n: number) => { const b = Buffer.allocUnsafe(n); for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 255; return b; };

/** /bytes/N streams N pattern bytes (with backpressure); anything else echoes a summary of the request and its body. */
function handle(ex: ClientExchange): void {
  const m = /^\/bytes\/(\d+)$/.exec(ex.target);
  if (m) {
    const total = Number(m[1]);
    const all = pattern(total);
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const n = Math.min(60_000, total - sent);
        const more = ex.write(all.subarray(sent, sent + n));
        sent += n;
        if (!more) return;
      }
      ex.end();
    };
    ex.setClientEvents({ onClientDrain: pump, onClientClose() {} });
    ex.writeHead(200, null, ['Content-Type', 'application/octet-stream', 'X-Sha256', crypto.createHash('sha256').update(all).digest('hex')], total);
    pump();
    return;
  }
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  const sink: BodySink = {
    onBodyData(c) { hash.update(c); bytes += c.length; return true; },
    onBodyEnd() {
      ex.respond(200, null, ['Content-Type', 'application/json', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Connection', 'keep-alive'], JSON.stringify({
        method: ex.method, target: ex.target, host: ex.host, headers: ex.headers, encrypted: ex.connection.encrypted, contentLength: ex.contentLength,
        bytes, sha256: hash.digest('hex'), version: ex.versionMinor,
      }));
    },
    onBodyError() {},
  };
  ex.readBody(sink);
}

beforeAll(async () => {
  if (!OPENSSL) return;
  dir = tmpDir('upfront-tls-');
  certs = makeCertificate(dir);
  http1 = new Http1Server({}, { onRequest: handle, onHandlerError: (e) => handlerErrors.push(e) });
  h2 = new H2Server(DEFAULT_HTTP1_LIMITS, { onRequest: handle, onHandlerError: (e) => handlerErrors.push(e) });
  listener = new TlsListener({ certFile: certs.cert, keyFile: certs.key, handshakeTimeoutMs: 10_000 }, http1, h2, log);
  await new Promise<void>((r) => listener.server.listen(0, '127.0.0.1', r));
  port = (listener.server.address() as AddressInfo).port;
  base = `https://127.0.0.1:${port}`;
});

afterAll(() => {
  listener?.server.close();
  h2?.destroyAll();
  http1?.destroyAll();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!CURL || !OPENSSL)('TLS listener: HTTP/1.1 and HTTP/2 by ALPN', () => {
  it('curl --http1.1 and --http2: the same request reaches the handler, encrypted, with Host from :authority', async () => {
    for (const v of ['--http1.1', '--http2']) {
      const r = await curl([v, '--cacert', certs.cert, '-H', 'Cookie: x=1', '-H', 'Cookie: y=2', `https://localhost:${port}/path?q=1`]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.httpVersion).toBe(v === '--http2' ? '2' : '1.1');
      const o = JSON.parse(r.body.toString());
      expect(o).toMatchObject({ method: 'GET', target: '/path?q=1', host: `localhost:${port}`, encrypted: true, contentLength: 0, version: 1 });
      const names = (o.headers as string[]).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      expect(names.filter((n) => n === 'host')).toHaveLength(1);
      expect(names.some((n) => n.startsWith(':'))).toBe(false);
      const h = o.headers as string[];
      const cookies = h.filter((_, i) => i % 2 === 1 && h[i - 1].toLowerCase() === 'cookie');
      // HTTP/2 splits cookies into crumbs; they reach the handler as one field (RFC 9113 8.2.3).
      expect(cookies).toEqual(v === '--http2' ? ['x=1; y=2'] : ['x=1', 'y=2']);
      expect(r.headers.get('set-cookie')).toEqual(['a=1', 'b=2']);
    }
  });

  it('bodies byte-exact both ways: 5 MiB down, 3 MiB up (with and without Content-Length), over each protocol', async () => {
    const up = crypto.randomBytes(3 * 1024 * 1024 + 5);
    const file = path.join(dir, 'up.bin');
    fs.writeFileSync(file, up);
    const want = crypto.createHash('sha256').update(up).digest('hex');
    for (const v of ['--http1.1', '--http2']) {
      const down = await curl([v, '-k', `${base}/bytes/5242883`]);
      expect(down.body.length).toBe(5242883);
      expect(crypto.createHash('sha256').update(down.body).digest('hex')).toBe(header(down, 'x-sha256'));
      const withLength = JSON.parse((await curl([v, '-k', '--data-binary', `@${file}`, `${base}/sha256`])).body.toString());
      expect(withLength).toMatchObject({ method: 'POST', bytes: up.length, sha256: want, contentLength: up.length });
      const streamed = JSON.parse((await curl([v, '-k', '-T', '-', '-X', 'POST', `${base}/sha256`], { input: up })).body.toString());
      expect(streamed).toMatchObject({ bytes: up.length, sha256: want, contentLength: -1 });
    }
  });

  it('node:http2: 20 concurrent streams on one session, HEAD without a body, connection-specific fields dropped', async () => {
    const session = http2.connect(base, { ca: fs.readFileSync(certs.cert), servername: 'localhost' });
    try {
      const one = (p: string, method = 'GET') => new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
        const req = session.request({ ':path': p, ':method': method });
        const chunks: Buffer[] = [];
        let headers: http2.IncomingHttpHeaders = {};
        req.on('response', (h) => { headers = h; });
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks) }));
        req.on('error', reject);
        req.end();
      });
      const all = await Promise.all(Array.from({ length: 20 }, (_, i) => one(`/bytes/${100_000 + i}`)));
      all.forEach((r, i) => {
        expect(r.body.length).toBe(100_000 + i);
        expect(crypto.createHash('sha256').update(r.body).digest('hex')).toBe(r.headers['x-sha256']);
      });
      const head = await one('/bytes/1000', 'HEAD');
      expect(head.status).toBe(200);
      expect(head.headers['content-length']).toBe('1000');
      expect(head.body.length).toBe(0);
      const echo = await one('/x');
      expect(echo.headers.connection).toBeUndefined();
      // A method HTTP/1.1 answers 501 is not passed to the handler over HTTP/2 either.
      const unknown = await one('/x', 'BREW');
      expect(unknown.status).toBe(501);
      expect(unknown.body.toString()).toMatch(/unknown method "BREW"/);
      expect((await one('/x', 'PROPFIND')).status).toBe(200);
      expect(h2.acceptedSessions).toBeGreaterThanOrEqual(1);
    } finally {
      session.close();
    }
    expect(handlerErrors).toEqual([]);
  });

  it('a client without ALPN gets HTTP/1.1', async () => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: fs.readFileSync(certs.cert) });
    await new Promise((r) => socket.once('secureConnect', r));
    expect(socket.alpnProtocol).toBe(false);
    socket.write('GET /noalpn HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    let text = '';
    socket.on('data', (c) => { text += c.toString('latin1'); });
    await new Promise((r) => socket.once('end', r));
    expect(text).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(text).toContain('"encrypted":true');
  });

  it('reload: new handshakes get the new certificate, a session opened before keeps working', async () => {
    const session = http2.connect(base, { rejectUnauthorized: false });
    const get = (s: http2.ClientHttp2Session, p: string) => new Promise<number>((resolve, reject) => {
      const req = s.request({ ':path': p });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      req.resume();
      req.end();
    });
    expect(await get(session, '/before')).toBe(200);
    const fingerprintNow = () => new Promise<string>((resolve, reject) => {
      const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => { resolve(s.getPeerX509Certificate()!.fingerprint256); s.end(); });
      s.on('error', reject);
    });
    const old = await fingerprintNow();
    expect(old).toBe(loadCertificate({ certFile: certs.cert, keyFile: certs.key }).fingerprint256);
    const fresh = makeCertificate(dir, 'next');
    fs.copyFileSync(fresh.cert, certs.cert);
    fs.copyFileSync(fresh.key, certs.key);
    const loaded = listener.reload();
    expect(await fingerprintNow()).toBe(loaded.fingerprint256);
    expect(loaded.fingerprint256).not.toBe(old);
    expect(await get(session, '/after')).toBe(200); // the old session: same connection, still served
    session.close();
    // A broken file: the error names it, the certificate in use stays.
    fs.writeFileSync(certs.key, 'not a key');
    expect(() => listener.reload()).toThrow(/tls-key: .* not a PEM private key|does not go with/);
    expect(await fingerprintNow()).toBe(loaded.fingerprint256);
    fs.copyFileSync(fresh.key, certs.key);
  });

  it('stop: GOAWAY lets the stream in progress finish; idle sessions close', async () => {
    const session = http2.connect(base, { rejectUnauthorized: false });
    const req = session.request({ ':path': '/bytes/3000000' });
    let got = 0;
    req.on('data', (c: Buffer) => { got += c.length; });
    const ended = new Promise((r) => req.on('end', r));
    await new Promise((r) => req.once('response', r));
    h2.stopAccepting();
    await ended;
    expect(got).toBe(3000000);
    await waitUntil(() => h2.sessionCount === 0, 'the sessions close after GOAWAY');
    session.destroy();
  });
});

describe.skipIf(!CURL)('redirect listener', () => {
  it('301 for GET/HEAD and 308 for others, to https on the TLS port; a bad Host is 400', async () => {
    expect(httpsLocation('example.com:8080', '127.0.0.1', 443, '/a?b')).toBe('https://example.com/a?b');
    expect(httpsLocation('[::1]:80', '', 8443, '/')).toBe('https://[::1]:8443/');
    expect(httpsLocation('evil.com/x', '', 443, '/')).toBeNull();
    const r = new RedirectListener({ kind: 'tcp', host: '127.0.0.1', port: 0 }, () => 8443, {}, log);
    await r.listen();
    try {
      const at = r.address();
      const get = await curl(['-H', 'Host: shop.example:8080', `http://${at}/cart?id=1`]);
      expect(get.status).toBe(301);
      expect(header(get, 'location')).toBe('https://shop.example:8443/cart?id=1');
      const post = await curl(['-X', 'POST', '--data', 'x', `http://${at}/cart`]);
      expect(post.status).toBe(308);
      expect((await curl(['-H', 'Host: a b', `http://${at}/`])).status).toBe(400);
    } finally {
      r.close();
    }
  });
});

describe.skipIf(!OPENSSL)('HTTP/2 limits and timeouts', () => {
  it('idle sessions close after the keep-alive timeout; a silent upload gets 408; a body over the limit 413; a client that stops reading is reset', async () => {
    const c = makeCertificate(dir, 'limits');
    const limits = { ...DEFAULT_HTTP1_LIMITS, keepAliveTimeoutMs: 300, bodyTimeoutMs: 300, sendTimeoutMs: 300, maxBodyBytes: 1000 };
    const h1 = new Http1Server(limits, { onRequest: handle });
    const server = new H2Server(limits, { onRequest: handle, onHandlerError: (e) => handlerErrors.push(e) });
    const l = new TlsListener({ certFile: c.cert, keyFile: c.key, handshakeTimeoutMs: 5000 }, h1, server, log);
    await new Promise<void>((r) => l.server.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(l.server.address() as AddressInfo).port}`;
    try {
      const idle = http2.connect(url, { rejectUnauthorized: false });
      const t0 = Date.now();
      await new Promise((r) => idle.once('close', r));
      expect(Date.now() - t0).toBeLessThan(5000);

      const s = http2.connect(url, { rejectUnauthorized: false });
      const status = (req: http2.ClientHttp2Stream) => new Promise<number>((resolve) => {
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', () => resolve(-1));
        req.on('close', () => resolve(-1));
        req.resume();
      });
      const silent = s.request({ ':path': '/sha256', ':method': 'POST' }); // no data, no END_STREAM
      expect(await status(silent)).toBe(408);
      const big = s.request({ ':path': '/sha256', ':method': 'POST', 'content-length': '5000' });
      expect(await status(big)).toBe(413);
      const chunked = s.request({ ':path': '/sha256', ':method': 'POST' });
      const chunkedStatus = status(chunked);
      chunked.write(Buffer.alloc(3000));
      expect(await chunkedStatus).toBe(413);
      // A reader that never reads: flow control stops the sender, the send timeout resets the stream.
      const stalled = s.request({ ':path': '/bytes/50000000' });
      stalled.pause();
      stalled.on('error', () => { /* the reset, seen in 'close' */ });
      const code = await new Promise<number>((resolve) => stalled.on('close', () => resolve(stalled.rstCode ?? -1)));
      expect(code).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
      s.destroy();
    } finally {
      l.server.close();
      server.destroyAll();
      h1.destroyAll();
    }
  });
});
