// Issue 11's features in a whole front with real spawned backends: files before
// the app (--static, --try-files, X-Accel-Redirect / X-Sendfile), --compress, the
// access log, /healthz and /readyz (admin and public), --shutdown-delay.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl, header } from './edge-helpers.js';
import { FIXTURES, PY_HELLO, getStats, peer, request, startTestFront, tmpDir, waitUntil, type TestFront } from './helpers.js';

const CURL = peer('curl');
const ACCEL_APP = path.join(FIXTURES, 'accel-app.py');

describe.skipIf(!CURL)('files before the app, compression, access log, health', () => {
  let dir: string;
  let pub: string;
  let secret: string;
  let front: TestFront;
  let logFile: string;
  const big = crypto.randomBytes(2 * 1024 * 1024 + 3);

  beforeAll(async () => {
    dir = tmpDir('upfront-edge-');
    pub = path.join(dir, 'public');
    secret = path.join(dir, 'protected');
    fs.mkdirSync(path.join(pub, 'css'), { recursive: true });
    fs.mkdirSync(secret);
    fs.writeFileSync(path.join(pub, 'css', 'site.css'), 'body { margin: 0 }\n'.repeat(500));
    fs.writeFileSync(path.join(pub, 'robots.txt'), 'User-agent: *\n');
    fs.writeFileSync(path.join(secret, 'report.bin'), big);
    fs.writeFileSync(path.join(secret, 'notes.txt'), 'protected notes\n'.repeat(200));
    fs.writeFileSync(path.join(dir, 'outside.txt'), 'not for download\n');
    logFile = path.join(dir, 'access.log');
    front = await startTestFront({
      procs: 1, command: ['python3', ACCEL_APP],
      admin: '127.0.0.1:0',
      static: [`/assets=${pub}`], 'try-files': true, 'document-root': pub,
      'internal-location': [`/protected=${secret}`],
      compress: true, 'access-log': logFile, 'access-log-format': 'json', 'health-on-public': true,
    });
  });
  afterAll(async () => {
    await front?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--static and --try-files answer from disk; everything else reaches the app', async () => {
    const css = await curl([`${front.url}/assets/css/site.css`]);
    expect(css.status).toBe(200);
    expect(header(css, 'content-type')).toBe('text/css; charset=utf-8');
    expect(css.body.toString()).toBe('body { margin: 0 }\n'.repeat(500));
    expect((await curl([`${front.url}/robots.txt`])).body.toString()).toBe('User-agent: *\n');
    expect((await curl([`${front.url}/some/page`])).body.toString()).toBe('app saw /some/page\n');
    expect((await curl([`${front.url}/assets/missing.css`])).status).toBe(404);
  });

  it('X-Accel-Redirect: the app authorises, the front sends the file (ranges too), keeping the app\'s Content-Disposition and cookie', async () => {
    const r = await curl([`${front.url}/accel/report.bin`]);
    expect(r.status).toBe(200);
    expect(r.body.equals(big)).toBe(true);
    expect(header(r, 'content-disposition')).toBe('attachment; filename="f.bin"');
    expect(header(r, 'set-cookie')).toBe('seen=1');
    expect(header(r, 'x-accel-redirect')).toBeUndefined();
    expect(header(r, 'x-app-private')).toBeUndefined();
    const part = await curl(['-r', '100-199', `${front.url}/accel/report.bin`]);
    expect(part.status).toBe(206);
    expect(part.body.equals(big.subarray(100, 200))).toBe(true);
    expect((await curl([`${front.url}/accel/nope.bin`])).status).toBe(404);
    expect((await curl([`${front.url}/denied/report.bin`])).status).toBe(403);
    // The app's Content-Type is kept, as nginx keeps it.
    expect(header(await curl([`${front.url}/accel-raw?/protected/notes.txt`]), 'content-type')).toBe('application/x-custom');
    // The internal location is not reachable from outside.
    expect((await curl([`${front.url}/protected/report.bin`])).body.toString()).toBe('app saw /protected/report.bin\n');
  });

  it('X-Accel-Redirect and X-Sendfile cannot leave the internal locations', async () => {
    for (const uri of ['/protected/../outside.txt', '/protected/%2e%2e/outside.txt', '/elsewhere/x', '@named']) {
      const r = await curl([`${front.url}/accel-raw?${encodeURIComponent(uri)}`]);
      expect(r.status, uri).toBe(502);
      expect(r.body.toString()).not.toContain('not for download');
    }
    await front.log.waitFor((l) => /X-Accel-Redirect .* from backend b0: it matches no --internal-location/.test(l.msg), 'the refusal is logged with the backend');
    const ok = await curl([`${front.url}/sendfile?${encodeURIComponent(path.join(secret, 'notes.txt'))}`]);
    expect(ok.body.toString()).toBe('protected notes\n'.repeat(200));
    for (const p of [path.join(dir, 'outside.txt'), `${secret}/../outside.txt`, '/etc/passwd']) {
      expect((await curl([`${front.url}/sendfile?${encodeURIComponent(p)}`])).status, p).toBe(502);
    }
  });

  it('--compress: app responses and files, gzip or br as accepted; precompressed and ranges untouched; HEAD not compressed', async () => {
    const plain = await curl([`${front.url}/assets/css/site.css`]);
    const gz = await curl(['-H', 'Accept-Encoding: gzip', `${front.url}/assets/css/site.css`]);
    expect(header(gz, 'content-encoding')).toBe('gzip');
    expect(zlib.gunzipSync(gz.body).equals(plain.body)).toBe(true);
    expect(header(gz, 'etag')).toBe(`W/${header(plain, 'etag')}`);
    const notes = await curl(['-H', 'Accept-Encoding: br', `${front.url}/sendfile?${encodeURIComponent(path.join(secret, 'notes.txt'))}`]);
    expect(header(notes, 'content-encoding')).toBe('br');
    expect(zlib.brotliDecompressSync(notes.body).toString()).toBe('protected notes\n'.repeat(200));
    const range = await curl(['-H', 'Accept-Encoding: gzip', '-r', '0-9', `${front.url}/assets/css/site.css`]);
    expect(range.status).toBe(206);
    expect(header(range, 'content-encoding')).toBeUndefined();
    const head = await curl(['-I', '-H', 'Accept-Encoding: gzip', `${front.url}/assets/css/site.css`]);
    expect(header(head, 'content-encoding')).toBeUndefined();
    expect(header(head, 'content-length')).toBe(String(plain.body.length));
    // A binary file is never compressed.
    expect(header(await curl(['-H', 'Accept-Encoding: gzip', `${front.url}/accel/report.bin`]), 'content-encoding')).toBeUndefined();
  });

  it('/healthz and /readyz on the admin listener and (asked for) the public one', async () => {
    for (const base of [`http://${front.adminAddress}`, front.url]) {
      const alive = await request(`${base}/healthz`);
      expect(alive.status).toBe(200);
      expect(JSON.parse(alive.body.toString()).status).toBe('alive');
      const ready = await request(`${base}/readyz`);
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.body.toString())).toMatchObject({ ready: true, backends: { ready: 1, total: 1 } });
    }
  });

  it('the access log: one JSON line per response with status, bytes, times, backend and pid; files have no backend', async () => {
    await request(`${front.url}/log-me?x=1`, { headers: { 'User-Agent': 'edge-test', Referer: 'http://r/' } });
    await request(`${front.url}/robots.txt`);
    const zipped = await request(`${front.url}/log-me-gzip`, { headers: { 'Accept-Encoding': 'gzip' } });
    expect(zipped.headers['content-encoding']).toBeUndefined(); // too short to compress, but through the compressor's wrapper
    front.accessLog!.flush();
    await waitUntil(() => fs.readFileSync(logFile, 'utf8').includes('"uri":"/log-me-gzip"'), 'the lines reach the file');
    const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const app = lines.find((l) => l.uri === '/log-me?x=1');
    const stats = await getStats(front);
    expect(app).toMatchObject({ method: 'GET', status: 200, bytes_sent: 'app saw /log-me\n'.length, protocol: 'HTTP/1.1', user_agent: 'edge-test', referer: 'http://r/',
      backend: 'b0', pid: stats.pools[0].backends[0].pid });
    expect(app.upstream_time).toBeGreaterThanOrEqual(0);
    expect(app.queue_time).toBeGreaterThanOrEqual(0);
    expect(app.request_time).toBeGreaterThanOrEqual(app.upstream_time);
    expect(lines.find((l) => l.uri === '/log-me-gzip')).toMatchObject({ status: 200, backend: 'b0' });
    const file = lines.find((l) => l.uri === '/robots.txt');
    expect(file).toMatchObject({ status: 200, bytes_sent: 14, backend: null, pid: null, upstream_time: null });
    const gz = lines.find((l) => l.uri === '/assets/css/site.css' && l.status === 200 && l.bytes_sent < 9000);
    expect(gz).toBeDefined(); // compressed bytes are what is logged
  });
});

describe('graceful stop with --shutdown-delay', () => {
  it('/readyz answers 503 at once while the listener still serves, then the front drains and stops', async () => {
    const front = await startTestFront({ procs: 1, command: ['python3', PY_HELLO], admin: '127.0.0.1:0', 'health-on-public': true, 'shutdown-delay': '1500ms' });
    const agent = new http.Agent({ keepAlive: false });
    try {
      expect((await request(`${front.url}/readyz`, { agent })).status).toBe(200);
      const stopped = front.stop();
      const ready = await request(`${front.url}/readyz`, { agent });
      expect(ready.status).toBe(503);
      expect(JSON.parse(ready.body.toString()).status).toBe('stopping');
      expect((await request(`http://${front.adminAddress}/readyz`, { agent })).status).toBe(503);
      expect((await request(`${front.url}/healthz`, { agent })).status).toBe(200);
      // Still accepting new connections and serving the app during the delay.
      const hello = await request(`${front.url}/Hello/3`, { agent });
      expect(hello.status).toBe(200);
      await stopped;
      await expect(request(`${front.url}/Hello/3`, { agent })).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      agent.destroy();
      await front.stop();
    }
  });
});
