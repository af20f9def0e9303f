// Static files before the app, module level: StaticFiles on the HTTP/1.1 layer,
// with curl and raw sockets against real files (symlinks, a FIFO, a sparse file).
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientEvents, ClientExchange } from '../src/server/exchange.js';
import { Http1Server } from '../src/server/http1/server.js';
import { StaticFiles } from '../src/server/static/staticFiles.js';
import { decodeUrlPath, relativeFilePath } from '../src/server/static/safePath.js';
import { parseRange, noneMatch } from '../src/server/static/fileResponse.js';
import { contentTypeOf, isCompressibleType } from '../src/server/static/mimeTypes.js';
import { acceptedEncodings, ACCEPTS_BR, ACCEPTS_GZIP } from '../src/server/acceptEncoding.js';
import { curl, header } from './edge-helpers.js';
import { peer, sha256, tmpDir, waitUntil } from './helpers.js';

const CURL = peer('curl');
const log = pino({ level: 'silent' });

let dir: string;
let outside: string;
let server: Http1Server;
let base: string;
let port: number;
/** Bytes handed to the client per request target (for the backpressure test). */
const written = new Map<string, number>();

const BIG = 3 * 1024 * 1024 + 17;
const SPARSE = 256 * 1024 * 1024;

/** Counts what the file sender writes, passing everything through. */
function counting(ex: ClientExchange): ClientExchange {
  return new Proxy(ex, {
    get(target, prop) {
      if (prop === 'write') return (c: Buffer) => { written.set(ex.target, (written.get(ex.target) ?? 0) + c.length); return target.write(c); };
      if (prop === 'setClientEvents') return (e: ClientEvents) => target.setClientEvents(e);
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

beforeAll(async () => {
  dir = tmpDir('upfront-static-');
  outside = tmpDir('upfront-outside-');
  const pub = path.join(dir, 'public');
  fs.mkdirSync(path.join(pub, 'sub'), { recursive: true });
  fs.mkdirSync(path.join(pub, 'noindex'));
  fs.mkdirSync(path.join(pub, '.well-known'));
  fs.writeFileSync(path.join(pub, 'a.txt'), 'hello, static world\n'.repeat(10));
  fs.writeFileSync(path.join(pub, 'sub', 'index.html'), '<p>sub index</p>\n');
  fs.writeFileSync(path.join(pub, 'index.html'), '<p>root index</p>\n');
  fs.writeFileSync(path.join(pub, '.env'), 'SECRET=1\n');
  fs.writeFileSync(path.join(pub, '.well-known', 'security.txt'), 'Contact: x\n');
  fs.writeFileSync(path.join(pub, 'data.json'), '{"a":1}\n');
  fs.writeFileSync(path.join(pub, 'pic.svg'), '<svg/>\n');
  fs.writeFileSync(path.join(pub, 'noext'), 'x');
  fs.writeFileSync(path.join(pub, 'run.php'), '<?php echo 1;');
  fs.writeFileSync(path.join(pub, 'ünï code.txt'), 'unicode name\n');
  const css = Buffer.from('body { color: red; }\n'.repeat(200));
  fs.writeFileSync(path.join(pub, 'style.css'), css);
  fs.writeFileSync(path.join(pub, 'style.css.br'), zlib.brotliCompressSync(css));
  fs.writeFileSync(path.join(pub, 'style.css.gz'), zlib.gzipSync(css));
  fs.writeFileSync(path.join(pub, 'only-gz.js'), 'console.log(1);\n'.repeat(100));
  fs.writeFileSync(path.join(pub, 'only-gz.js.gz'), zlib.gzipSync(Buffer.from('console.log(1);\n'.repeat(100))));
  fs.writeFileSync(path.join(pub, 'big.bin'), crypto.randomBytes(BIG));
  const sparse = fs.openSync(path.join(pub, 'sparse.bin'), 'w');
  fs.ftruncateSync(sparse, SPARSE);
  fs.closeSync(sparse);
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'outside secret\n');
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(pub, 'link-out.txt'));
  fs.symlinkSync(outside, path.join(pub, 'dir-out'));
  fs.symlinkSync('a.txt', path.join(pub, 'link-in.txt'));
  // A sibling that is a symlink out must not be served as the precompressed variant.
  fs.writeFileSync(path.join(pub, 'lure.css'), 'a{}\n');
  fs.writeFileSync(path.join(outside, 'lure.css.gz'), zlib.gzipSync(Buffer.from('stolen')));
  fs.symlinkSync(path.join(outside, 'lure.css.gz'), path.join(pub, 'lure.css.gz'));
  execFileSync('mkfifo', [path.join(pub, 'fifo')]);

  const files = new StaticFiles({ mounts: [{ prefix: '/static/', dir: pub }, { prefix: '/static/deep/', dir: path.join(pub, 'sub') }], tryFilesRoot: pub, scriptExtensions: ['.php'] }, log);
  server = new Http1Server({}, {
    onRequest: (ex) => {
      const e = counting(ex);
      if (!files.handle(e, (x) => x.respond(200, null, ['Content-Type', 'text/plain', 'X-From', 'app'], `app: ${x.method} ${x.target}\n`))) {
        e.respond(200, null, ['Content-Type', 'text/plain', 'X-From', 'app'], `app: ${e.method} ${e.target}\n`);
      }
    },
  });
  await new Promise<void>((r) => server.net.listen(0, '127.0.0.1', r));
  port = (server.net.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

afterAll(() => {
  server?.destroyAll();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(outside, { recursive: true, force: true });
});

describe('static files: pure parts', () => {
  it('decodes paths once and refuses every way out', () => {
    expect(decodeUrlPath('/a%20b')).toBe('/a b');
    expect(decodeUrlPath('/%C3%BC')).toBe('/ü');
    expect(decodeUrlPath('/%zz')).toBeNull();
    expect(decodeUrlPath('/%C3')).toBeNull(); // not UTF-8
    expect(relativeFilePath('/a/./b//c', 1)).toEqual({ ok: true, rel: 'a/b/c', dir: false });
    expect(relativeFilePath('/x/', 1)).toEqual({ ok: true, rel: 'x', dir: true });
    for (const p of ['/../etc/passwd', '/a/..', '/%2e%2e/x', '/a%2f..%2f..%2fx', '/.%2e/x']) expect(relativeFilePath(p, 1)).toMatchObject({ ok: false, status: 403 });
    expect(relativeFilePath('/a%00b', 1)).toMatchObject({ ok: false, status: 400 });
    expect(relativeFilePath('/.git/config', 1)).toMatchObject({ ok: false, status: 404 });
    expect(relativeFilePath('/.well-known/x', 1)).toMatchObject({ ok: true, rel: '.well-known/x' });
  });

  it('ranges, validators, encodings and types', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ kind: 'range', start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ kind: 'range', start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ kind: 'range', start: 90, end: 99 });
    expect(parseRange('bytes=50-1000', 100)).toEqual({ kind: 'range', start: 50, end: 99 });
    expect(parseRange('bytes=100-', 100)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=0-1,5-6', 100)).toEqual({ kind: 'none' });
    expect(parseRange('items=0-1', 100)).toEqual({ kind: 'none' });
    expect(parseRange('bytes=5-1', 100)).toEqual({ kind: 'none' });
    expect(noneMatch('"a", W/"b"', '"b"')).toBe(true);
    expect(noneMatch('*', '"x"')).toBe(true);
    expect(noneMatch('"a"', '"b"')).toBe(false);
    expect(acceptedEncodings('gzip, deflate, br')).toBe(ACCEPTS_BR | ACCEPTS_GZIP);
    expect(acceptedEncodings('br;q=0, gzip;q=0.5')).toBe(ACCEPTS_GZIP);
    expect(acceptedEncodings('*;q=0.1, gzip;q=0')).toBe(ACCEPTS_BR);
    expect(acceptedEncodings('identity')).toBe(0);
    expect(contentTypeOf('/x/index.html')).toBe('text/html; charset=utf-8');
    expect(contentTypeOf('/x/a.css')).toBe('text/css; charset=utf-8');
    expect(contentTypeOf('/x/a.svg')).toBe('image/svg+xml');
    expect(contentTypeOf('/x/a.PNG')).toBe('image/png');
    expect(contentTypeOf('/x/noext')).toBe('application/octet-stream');
    expect(contentTypeOf('/x/.bashrc')).toBe('application/octet-stream');
    expect(isCompressibleType('application/json; charset=utf-8')).toBe(true);
    expect(isCompressibleType('image/png')).toBe(false);
  });
});

describe.skipIf(!CURL)('static files with curl', () => {
  it('serves a file with its type, length, ETag and Last-Modified; HEAD gets the head only', async () => {
    const r = await curl([`${base}/static/a.txt`]);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('hello, static world\n'.repeat(10));
    expect(header(r, 'content-type')).toBe('text/plain; charset=utf-8');
    expect(header(r, 'content-length')).toBe('200');
    expect(header(r, 'etag')).toMatch(/^"[0-9a-f]+-c8"$/);
    expect(new Date(header(r, 'last-modified')!).getTime()).toBe(Math.floor(fs.statSync(path.join(dir, 'public/a.txt')).mtimeMs / 1000) * 1000);
    expect(header(r, 'accept-ranges')).toBe('bytes');
    const h = await curl(['-I', `${base}/static/a.txt`]);
    expect(h.status).toBe(200);
    expect(header(h, 'content-length')).toBe('200');
    expect(h.body.toString()).not.toContain('hello');
    for (const [p, type] of [['data.json', 'application/json; charset=utf-8'], ['pic.svg', 'image/svg+xml'], ['noext', 'application/octet-stream']]) {
      expect(header(await curl(['-I', `${base}/static/${p}`]), 'content-type')).toBe(type);
    }
  });

  it('304 for a matching If-None-Match or a not-newer If-Modified-Since; 200 otherwise', async () => {
    const first = await curl([`${base}/static/a.txt`]);
    const etag = header(first, 'etag')!;
    const lm = header(first, 'last-modified')!;
    const inm = await curl(['-H', `If-None-Match: "nope", ${etag}`, `${base}/static/a.txt`]);
    expect(inm.status).toBe(304);
    expect(inm.body.length).toBe(0);
    expect(header(inm, 'etag')).toBe(etag);
    expect((await curl(['-H', `If-Modified-Since: ${lm}`, `${base}/static/a.txt`])).status).toBe(304);
    expect((await curl(['-H', 'If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT', `${base}/static/a.txt`])).status).toBe(200);
    // If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    expect((await curl(['-H', 'If-None-Match: "other"', '-H', `If-Modified-Since: ${lm}`, `${base}/static/a.txt`])).status).toBe(200);
  });

  it('one range: 206 with Content-Range and exactly those bytes; 416 beyond the end; If-Range that no longer matches → whole file', async () => {
    const whole = fs.readFileSync(path.join(dir, 'public/big.bin'));
    const r = await curl(['-r', '1000-1999', `${base}/static/big.bin`]);
    expect(r.status).toBe(206);
    expect(header(r, 'content-range')).toBe(`bytes 1000-1999/${BIG}`);
    expect(r.body.equals(whole.subarray(1000, 2000))).toBe(true);
    const tail = await curl(['-H', 'Range: bytes=-100', `${base}/static/big.bin`]);
    expect(tail.body.equals(whole.subarray(BIG - 100))).toBe(true);
    const from = await curl(['-H', `Range: bytes=${BIG - 10}-`, `${base}/static/big.bin`]);
    expect(from.body.equals(whole.subarray(BIG - 10))).toBe(true);
    const beyond = await curl(['-H', `Range: bytes=${BIG}-`, `${base}/static/big.bin`]);
    expect(beyond.status).toBe(416);
    expect(header(beyond, 'content-range')).toBe(`bytes */${BIG}`);
    const stale = await curl(['-H', 'Range: bytes=0-9', '-H', 'If-Range: "stale"', `${base}/static/big.bin`]);
    expect(stale.status).toBe(200);
    expect(stale.body.length).toBe(BIG);
    const etag = header(r, 'etag')!;
    expect((await curl(['-H', 'Range: bytes=0-9', '-H', `If-Range: ${etag}`, `${base}/static/big.bin`])).status).toBe(206);
  });

  it('a 3 MiB file arrives byte-exact', async () => {
    const r = await curl([`${base}/static/big.bin`]);
    expect(r.body.length).toBe(BIG);
    expect(sha256(r.body)).toBe(sha256(fs.readFileSync(path.join(dir, 'public/big.bin'))));
  });

  it('directories: a redirect to the slash, then index.html; no listing; the mount itself redirects', async () => {
    const noSlash = await curl([`${base}/static/sub?x=1`]);
    expect(noSlash.status).toBe(301);
    expect(header(noSlash, 'location')).toBe('/static/sub/?x=1');
    const index = await curl([`${base}/static/sub/`]);
    expect(index.status).toBe(200);
    expect(index.body.toString()).toBe('<p>sub index</p>\n');
    expect(header(index, 'content-type')).toBe('text/html; charset=utf-8');
    expect((await curl([`${base}/static/noindex/`])).status).toBe(404);
    expect(header(await curl([`${base}/static`]), 'location')).toBe('/static/');
    expect((await curl([`${base}/static/`])).body.toString()).toBe('<p>root index</p>\n');
    // The longest prefix wins: /static/deep/ is another mount.
    expect((await curl([`${base}/static/deep/`])).body.toString()).toBe('<p>sub index</p>\n');
    expect((await curl([`${base}/static/a.txt/`])).status).toBe(404);
  });

  it('no way out: .. (plain and encoded), hidden files, symlinks out (a file, a directory, a precompressed sibling), NUL, a FIFO', async () => {
    const statusOf = async (p: string) => (await curl(['--path-as-is', `${base}${p}`])).status;
    expect(await statusOf('/static/../static/a.txt')).toBe(403);
    expect(await statusOf('/static/%2e%2e/x')).toBe(403);
    expect(await statusOf('/static/sub/..%2f..%2fpublic/a.txt')).toBe(403);
    expect(await statusOf('/static/.env')).toBe(404);
    expect(await statusOf('/static/.well-known/security.txt')).toBe(200);
    expect(await statusOf('/static/link-out.txt')).toBe(404);
    expect(await statusOf('/static/dir-out/secret.txt')).toBe(404);
    expect(await statusOf('/static/link-in.txt')).toBe(200);
    expect(await statusOf('/static/a.txt%00.png')).toBe(400);
    expect(await statusOf('/static/%zz')).toBe(400);
    expect(await statusOf('/static/fifo')).toBe(404);
    const lure = await curl(['-H', 'Accept-Encoding: gzip', `${base}/static/lure.css`]);
    expect(lure.body.toString()).toBe('a{}\n');
    expect(header(lure, 'content-encoding')).toBeUndefined();
    const uni = await curl([`${base}/static/%C3%BCn%C3%AF%20code.txt`]);
    expect(uni.body.toString()).toBe('unicode name\n');
  });

  it('precompressed siblings: .br, then .gz, as the client accepts; identity otherwise; Vary always on text', async () => {
    const css = fs.readFileSync(path.join(dir, 'public/style.css'));
    const br = await curl(['-H', 'Accept-Encoding: gzip, br', `${base}/static/style.css`]);
    expect(header(br, 'content-encoding')).toBe('br');
    expect(br.body.equals(fs.readFileSync(path.join(dir, 'public/style.css.br')))).toBe(true);
    expect(header(br, 'content-type')).toBe('text/css; charset=utf-8');
    expect(header(br, 'vary')).toBe('Accept-Encoding');
    const gz = await curl(['-H', 'Accept-Encoding: gzip', `${base}/static/style.css`]);
    expect(header(gz, 'content-encoding')).toBe('gzip');
    expect(zlib.gunzipSync(gz.body).equals(css)).toBe(true);
    const plain = await curl([`${base}/static/style.css`]);
    expect(header(plain, 'content-encoding')).toBeUndefined();
    expect(plain.body.equals(css)).toBe(true);
    expect(header(plain, 'vary')).toBe('Accept-Encoding');
    // curl --compressed decodes what it gets: the original bytes either way.
    expect((await curl(['--compressed', `${base}/static/style.css`])).body.equals(css)).toBe(true);
    const onlyGz = await curl(['-H', 'Accept-Encoding: br, gzip', `${base}/static/only-gz.js`]);
    expect(header(onlyGz, 'content-encoding')).toBe('gzip');
    const refused = await curl(['-H', 'Accept-Encoding: br;q=0, gzip;q=0', `${base}/static/style.css`]);
    expect(header(refused, 'content-encoding')).toBeUndefined();
  });

  it('only GET and HEAD on a mount (405 with Allow)', async () => {
    const r = await curl(['-X', 'POST', '--data', 'x', `${base}/static/a.txt`]);
    expect(r.status).toBe(405);
    expect(header(r, 'allow')).toBe('GET, HEAD');
  });

  it('try-files: an existing file is sent, anything else goes to the app (missing, directories, scripts, hidden, other methods)', async () => {
    const file = await curl([`${base}/a.txt?v=2`]);
    expect(file.body.toString()).toBe('hello, static world\n'.repeat(10));
    expect(header(file, 'x-from')).toBeUndefined();
    for (const [p, method] of [['/nope', 'GET'], ['/sub/', 'GET'], ['/sub', 'GET'], ['/', 'GET'], ['/run.php', 'GET'], ['/.env', 'GET'], ['/a.txt', 'POST'], ['/link-out.txt', 'GET'], ['/fifo', 'GET']]) {
      const r = await curl(['-X', method, `${base}${p}`]);
      expect(header(r, 'x-from'), `${method} ${p}`).toBe('app');
      expect(r.body.toString()).toBe(`app: ${method} ${p}\n`);
    }
  });

  it('streams with backpressure: a client that does not read holds the sender at the socket buffers, then gets every byte', async () => {
    const target = '/static/sparse.bin';
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.pause();
    sock.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
    // Wait until the sender stops (three equal readings 100 ms apart): it waits for drain.
    let last = -1;
    let same = 0;
    await waitUntil(() => {
      const now = written.get(target) ?? 0;
      same = now > 0 && now === last ? same + 1 : 0;
      last = now;
      return same >= 3;
    }, 'the file sender stops writing to a client that does not read', 15_000);
    expect(last).toBeGreaterThan(0);
    expect(last).toBeLessThan(SPARSE / 4);
    // Now read it all: every byte of the 256 MiB arrives.
    const hash = crypto.createHash('sha256');
    let received = 0;
    let headDone = false;
    let pending = Buffer.alloc(0);
    await new Promise<void>((resolve, reject) => {
      sock.on('data', (c: Buffer) => {
        if (!headDone) {
          pending = Buffer.concat([pending, c]);
          const end = pending.indexOf('\r\n\r\n');
          if (end < 0) return;
          headDone = true;
          c = pending.subarray(end + 4);
        }
        hash.update(c);
        received += c.length;
        if (received >= SPARSE) resolve();
      });
      sock.on('error', reject);
      sock.resume();
    });
    sock.destroy();
    expect(received).toBe(SPARSE);
    expect(hash.digest('hex')).toBe(crypto.createHash('sha256').update(Buffer.alloc(SPARSE)).digest('hex'));
  });
});
