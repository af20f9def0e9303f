// Differential test of the http1 layer against node:http configured as the front
// has it today: the same seeded requests (valid and malformed) over raw sockets to
// both, each echoing a canonical JSON of what it understood. Same verdict (served
// vs refused) and, when served, the same method/target/version/headers/body.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Http1Server, type Http1Exchange } from '../src/server/http1/server.js';
import { talk, type RawResponse, type Talk } from './http1-wire.js';

const SEED = Number(process.env.HTTP1_DIFF_SEED ?? 20261201);
const CASES = Number(process.env.HTTP1_DIFF_CASES ?? 10_000);
const CONCURRENCY = 48;

// ---- the two servers, echoing what they understood

interface Echo { method: string; target: string; version: string; headers: string[]; bodyLength: number; bodySha1: string }

function echoResponse(echo: Echo, head: boolean): { headers: string[]; body: string } {
  const json = JSON.stringify(echo);
  // HEAD responses carry no body: the echo goes in a header then.
  return head ? { headers: ['X-Echo', Buffer.from(json).toString('base64')], body: json } : { headers: ['Content-Type', 'application/json'], body: json };
}

function startNode(): Promise<http.Server> {
  // As src/server/frontServer.ts configures it.
  const server = http.createServer({ keepAlive: true, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
    const hash = crypto.createHash('sha1');
    let length = 0;
    req.on('data', (c: Buffer) => { hash.update(c); length += c.length; });
    req.on('end', () => {
      const r = echoResponse({ method: req.method!, target: req.url!, version: req.httpVersion, headers: req.rawHeaders, bodyLength: length, bodySha1: hash.digest('hex') }, req.method === 'HEAD');
      res.setHeader(r.headers[0], r.headers[1]);
      // An explicit length, so node keeps HTTP/1.0 keep-alive connections as the layer does.
      res.setHeader('Content-Length', Buffer.byteLength(r.body));
      res.end(r.body);
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (socket.writable && err.code !== 'ECONNRESET') socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function startHttp1(): Promise<Http1Server> {
  const server = new Http1Server({}, {
    onRequest(ex: Http1Exchange) {
      const hash = crypto.createHash('sha1');
      let length = 0;
      ex.readBody({
        onBodyData(c) { hash.update(c); length += c.length; return true; },
        onBodyEnd() {
          const r = echoResponse({ method: ex.method, target: ex.target, version: `1.${ex.versionMinor}`, headers: ex.headers, bodyLength: length, bodySha1: hash.digest('hex') }, ex.method === 'HEAD');
          ex.respond(200, null, r.headers, r.body);
        },
        onBodyError() { /* the layer answers */ },
      });
    },
  });
  return new Promise((resolve) => server.net.listen(0, '127.0.0.1', () => resolve(server)));
}

// ---- the generator (seeded)

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  constructor(readonly next: () => number) {}
  int(lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)); }
  chance(p: number): boolean { return this.next() < p; }
  pick<T>(list: readonly T[]): T { return list[Math.floor(this.next() * list.length)]; }
  bytes(n: number): Buffer { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = this.int(0, 255); return b; }
  text(n: number, alphabet: string): string { let s = ''; for (let i = 0; i < n; i++) s += alphabet[this.int(0, alphabet.length - 1)]; return s; }
  randomCase(s: string): string { return [...s].map((c) => (this.chance(0.3) ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c)).join(''); }
}

const PATH_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&\'()*+,;=:@';
const VALUE_CHARS = ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~';
const TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~";
const HEADER_NAMES = ['Accept', 'User-Agent', 'Accept-Language', 'Cookie', 'Cache-Control', 'X-Forwarded-For', 'X-Request-Id', 'Referer', 'If-None-Match', 'Upgrade', 'Authorization', 'Content-Type', 'Origin', 'DNT', 'TE'];

interface Req {
  method: string;
  target: string;
  version: string;
  headers: Array<[string, string]>;
  body: Buffer | null;
  /** How the body is framed. */
  framing: 'none' | 'cl' | 'chunked';
  /** The chunked encoding of body, when framing = chunked. */
  chunkedBytes?: Buffer;
}

function chunkedEncode(rng: Rng, body: Buffer, opts: { ext?: boolean; trailers?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  let pos = 0;
  while (pos < body.length) {
    const n = Math.min(body.length - pos, rng.chance(0.2) ? rng.int(1, 8) : rng.int(1, 3000));
    let size = n.toString(16);
    if (rng.chance(0.3)) size = size.toUpperCase();
    if (rng.chance(0.1)) size = '00' + size;
    const ext = opts.ext && rng.chance(0.5) ? rng.pick([';a', ';a=b', ';name="quoted value"', ';x=1;y=2', ';q="a\\"b"']) : '';
    parts.push(Buffer.from(`${size}${ext}\r\n`, 'latin1'), body.subarray(pos, pos + n), Buffer.from('\r\n'));
    pos += n;
  }
  const trailers = opts.trailers && rng.chance(0.5) ? `X-Trailer: ${rng.text(rng.int(0, 20), VALUE_CHARS).trim()}\r\n` : '';
  parts.push(Buffer.from(`0\r\n${trailers}\r\n`, 'latin1'));
  return Buffer.concat(parts);
}

function validRequest(rng: Rng): Req {
  const version = rng.chance(0.9) ? '1.1' : '1.0';
  const method = rng.pick(['GET', 'GET', 'GET', 'POST', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'PROPFIND', 'QUERY', 'M-SEARCH']);
  let target = '/' + Array.from({ length: rng.int(0, 4) }, () => rng.text(rng.int(0, 12), PATH_CHARS)).join('/');
  if (rng.chance(0.3)) target += '?' + rng.text(rng.int(0, 40), PATH_CHARS + '/?');
  if (method === 'OPTIONS' && rng.chance(0.3)) target = '*';
  if (rng.chance(0.03)) target = 'http://example.com' + target;
  const headers: Array<[string, string]> = [];
  if (version === '1.1' || rng.chance(0.5)) headers.push([rng.randomCase('Host'), rng.pick(['example.com', 'localhost:8080', '127.0.0.1', '[::1]:80', ''])]);
  for (let i = rng.int(0, 8); i > 0; i--) {
    const name = rng.chance(0.8) ? rng.randomCase(rng.pick(HEADER_NAMES)) : 'X-' + rng.text(rng.int(1, 16), TOKEN_CHARS);
    let value = rng.text(rng.int(0, 60), VALUE_CHARS);
    if (rng.chance(0.05)) value += '\xe9\xff'; // obs-text
    if (rng.chance(0.1)) value = rng.pick([' ', '\t', '  ']) + value + rng.pick([' ', '\t', '']);
    headers.splice(rng.int(0, headers.length), 0, [name, value]);
  }
  if (version === '1.0' && rng.chance(0.5)) headers.push(['Connection', 'keep-alive']);
  else if (rng.chance(0.1)) headers.push(['Connection', rng.pick(['keep-alive', 'close', 'Upgrade', 'keep-alive, Upgrade'])]);
  let framing: Req['framing'] = 'none';
  let body: Buffer | null = null;
  let chunkedBytes: Buffer | undefined;
  const wantsBody = ['POST', 'PUT', 'PATCH', 'QUERY'].includes(method) || (method !== 'HEAD' && rng.chance(0.05));
  if (wantsBody) {
    body = rng.bytes(rng.chance(0.05) ? rng.int(10_000, 80_000) : rng.int(0, 2000));
    if (version === '1.1' && rng.chance(0.4)) {
      framing = 'chunked';
      headers.push([rng.randomCase('Transfer-Encoding'), rng.chance(0.8) ? 'chunked' : 'Chunked']);
      chunkedBytes = chunkedEncode(rng, body, { ext: rng.chance(0.3), trailers: rng.chance(0.3) });
    } else {
      framing = 'cl';
      headers.push([rng.randomCase('Content-Length'), (rng.chance(0.05) ? '00' : '') + String(body.length)]);
    }
    if (version === '1.1' && rng.chance(0.1)) headers.push(['Expect', rng.randomCase('100-continue')]);
  }
  return { method, target, version, headers, body, framing, chunkedBytes };
}

function serialize(r: Req, opts: { requestLine?: string; lineEnd?: string; headerLines?: string[] } = {}): Buffer {
  const eol = opts.lineEnd ?? '\r\n';
  const line = opts.requestLine ?? `${r.method} ${r.target} HTTP/${r.version}`;
  const lines = opts.headerLines ?? r.headers.map(([n, v]) => `${n}: ${v}`);
  const head = Buffer.from(`${line}${eol}${lines.map((l) => l + eol).join('')}${eol}`, 'latin1');
  const body = r.framing === 'chunked' ? r.chunkedBytes! : r.framing === 'cl' ? r.body! : Buffer.alloc(0);
  return Buffer.concat([head, body]);
}

interface Case {
  kind: string;
  bytes: Buffer;
  methods: string[];
  /** The bytes of each request (pipelined cases have two). */
  parts: Buffer[];
}

const CTLS = [0x00, 0x01, 0x07, 0x08, 0x0b, 0x0c, 0x0e, 0x1b, 0x1f, 0x7f];
const ODD_BYTES = [...CTLS, 0x09, 0x0a, 0x0d, 0x20, 0x22, 0x28, 0x29, 0x2c, 0x2f, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x5b, 0x5c, 0x5d, 0x7b, 0x7d, 0x80, 0xa0, 0xc3, 0xe9, 0xff];

function insertAt(s: string, rng: Rng, ch: string): string {
  const i = rng.int(0, s.length);
  return s.slice(0, i) + ch + s.slice(i);
}

/** One malformed (or edge) request made from a valid one. */
const MUTATIONS: Record<string, (rng: Rng, r: Req) => Buffer> = {
  'method-case': (rng, r) => serialize(r, { requestLine: `${rng.chance(0.5) ? r.method.toLowerCase() : rng.randomCase(r.method)} ${r.target} HTTP/${r.version}` }),
  'method-unknown': (rng, r) => serialize(r, { requestLine: `${rng.pick(['FOO', 'GETS', 'BREW', 'PRI', 'CONNECT', 'TRACK', 'X', 'PROPFINDX', 'A'.repeat(40)])} ${r.target} HTTP/${r.version}` }),
  'method-byte': (rng, r) => serialize(r, { requestLine: `${insertAt(r.method, rng, String.fromCharCode(rng.pick(ODD_BYTES)))} ${r.target} HTTP/${r.version}` }),
  'connect': (rng, r) => serialize(r, { requestLine: `CONNECT ${rng.pick(['example.com:443', '127.0.0.1:80', '/'])} HTTP/${r.version}` }),
  'target-byte': (rng, r) => serialize(r, { requestLine: `${r.method} ${insertAt(r.target, rng, String.fromCharCode(rng.pick([...ODD_BYTES, 0x23, 0x7c, 0x5e, 0x60])))} HTTP/${r.version}` }),
  'target-form': (rng, r) => serialize(r, { requestLine: `${r.method} ${rng.pick(['', 'foo', 'a:b', '*x', '?q', '#f', 'http://x', 'http:/x', 'HTTP://EXAMPLE.COM/', 'h-t.t+p://x/', '1http://x/', '//x', '*'])} HTTP/${r.version}` }),
  'target-long': (rng, r) => serialize({ ...r, framing: 'none' }, { requestLine: `${r.method} /${'a'.repeat(rng.pick([4000, 8190, 8300, 12_000, 20_000]))} HTTP/${r.version}`, headerLines: r.headers.filter(([n]) => !/^(content-length|transfer-encoding)$/i.test(n)).map(([n, v]) => `${n}: ${v}`) }),
  'spaces': (rng, r) => serialize(r, { requestLine: rng.pick([`${r.method}  ${r.target} HTTP/${r.version}`, `${r.method} ${r.target}  HTTP/${r.version}`, ` ${r.method} ${r.target} HTTP/${r.version}`, `${r.method} ${r.target} HTTP/${r.version} `, `${r.method}\t${r.target} HTTP/${r.version}`, `${r.method} ${r.target}`]) }),
  'version': (rng, r) => serialize(r, { requestLine: `${r.method} ${r.target} ${rng.pick(['HTTP/1.2', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/3.0', 'http/1.1', 'HTTP/1.10', 'HTTP/11', 'HTTP/1', 'HTTP/1.x', 'HTTPS/1.1', 'HTTP /1.1', 'HTTP/9.9'])}` }),
  'header-name-byte': (rng, r) => {
    const lines = r.headers.map(([n, v]) => `${n}: ${v}`);
    const i = rng.int(0, lines.length);
    lines.splice(i, 0, `${insertAt('X-Odd-Name', rng, String.fromCharCode(rng.pick(ODD_BYTES.filter((b) => b !== 0x3a))))}: v`);
    return serialize(r, { headerLines: lines });
  },
  'header-colon': (rng, r) => {
    const lines = r.headers.map(([n, v]) => `${n}: ${v}`);
    lines.splice(rng.int(0, lines.length), 0, rng.pick(['X-Space : v', 'X-Tab\t: v', ': empty-name', 'NoColon', 'X-Two:: v', 'X-Empty:', 'X-Spaces:    ', 'X:v', ' X: v', '\tX: v']));
    return serialize(r, { headerLines: lines });
  },
  'header-value-byte': (rng, r) => {
    const lines = r.headers.map(([n, v]) => `${n}: ${v}`);
    lines.splice(rng.int(0, lines.length), 0, `X-Odd-Value: ${insertAt('some value', rng, String.fromCharCode(rng.pick(ODD_BYTES)))}`);
    return serialize(r, { headerLines: lines });
  },
  'obs-fold': (rng, r) => {
    const lines = r.headers.map(([n, v]) => `${n}: ${v}`);
    lines.splice(rng.int(1, lines.length), 0, rng.pick([' folded', '\tfolded', '  ']));
    return serialize(r, { headerLines: lines });
  },
  'line-ends': (rng, r) => {
    const kind = rng.int(0, 3);
    if (kind === 0) return serialize(r, { lineEnd: '\n' });
    if (kind === 1) return serialize(r, { lineEnd: '\r' });
    const bytes = serialize(r);
    // One CRLF of the head becomes a bare LF or a bare CR.
    const head = bytes.indexOf('\r\n\r\n');
    const crlfs: number[] = [];
    for (let i = bytes.indexOf('\r\n'); i !== -1 && i <= head + 2; i = bytes.indexOf('\r\n', i + 1)) crlfs.push(i);
    const at = rng.pick(crlfs);
    return kind === 2 ? Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]) : Buffer.concat([bytes.subarray(0, at + 1), bytes.subarray(at + 2)]);
  },
  'cl-te': (rng, r) => {
    const body = r.body ?? Buffer.from('hello');
    const chunked = chunkedEncode(rng, body);
    const other = r.headers.filter(([n]) => !/^(content-length|transfer-encoding|expect)$/i.test(n)).map(([n, v]) => `${n}: ${v}`);
    const variants: Array<[string[], Buffer]> = [
      [[`Content-Length: ${body.length}`, 'Transfer-Encoding: chunked'], chunked],
      [['Transfer-Encoding: chunked', `Content-Length: ${chunked.length}`], chunked],
      [[`Content-Length: ${body.length}`, `Content-Length: ${body.length}`], body],
      [[`Content-Length: ${body.length}`, `Content-Length: ${body.length + 1}`], body],
      [[`Content-Length: ${body.length}, ${body.length}`], body],
      [[`Content-Length: +${body.length}`], body],
      [[`Content-Length: -${body.length}`], body],
      [[`Content-Length: ${body.length}x`], body],
      [[`Content-Length: 0x${body.length.toString(16)}`], body],
      [[`Content-Length: ${String(body.length).split('').join(' ')}`], body],
      [['Content-Length:'], body],
      [['Content-Length: 99999999999999999999999'], body],
      [[`Content-Length: 000${body.length}`], body],
      [[`Content-Length:\t${body.length}\t`], body],
      [['Transfer-Encoding: gzip, chunked'], chunked],
      [['Transfer-Encoding: chunked, gzip'], chunked],
      [['Transfer-Encoding: gzip'], body],
      [['Transfer-Encoding: identity'], body],
      [['Transfer-Encoding: chunked, chunked'], chunked],
      [['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], chunked],
      [['Transfer-Encoding:'], chunked],
      [['Transfer-Encoding: CHUNKED'], chunked],
      [['Transfer-Encoding: chunked '], chunked],
      [['Transfer-Encoding: xchunked'], chunked],
      [['Transfer-Encoding : chunked'], chunked],
    ];
    const [lines, payload] = rng.pick(variants);
    const head = Buffer.from(`${r.method === 'GET' || r.method === 'HEAD' ? 'POST' : r.method} ${r.target} HTTP/${r.version}\r\n${[...other, ...lines].map((l) => l + '\r\n').join('')}\r\n`, 'latin1');
    return Buffer.concat([head, payload]);
  },
  'chunked-framing': (rng, r) => {
    const other = r.headers.filter(([n]) => !/^(content-length|transfer-encoding|expect)$/i.test(n)).map(([n, v]) => `${n}: ${v}`);
    const bodies = [
      '5\r\nhello\r\n0\r\n\r\n', '5 \r\nhello\r\n0\r\n\r\n', ' 5\r\nhello\r\n0\r\n\r\n', '5\nhello\r\n0\r\n\r\n', '5\r\nhello\n0\r\n\r\n',
      '5\r\nhelloX\r\n0\r\n\r\n', '5\r\nhell\r\n0\r\n\r\n', 'g\r\nhello\r\n0\r\n\r\n', '-5\r\nhello\r\n0\r\n\r\n', '0x5\r\nhello\r\n0\r\n\r\n',
      '5;\r\nhello\r\n0\r\n\r\n', '5;a\r\nhello\r\n0\r\n\r\n', '5; a\r\nhello\r\n0\r\n\r\n', '5 ;a\r\nhello\r\n0\r\n\r\n', '5;a=\r\nhello\r\n0\r\n\r\n',
      '5;a=b c\r\nhello\r\n0\r\n\r\n', '5;a="b c"\r\nhello\r\n0\r\n\r\n', '5;a="b\r\nhello\r\n0\r\n\r\n', '5;a="\x01"\r\nhello\r\n0\r\n\r\n', '5;a=b;c=d\r\nhello\r\n0\r\n\r\n',
      '5;a\x00\r\nhello\r\n0\r\n\r\n', '5\r\nhello\r\n0\r\nX: y\r\n\r\n', '5\r\nhello\r\n0\r\nX : y\r\n\r\n', '5\r\nhello\r\n0\r\nX y\r\n\r\n', '5\r\nhello\r\n0\r\nX: y\r\n z\r\n\r\n',
      '5\r\nhello\r\n0\r\nX: \x00\r\n\r\n', '5\r\nhello\r\n0\r\n\n', '5\r\nhello\r\n0\n\r\n', 'fffffffffffffffff\r\nhello\r\n0\r\n\r\n', '000005\r\nhello\r\n00\r\n\r\n',
      '5\r\nhello\r\n\r\n', '5\r\nhello\r\n0;x=y\r\n\r\n', 'A\r\nhellohello\r\n0\r\n\r\n', '5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n', '5\r\nhello\r\n0\r\n\r',
    ];
    const body = rng.pick(bodies);
    const method = r.method === 'GET' || r.method === 'HEAD' ? 'POST' : r.method;
    return Buffer.from(`${method} ${r.target} HTTP/1.1\r\n${[...other, 'Transfer-Encoding: chunked'].map((l) => l + '\r\n').join('')}\r\n${body}`, 'latin1');
  },
  'host': (rng, r) => {
    const other = r.headers.filter(([n]) => !/^host$/i.test(n)).map(([n, v]) => `${n}: ${v}`);
    const hosts = rng.pick([[], ['Host: a', 'Host: b'], ['Host: a', 'host: a'], ['Host:'], ['Host: a b'], ['Host: \xe9']]);
    return serialize(r, { headerLines: [...hosts, ...other] });
  },
  'expect': (rng, r) => {
    const other = r.headers.filter(([n]) => !/^expect$/i.test(n)).map(([n, v]) => `${n}: ${v}`);
    return serialize(r, { headerLines: [...other, `Expect: ${rng.pick(['100-continue', '100-Continue', 'foo', '', '100-continue, foo', '200-ok', '100-continuex'])}`] });
  },
  'big-head': (rng, r) => {
    const lines = r.headers.map(([n, v]) => `${n}: ${v}`);
    const kind = rng.int(0, 3);
    if (kind === 0) lines.push(`X-Big: ${'v'.repeat(rng.pick([2000, 12_000, 20_000, 40_000]))}`);
    else if (kind === 1) for (let i = rng.pick([50, 99, 101, 150, 300]); i > 0; i--) lines.push(`X-H${i}: ${i}`);
    else if (kind === 2) for (let i = 0; i < 30; i++) lines.push(`X-Medium-${i}: ${'m'.repeat(rng.pick([200, 700]))}`);
    else lines.push(`X-Big: ${'v'.repeat(6000)}`, `X-Big2: ${'w'.repeat(6000)}`);
    return serialize(r, { headerLines: lines });
  },
  'leading-crlf': (rng, r) => Buffer.concat([Buffer.from(rng.pick(['\r\n', '\r\n\r\n', '\n', '\r', ' '])), serialize(r)]),
  'upgrade': (rng, r) => serialize({ ...r, method: 'GET', framing: 'none', body: null, headers: r.headers.filter(([n]) => !/^(connection|upgrade|content-length|transfer-encoding)$/i.test(n)) }, { requestLine: `GET ${r.target} HTTP/${r.version}`, headerLines: [...r.headers.filter(([n]) => !/^(connection|upgrade|content-length|transfer-encoding|expect)$/i.test(n)).map(([n, v]) => `${n}: ${v}`), 'Connection: Upgrade', `Upgrade: ${rng.pick(['websocket', 'h2c', 'foo/2'])}`, 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13'] }),
  'random-bytes': (rng, r) => {
    const bytes = Buffer.from(serialize(r));
    for (let i = rng.int(1, 3); i > 0; i--) bytes[rng.int(0, Math.min(bytes.length - 1, 200))] = rng.int(0, 255);
    return bytes;
  },
};

/** The method a request's bytes name (what decides whether its response has a body). */
function methodOf(bytes: Buffer): string {
  return bytes.toString('latin1', 0, 64).replace(/^[\r\n]+/, '').split(' ')[0];
}

/** The request (head) closes the connection after its response: HTTP/1.0 without keep-alive, or Connection: close. */
function closesConnection(head: string): boolean {
  const h = head.slice(0, head.indexOf('\r\n\r\n'));
  const conn = /\r\nconnection:([^\r]*)/i.exec(h)?.[1].toLowerCase() ?? '';
  if (/\bclose\b/.test(conn)) return true;
  return / HTTP\/1\.0\r\n/.test(h.split('\r\n')[0] + '\r\n') && !/\bkeep-alive\b/.test(conn);
}

function firstRefusal(t: Talk, from: number): Verdict | null {
  for (let k = from; k < t.responses.length; k++) {
    const v = verdictOf(t.responses[k], t.closed);
    if (v.kind !== 'served') return v;
  }
  return t.closed ? { kind: 'closed' } : null;
}

function isUpgrade(head: string): boolean {
  const h = head.slice(0, Math.max(0, head.indexOf('\r\n\r\n')));
  return /\r\nupgrade:/i.test(h) && /\r\nconnection:[^\r]*upgrade/i.test(h);
}

function generate(count: number, seed: number): Case[] {
  const rng = new Rng(mulberry32(seed));
  const cases: Case[] = [];
  const kinds = Object.keys(MUTATIONS);
  while (cases.length < count) {
    const roll = rng.next();
    const r = validRequest(rng);
    if (roll < 0.35) {
      const bytes = serialize(r);
      cases.push({ kind: 'valid', bytes, methods: [methodOf(bytes)], parts: [bytes] });
    } else if (roll < 0.45) {
      const r2 = validRequest(rng);
      const parts = [serialize(r), serialize(r2)];
      cases.push({ kind: 'valid-pipelined', bytes: Buffer.concat(parts), methods: parts.map(methodOf), parts });
    } else if (roll < 0.5) {
      // A valid request, then a malformed one in the same write.
      const kind = rng.pick(kinds);
      const r2 = validRequest(rng);
      const parts = [serialize(r), MUTATIONS[kind](rng, r2)];
      cases.push({ kind: `pipelined+${kind}`, bytes: Buffer.concat(parts), methods: parts.map(methodOf), parts });
    } else {
      const kind = rng.pick(kinds);
      const bytes = MUTATIONS[kind](rng, r);
      cases.push({ kind, bytes, methods: [methodOf(bytes)], parts: [bytes] });
    }
  }
  return cases;
}

// ---- verdicts and their comparison

type Verdict = { kind: 'served'; echo: Echo } | { kind: 'refused'; status: number } | { kind: 'closed' } | { kind: 'none' };

function verdictOf(res: RawResponse | undefined, closed: boolean): Verdict {
  if (res === undefined) return closed ? { kind: 'closed' } : { kind: 'none' };
  if (res.status !== 200) return { kind: 'refused', status: res.status };
  const json = res.headers.get('x-echo')?.[0];
  const text = json !== undefined ? Buffer.from(json, 'base64').toString() : res.body.toString();
  try {
    return { kind: 'served', echo: JSON.parse(text) };
  } catch {
    return { kind: 'served', echo: { unparseable: res.head + '\r\n\r\n' + text } as unknown as Echo };
  }
}

function label(v: Verdict): string {
  return v.kind === 'refused' ? String(v.status) : v.kind;
}

/**
 * Where both refuse with different statuses: the layer names the problem more
 * precisely than node's clientError handler (always 400 here) or node closes.
 * layer status → node answers that count as the same verdict.
 */
const REFUSAL_MAPPING: Record<number, string[]> = {
  400: ['400', 'closed'],
  414: ['400'], // request line over maxUriBytes; node: head over 16 KiB (HPE_HEADER_OVERFLOW)
  431: ['400'], // head over 16 KiB or > 100 fields; node: HPE_HEADER_OVERFLOW
  505: ['400'], // HTTP/x.y other than 1.0/1.1 (and the h2 preface); node: HPE_INVALID_VERSION / HPE_PAUSED_H2_UPGRADE
  501: ['400', 'closed'], // unknown method, CONNECT (node closes: no 'connect' listener), Transfer-Encoding other than chunked
  417: ['417'], // Expect other than 100-continue
};

/**
 * Requests node serves and the layer refuses, on purpose (documented in
 * src/server/http1/README.md). Each is recognised from the request bytes.
 */
const DOCUMENTED: Array<{ name: string; layer: number; test: (head: string) => boolean }> = [
  { name: 'two Host fields (RFC 9112 §3.2: 400)', layer: 400, test: (h) => (h.match(/\r\nhost:/gi) ?? []).length >= 2 },
  { name: 'more than one SP between request-line parts', layer: 400, test: (h) => /^[^\r\n]*? {2}/.test(h) },
  { name: 'request target over 8 KiB (414), node only limits the head to 16 KiB', layer: 414, test: (h) => /^\S+ \S{8193,} /.test(h) },
  { name: 'more than 100 header fields (431), node keeps 2000 and drops the rest', layer: 431, test: (h) => h.slice(0, h.indexOf('\r\n\r\n')).split('\r\n').length - 1 > 100 },
  { name: 'HTTP/2.0 request line (505), node serves it as HTTP/1.1', layer: 505, test: (h) => /^\S+ \S+ HTTP\/2\.0\r\n/.test(h) },
  { name: 'HTTP/0.9 in the request line (505), node serves it as 0.9 with header fields', layer: 505, test: (h) => /^\S+ \S+ HTTP\/0\.9\r\n/.test(h) },
  { name: 'Expect listing 100-continue among others (417), node takes any list containing 100-continue', layer: 417, test: (h) => /\r\nexpect:[^\r]*100-continue[^\r]*,|\r\nexpect:[^\r]*,[^\r]*100-continue/i.test(h) },
  { name: 'Transfer-Encoding with a coding besides chunked (501)', layer: 501, test: (h) => /\r\ntransfer-encoding:[^\r]*,/i.test(h) },
  { name: 'empty chunk extension value (a=)', layer: 400, test: (h) => /\r\n\r\n[0-9a-fA-F]+;[^\r]*=\r\n/.test(h) },
  { name: 'request line without HTTP version (node: HTTP/0.9 with header fields)', layer: 400, test: (h) => /^[^ \r\n]+ [^ \r\n]+\r?\n/.test(h.replace(/^(\r?\n)+/, '')) },
  { name: 'request target "*" followed by more bytes', layer: 400, test: (h) => /^\S+ \*\S/.test(h) },
  { name: 'a lone CR before the request line', layer: 400, test: (h) => /^(\r?\n)*\r[^\n]/.test(h) },
];

function compare(c: Case, index: number, node: Verdict, layer: Verdict): string | null {
  // Returns the agreement class, or null for a mismatch.
  if (node.kind === 'served' && layer.kind === 'served') {
    return JSON.stringify(node.echo) === JSON.stringify(layer.echo) ? 'served, same echo' : null;
  }
  const nodeRefused = node.kind !== 'served' && node.kind !== 'none';
  if (layer.kind === 'refused' && nodeRefused) {
    if (label(node) === label(layer)) return `refused ${label(layer)} by both`;
    return REFUSAL_MAPPING[layer.status]?.includes(label(node)) ? `refused: layer ${label(layer)}, node ${label(node)} (mapped)` : null;
  }
  if (node.kind === 'none' && layer.kind === 'none') return 'both wait for more bytes';
  if (node.kind === 'served' && layer.kind === 'refused') {
    const head = c.parts[index].toString('latin1');
    const doc = DOCUMENTED.find((d) => d.layer === layer.status && d.test(head));
    if (doc) return `documented: node serves, layer ${layer.status}: ${doc.name}`;
  }
  return null;
}


// ---- the run

async function pool<T>(items: T[], width: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  }));
}

describe('http1 layer vs node:http (differential)', () => {
  let node: http.Server;
  let layer: Http1Server;
  beforeAll(async () => {
    node = await startNode();
    layer = await startHttp1();
  });
  afterAll(() => {
    node?.closeAllConnections();
    node?.close();
    layer?.destroyAll();
  });

  it(`agrees on ${CASES} seeded requests (seed ${SEED})`, async () => {
    const started = Date.now();
    const cases = generate(CASES, SEED);
    const nodePort = (node.address() as AddressInfo).port;
    const layerPort = (layer.net.address() as AddressInfo).port;
    const classes = new Map<string, number>();
    const kinds = new Map<string, number>();
    const mismatches: string[] = [];
    let requests = 0;
    await pool(cases, CONCURRENCY, async (c, n) => {
      const [a, b] = await Promise.all([
        talk(nodePort, c.bytes, { expect: c.methods.length, methods: c.methods, idleMs: 4000 }),
        talk(layerPort, c.bytes, { expect: c.methods.length, methods: c.methods, idleMs: 4000 }),
      ]);
      kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
      for (let i = 0; i < c.methods.length; i++) {
        const nv = verdictOf(a.responses[i], a.closed);
        const lv = verdictOf(b.responses[i], b.closed);
        // After a refusal both close: later requests of the case are not compared.
        if (i > 0 && nv.kind !== 'served' && lv.kind !== 'served') break;
        requests++;
        let cls = compare(c, i, nv, lv);
        if (cls === null && nv.kind !== 'served' && lv.kind === 'served') {
          const head = c.parts[i].toString('latin1');
          // The layer's first answer after this one that is not a served request.
          let next = firstRefusal(b, i + 1);
          if (next === null) {
            // Bytes after the last request the case meant (e.g. a body whose length field
            // was mutated away): ask the layer for one answer more.
            const again = await talk(layerPort, c.bytes, { expect: c.methods.length + 1, methods: c.methods, idleMs: 2000 });
            next = firstRefusal(again, i + 1) ?? verdictOf(undefined, again.closed);
          }
          if (closesConnection(head) && next.kind === 'closed') {
            // llhttp refuses any byte after a request that closes the connection
            // (HPE_CLOSED_CONNECTION → 400 before the first answer); the layer answers it and closes.
            cls = 'documented: bytes after a closing request: node 400 instead of the answer, layer answers then closes';
          } else {
            // node parses ahead: its refusal of what follows goes out before (and instead
            // of) the answer to this request. Compare it with the layer's next answer.
            const inner = compare(c, Math.min(i + 1, c.parts.length - 1), nv, next);
            if (inner !== null) cls = `node refuses what follows early; ${inner}`;
          }
        }
        if (cls === null && nv.kind !== lv.kind) {
          // llhttp stops at the head of an Upgrade request (Connection: upgrade) and hands
          // the rest of the stream over: no body framing checks, no body, no next request.
          const upgradeIndex = c.parts.findIndex((p, k) => k <= i && isUpgrade(p.toString('latin1')));
          if (upgradeIndex !== -1 && (upgradeIndex < i || /\r\n(content-length|transfer-encoding):/i.test(c.parts[i].toString('latin1')))) {
            cls = `documented: node stops parsing after an Upgrade head; layer ${label(lv)}`;
          }
        }
        if (cls === null) {
          mismatches.push(`#${n} ${c.kind} request ${i}: node ${label(nv)}, layer ${label(lv)}\n  bytes: ${JSON.stringify(c.bytes.toString('latin1').slice(0, 400))}${nv.kind === 'served' && lv.kind === 'served' ? `\n  node:  ${JSON.stringify(nv.echo).slice(0, 400)}\n  layer: ${JSON.stringify(lv.echo).slice(0, 400)}` : ''}`);
        } else classes.set(cls, (classes.get(cls) ?? 0) + 1);
        if (nv.kind !== 'served' || lv.kind !== 'served') break;
      }
    });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const summary = [...classes.entries()].sort((x, y) => y[1] - x[1]).map(([k, v]) => `  ${String(v).padStart(6)}  ${k}`).join('\n');
    const kindLine = [...kinds.entries()].sort().map(([k, v]) => `${k}=${v}`).join(' ');
    console.log(`http1 differential: ${cases.length} cases, ${requests} requests compared in ${seconds} s (seed ${SEED})\n${summary}\n  mismatches: ${mismatches.length}\n  cases by kind: ${kindLine}`);
    expect(mismatches.slice(0, 20).join('\n')).toBe('');
    expect(classes.get('served, same echo') ?? 0).toBeGreaterThan(CASES * 0.3);
  }, 120_000);
});
