// --compress at module level: CompressingExchange on the HTTP/1.1 layer, decoded by
// curl --compressed and node:zlib; what must not be compressed is not.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestAcceptedEncodings } from '../src/server/acceptEncoding.js';
import { CompressingExchange, compressedHeaders } from '../src/server/compress.js';
import type { ClientExchange } from '../src/server/exchange.js';
import { Http1Server } from '../src/server/http1/server.js';
import { curl, header } from './edge-helpers.js';
import { peer, waitUntil } from './helpers.js';

const CURL = peer('curl');
let server: Http1Server;
let base: string;
let port: number;
const TEXT = Buffer.from('<p>Hello, compressed world! line</p>\n'.repeat(3000)); // ~110 KB
/** Pieces the streaming handler managed to write (backpressure test). */
let produced = 0;
/** Ends the held stream (flush test). */
let endHeld: (() => void) | null = null;

function route(ex: ClientExchange): void {
  const t = ex.target;
  const type = ['Content-Type', 'text/html; charset=utf-8'];
  if (t === '/respond') return ex.respond(200, null, [...type, 'ETag', '"abc"'], TEXT);
  if (t === '/small') return ex.respond(200, null, type, 'tiny');
  if (t === '/png') return ex.respond(200, null, ['Content-Type', 'image/png'], TEXT);
  if (t === '/encoded') return ex.respond(200, null, [...type, 'Content-Encoding', 'gzip'], zlib.gzipSync(TEXT));
  if (t === '/notransform') return ex.respond(200, null, [...type, 'Cache-Control', 'public, no-transform'], TEXT);
  if (t === '/partial') return ex.respond(206, null, [...type, 'Content-Range', `bytes 0-99/${TEXT.length}`], TEXT.subarray(0, 100));
  if (t === '/404') return ex.respond(404, null, type, TEXT);
  if (t === '/stream') {
    ex.writeHead(200, null, [...type, 'Content-Length', String(TEXT.length)], TEXT.length);
    for (let i = 0; i < TEXT.length; i += 7000) ex.write(TEXT.subarray(i, Math.min(TEXT.length, i + 7000)));
    return ex.end();
  }
  if (t === '/held') {
    ex.writeHead(200, null, ['Content-Type', 'text/event-stream'], -1);
    ex.write(Buffer.from('data: first\n\n'));
    endHeld = () => { ex.write(Buffer.from('data: last\n\n')); ex.end(); };
    return;
  }
  if (t === '/endless') {
    // 64 MiB of text, written as fast as the client (through the compressor) takes it.
    const total = 64 * 1024 * 1024;
    const piece = Buffer.from(crypto.randomBytes(32 * 1024).toString('base64').slice(0, 32 * 1024));
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        sent += piece.length;
        produced += piece.length;
        if (!ex.write(piece)) return;
      }
      ex.end();
    };
    ex.setClientEvents({ onClientDrain: pump, onClientClose() {} });
    ex.writeHead(200, null, ['Content-Type', 'text/plain'], total);
    pump();
    return;
  }
  ex.respond(404, null, [], 'no');
}

beforeAll(async () => {
  server = new Http1Server({}, {
    onRequest: (ex) => {
      const accepted = requestAcceptedEncodings(ex.headers);
      route(accepted !== 0 && ex.method !== 'HEAD' ? new CompressingExchange(ex, accepted, { minSize: 1024 }) : ex);
    },
  });
  await new Promise<void>((r) => server.net.listen(0, '127.0.0.1', r));
  port = (server.net.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});
afterAll(() => server?.destroyAll());

describe('compression: which responses', () => {
  it('compressedHeaders: text above the size, 200-203, no encoding, range or no-transform; ETag weakened, Vary added', () => {
    const h = compressedHeaders(200, ['Content-Type', 'text/css', 'ETag', '"x"', 'Accept-Ranges', 'bytes', 'Content-Length', '5000', 'Vary', 'Cookie'], 5000, 1024, 'gzip');
    expect(h).toEqual(['Content-Type', 'text/css', 'ETag', 'W/"x"', 'Vary', 'Cookie, Accept-Encoding', 'Content-Encoding', 'gzip']);
    expect(compressedHeaders(200, ['Content-Type', 'text/css'], 100, 1024, 'gzip')).toBeNull();
    expect(compressedHeaders(200, ['Content-Type', 'text/css'], -1, 1024, 'br')).not.toBeNull();
    expect(compressedHeaders(206, ['Content-Type', 'text/css'], 5000, 1024, 'br')).toBeNull();
    expect(compressedHeaders(304, ['Content-Type', 'text/css'], -1, 1024, 'br')).toBeNull();
    expect(compressedHeaders(200, ['Content-Type', 'image/jpeg'], 5000, 1024, 'br')).toBeNull();
    expect(compressedHeaders(200, ['content-type', 'text/css', 'content-encoding', 'br'], 5000, 1024, 'br')).toBeNull();
    expect(compressedHeaders(200, ['Content-Type', 'text/css', 'Cache-Control', 'no-transform'], 5000, 1024, 'br')).toBeNull();
    expect(compressedHeaders(200, [], 5000, 1024, 'br')).toBeNull();
  });
});

describe.skipIf(!CURL)('compression with real clients', () => {
  it('gzip and br, whole and streamed, decode to the same bytes', async () => {
    for (const enc of ['gzip', 'br']) {
      for (const p of ['/respond', '/stream']) {
        const raw = await curl(['-H', `Accept-Encoding: ${enc}`, `${base}${p}`]);
        expect(header(raw, 'content-encoding'), `${enc} ${p}`).toBe(enc);
        expect(header(raw, 'vary')).toBe('Accept-Encoding');
        expect(raw.body.length).toBeLessThan(TEXT.length / 10);
        const decoded = enc === 'gzip' ? zlib.gunzipSync(raw.body) : zlib.brotliDecompressSync(raw.body);
        expect(decoded.equals(TEXT), `${enc} ${p}`).toBe(true);
      }
    }
    const viaCurl = await curl(['--compressed', `${base}/respond`]);
    expect(viaCurl.body.equals(TEXT)).toBe(true);
    expect(header(viaCurl, 'etag')).toBe('W/"abc"');
  });

  it('left alone: no Accept-Encoding, small, an image, already encoded, no-transform, 206, 404', async () => {
    expect(header(await curl([`${base}/respond`]), 'content-encoding')).toBeUndefined();
    for (const p of ['/small', '/png', '/notransform', '/partial', '/404']) {
      const r = await curl(['-H', 'Accept-Encoding: gzip, br', `${base}${p}`]);
      expect(header(r, 'content-encoding'), p).toBeUndefined();
    }
    const enc = await curl(['-H', 'Accept-Encoding: gzip, br', `${base}/encoded`]);
    expect(header(enc, 'content-encoding')).toBe('gzip');
    expect(zlib.gunzipSync(enc.body).equals(TEXT)).toBe(true); // once, not twice
  });

  it('a response that pauses is flushed: the first event decodes before the response ends', async () => {
    const first = await new Promise<string>((resolve, reject) => {
      const req = http.get(`${base}/held`, { headers: { 'Accept-Encoding': 'gzip' } }, (res) => {
        expect(res.headers['content-encoding']).toBe('gzip');
        const gunzip = zlib.createGunzip();
        res.pipe(gunzip);
        let text = '';
        gunzip.on('data', (c: Buffer) => {
          text += c.toString();
          if (text.includes('first')) resolve(text);
        });
        gunzip.on('error', reject);
      });
      req.on('error', reject);
    });
    expect(first).toBe('data: first\n\n');
    endHeld?.();
  });

  it('backpressure through the compressor: a client that does not read stops the producer, then gets every byte', async () => {
    produced = 0;
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.pause();
    sock.write('GET /endless HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n');
    let last = -1;
    let same = 0;
    await waitUntil(() => {
      same = produced > 0 && produced === last ? same + 1 : 0;
      last = produced;
      return same >= 3;
    }, 'the producer stops while the client does not read', 15_000);
    expect(last).toBeLessThan(32 * 1024 * 1024);
    // Read everything: chunked gzip; count decoded bytes.
    let buf = Buffer.alloc(0);
    const gunzip = zlib.createGunzip();
    let decoded = 0;
    gunzip.on('data', (c: Buffer) => { decoded += c.length; });
    const done = new Promise<void>((resolve) => gunzip.on('end', resolve));
    let headDone = false;
    let need = -1;
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (!headDone) {
        const e = buf.indexOf('\r\n\r\n');
        if (e < 0) return;
        headDone = true;
        buf = buf.subarray(e + 4);
      }
      // Chunked framing.
      for (;;) {
        if (need < 0) {
          const le = buf.indexOf('\r\n');
          if (le < 0) return;
          need = parseInt(buf.subarray(0, le).toString(), 16);
          buf = buf.subarray(le + 2);
          if (need === 0) { gunzip.end(); return; }
        }
        if (buf.length < need + 2) return;
        gunzip.write(buf.subarray(0, need));
        buf = buf.subarray(need + 2);
        need = -1;
      }
    });
    sock.resume();
    await done;
    sock.destroy();
    expect(decoded).toBe(64 * 1024 * 1024);
  });
});
