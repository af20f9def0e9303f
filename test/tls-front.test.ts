// TLS and HTTP/2 in a whole front: curl --http1.1 and --http2 against a certificate
// made with openssl, the FastCGI Python example's /sha256 and /bytes/N byte-exact
// both ways, CGI params and X-Forwarded-Proto saying https, the certificate swapped
// on reload without dropping a connection, the redirect listener, and the CLI
// (SIGHUP re-reads the certificate).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl, header, makeCertificate } from './edge-helpers.js';
import { spawnSync } from 'node:child_process';
import { PY_HELLO, ROOT, getStats, peer, spawnCli, startTestFront, tmpDir, waitUntil, type TestFront } from './helpers.js';

const CURL = peer('curl');
const OPENSSL = peer('openssl');

const fingerprintOf = (port: number) => new Promise<string>((resolve, reject) => {
  const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => { resolve(s.getPeerX509Certificate()!.fingerprint256); s.end(); });
  s.on('error', reject);
});

describe.skipIf(!CURL || !OPENSSL)('TLS front, FastCGI backends', () => {
  let dir: string;
  let certs: { cert: string; key: string };
  let front: TestFront;
  let port: number;
  let https: string;

  beforeAll(async () => {
    dir = tmpDir('upfront-tlsfront-');
    certs = makeCertificate(dir);
    front = await startTestFront({ procs: 2, command: ['python3', PY_HELLO], 'tls-cert': certs.cert, 'tls-key': certs.key, 'redirect-http': '127.0.0.1:0',
      'access-log': path.join(dir, 'access.log'), 'access-log-format': 'json' });
    port = Number(front.address.split(':').pop());
    https = `https://localhost:${port}`;
  });
  afterAll(async () => {
    await front?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('/bytes/N down and /sha256 up, byte-exact, over HTTP/1.1 and HTTP/2 (uploads with and without a length)', async () => {
    const up = crypto.randomBytes(2 * 1024 * 1024 + 11);
    const file = path.join(dir, 'up.bin');
    fs.writeFileSync(file, up);
    const want = crypto.createHash('sha256').update(up).digest('hex');
    for (const v of ['--http1.1', '--http2']) {
      const down = await curl([v, '--cacert', certs.cert, `${https}/bytes/3000001`]);
      expect(down.code, down.stderr).toBe(0);
      expect(down.httpVersion).toBe(v === '--http2' ? '2' : '1.1');
      expect(down.body.length).toBe(3000001);
      expect(crypto.createHash('sha256').update(down.body).digest('hex')).toBe(header(down, 'x-sha256'));
      const sized = JSON.parse((await curl([v, '--cacert', certs.cert, '--data-binary', `@${file}`, `${https}/sha256`])).body.toString());
      expect(sized).toEqual({ bytes: up.length, sha256: want });
      // No length: chunked on HTTP/1.1, DATA frames without content-length on HTTP/2; spooled for CGI's CONTENT_LENGTH.
      const streamed = JSON.parse((await curl([v, '--cacert', certs.cert, '-T', '-', '-X', 'POST', `${https}/sha256`], { input: up })).body.toString());
      expect(streamed).toEqual({ bytes: up.length, sha256: want });
    }
  });

  it('CGI params say https on both protocols: REQUEST_SCHEME, HTTPS, HTTP_HOST from :authority, SERVER_PROTOCOL HTTP/1.1', async () => {
    for (const v of ['--http1.1', '--http2']) {
      const env = JSON.parse((await curl([v, '--cacert', certs.cert, `${https}/env?a=b`])).body.toString());
      expect(env).toMatchObject({ REQUEST_SCHEME: 'https', HTTPS: 'on', HTTP_HOST: `localhost:${port}`, SERVER_NAME: 'localhost', SERVER_PORT: String(port),
        SERVER_PROTOCOL: 'HTTP/1.1', QUERY_STRING: 'a=b', REQUEST_METHOD: 'GET', REQUEST_URI: '/env?a=b' });
    }
    // The access log tells the protocols apart.
    front.accessLog!.flush();
    await waitUntil(() => fs.readFileSync(path.join(dir, 'access.log'), 'utf8').split('\n').filter((l) => l.includes('"uri":"/env?a=b"')).length === 2, 'both lines are written');
    const lines = fs.readFileSync(path.join(dir, 'access.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.uri === '/env?a=b');
    expect(lines.map((l) => l.protocol)).toEqual(['HTTP/1.1', 'HTTP/2.0']);
    expect(lines.every((l) => l.status === 200 && /^b[01]$/.test(l.backend))).toBe(true);
  });

  it('node:http2: 16 concurrent requests on one session reach both backends', async () => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: fs.readFileSync(certs.cert), servername: 'localhost' });
    try {
      const before = (await getStats(front)).pools[0].backends.map((b: { requests: number }) => b.requests);
      const statuses = await Promise.all(Array.from({ length: 16 }, () => new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/sleep/50' });
        let status = 0;
        req.resume();
        req.on('response', (h) => { status = Number(h[':status']); });
        req.on('end', () => resolve(status));
        req.on('error', reject);
        req.end();
      })));
      expect(statuses).toEqual(Array(16).fill(200));
      const after = (await getStats(front)).pools[0].backends.map((b: { requests: number }) => b.requests);
      expect(after.map((n: number, i: number) => n - before[i]).every((d: number) => d > 0)).toBe(true);
    } finally {
      session.close();
    }
    expect(front.server.h2!.acceptedSessions).toBeGreaterThanOrEqual(1);
  });

  it('reload re-reads the certificate: new handshakes get it, an open HTTP/2 session goes on', async () => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    const status = (p: string) => new Promise<number>((resolve, reject) => {
      const req = session.request({ ':path': p });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.resume();
      req.on('error', reject);
      req.end();
    });
    expect(await status('/Hello/1')).toBe(200);
    const before = await fingerprintOf(port);
    const next = makeCertificate(dir, 'next');
    fs.copyFileSync(next.cert, certs.cert);
    fs.copyFileSync(next.key, certs.key);
    const result = await front.reload('test');
    expect(result.failed).toBe(0);
    const after = await fingerprintOf(port);
    expect(after).not.toBe(before);
    expect(after).toBe(new crypto.X509Certificate(fs.readFileSync(next.cert)).fingerprint256);
    expect(await status('/Hello/2')).toBe(200);
    session.close();
    await front.log.waitFor((l) => /TLS certificate reloaded: new certificate/.test(l.msg), 'the reload is logged');
  });

  it('--redirect-http: plain requests are sent to https on the TLS port', async () => {
    const redirectAt = (/redirecting http:\/\/(\S+) to https/.exec(front.log.lines.map((l) => l.msg).join('\n')) ?? [])[1];
    expect(redirectAt).toBeDefined();
    const r = await curl(['-H', 'Host: localhost', `http://${redirectAt}/Hello/5?x=1`]);
    expect(r.status).toBe(301);
    expect(header(r, 'location')).toBe(`https://localhost:${port}/Hello/5?x=1`);
    const followed = await curl(['-L', '--cacert', certs.cert, '-H', 'Host: localhost', `http://${redirectAt}/Hello/2`]);
    expect(followed.status).toBe(200);
  });
});

describe.skipIf(!CURL || !OPENSSL)('TLS front, HTTP backend', () => {
  it('X-Forwarded-Proto https over HTTP/1.1 and HTTP/2; uploads byte-exact', async () => {
    const dir = tmpDir('upfront-tlshttp-');
    const certs = makeCertificate(dir);
    const front = await startTestFront({ procs: 1, protocol: 'http', command: ['node', path.join(ROOT, 'examples/node/http-app.mjs')], 'tls-cert': certs.cert, 'tls-key': certs.key });
    try {
      const port = Number(front.address.split(':').pop());
      const up = crypto.randomBytes(1024 * 1024 + 1);
      for (const v of ['--http1.1', '--http2']) {
        const h = JSON.parse((await curl([v, '--cacert', certs.cert, `https://localhost:${port}/headers`])).body.toString());
        expect(h['x-forwarded-proto']).toBe('https');
        expect(h['x-forwarded-host']).toBe(`localhost:${port}`);
        const sum = JSON.parse((await curl([v, '--cacert', certs.cert, '-T', '-', '-X', 'POST', `https://localhost:${port}/sha256`], { input: up })).body.toString());
        expect(sum).toEqual({ bytes: up.length, sha256: crypto.createHash('sha256').update(up).digest('hex') });
      }
    } finally {
      await front.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!CURL || !OPENSSL)('TLS from the CLI', () => {
  it('a bad certificate is a config error (exit 2) naming the file; SIGHUP re-reads a good one', async () => {
    const dir = tmpDir('upfront-tlscli-');
    try {
      const certs = makeCertificate(dir);
      const bad = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'run', '--listen', '127.0.0.1:0', '--admin', 'off', '--tls-cert', certs.cert, '--tls-key', path.join(dir, 'nope.key'), '--', 'python3', PY_HELLO], { encoding: 'utf8', timeout: 20_000 });
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/tls-key: cannot read .*nope\.key: no such file \(ENOENT\)/);
      const half = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'run', '--tls-cert', certs.cert, '--', 'python3', PY_HELLO], { encoding: 'utf8', timeout: 20_000 });
      expect(half.status).toBe(2);
      expect(half.stderr).toMatch(/tls-key: TLS needs both --tls-cert and --tls-key/);
      const cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', 'off', '--tls-cert', certs.cert, '--tls-key', certs.key, '--', 'python3', PY_HELLO]);
      try {
        expect(cli.base).toMatch(/^https:\/\//);
        const port = Number(cli.base.split(':').pop());
        const before = await fingerprintOf(port);
        const next = makeCertificate(dir, 'next');
        fs.copyFileSync(next.cert, certs.cert);
        fs.copyFileSync(next.key, certs.key);
        cli.proc.kill('SIGHUP');
        await waitUntil(async () => (await fingerprintOf(port)) !== before, 'SIGHUP puts the new certificate in use');
        expect((await curl(['--cacert', next.cert, `https://localhost:${port}/Hello/1`])).status).toBe(200);
      } finally {
        await cli.stop();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
