// The access log at module level: lines as nginx writes them (combined) and as JSON,
// batched writes to a real file, reopened after a logrotate-style rename, the rest
// written at close; LoggedExchange on the HTTP/1.1 layer with real requests.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessLog, escapeCombined, formatAccessLine, LoggedExchange } from '../src/server/accessLog.js';
import { Http1Server } from '../src/server/http1/server.js';
import { tmpDir, waitUntil } from './helpers.js';

const log = pino({ level: 'silent' });
let dir: string;
beforeAll(() => { dir = tmpDir('upfront-accesslog-'); });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const record = {
  remoteAddr: '127.0.0.1', method: 'GET', target: '/a?b=1', protocol: 'HTTP/1.1', status: 200, bytes: 1234,
  referer: 'http://x/"q"', userAgent: 'curl/8', host: 'x', requestTime: 0.0123, upstreamTime: 0.01, queueTime: 0.001, backend: 'b0', pid: 42,
};

describe('access log lines', () => {
  it('combined: nginx\'s fields and escaping, then rt/ut/qt/backend/pid', () => {
    const line = formatAccessLine('combined', record, Date.UTC(2026, 11, 1, 15, 6, 1));
    expect(line).toMatch(/^127\.0\.0\.1 - - \[\d\d\/Dec\/2026:\d\d:\d\d:\d\d [+-]\d{4}\] "GET \/a\?b=1 HTTP\/1\.1" 200 1234 "http:\/\/x\/\\x22q\\x22" "curl\/8" rt=0\.012 ut=0\.010 qt=0\.001 backend=b0 pid=42\n$/);
    expect(formatAccessLine('combined', { ...record, referer: undefined, userAgent: undefined, upstreamTime: null, queueTime: null, backend: null, pid: null }, Date.now()))
      .toMatch(/ "-" "-" rt=0\.012 ut=- qt=- backend=- pid=-\n$/);
    expect(escapeCombined('a\x01b\xffc\\')).toBe('a\\x01b\\xFFc\\x5C');
  });

  it('json: one object per line with the same fields', () => {
    const line = formatAccessLine('json', record, Date.now());
    expect(line.endsWith('}\n')).toBe(true);
    const o = JSON.parse(line);
    expect(o).toMatchObject({ remote_addr: '127.0.0.1', method: 'GET', uri: '/a?b=1', protocol: 'HTTP/1.1', status: 200, bytes_sent: 1234,
      request_time: 0.012, upstream_time: 0.01, queue_time: 0.001, backend: 'b0', pid: 42, referer: 'http://x/"q"', user_agent: 'curl/8', host: 'x' });
    expect(o.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/);
  });
});

describe('access log file', () => {
  it('batches lines, reopens after a rename (logrotate), writes the rest at close', async () => {
    const file = path.join(dir, 'access.log');
    const a = new AccessLog(file, 'combined', log);
    for (let i = 0; i < 10; i++) a.add(`line ${i}\n`);
    expect(fs.readFileSync(file, 'utf8')).toBe(''); // nothing written per line
    a.flush();
    await waitUntil(() => a.written === 10, 'the first batch is written');
    fs.renameSync(file, `${file}.1`);
    a.add('after rename, before reopen\n');
    a.flush();
    await waitUntil(() => a.written === 11, 'the line before reopen is written');
    a.reopen();
    a.add('into the new file\n');
    a.close();
    expect(fs.readFileSync(`${file}.1`, 'utf8')).toBe([...Array.from({ length: 10 }, (_, i) => `line ${i}\n`), 'after rename, before reopen\n'].join(''));
    expect(fs.readFileSync(file, 'utf8')).toBe('into the new file\n');
    expect(a.dropped).toBe(0);
  });

  it('a file it cannot open is a clear error', () => {
    expect(() => new AccessLog(path.join(dir, 'no/such/dir/access.log'), 'json', log)).toThrow(/access-log: cannot open .*\(does its directory exist\?\)/);
  });
});

describe('LoggedExchange on the HTTP/1.1 layer', () => {
  it('logs status and body bytes of whole, streamed and HEAD responses, and 499 for a client that left', async () => {
    const file = path.join(dir, 'ex.log');
    const a = new AccessLog(file, 'json', log);
    const server = new Http1Server({}, {
      onRequest: (raw) => {
        const ex = new LoggedExchange(raw, a);
        if (ex.target === '/whole') return ex.respond(201, null, ['Content-Type', 'text/plain'], 'created!');
        if (ex.target === '/hang') return ex.setClientEvents({ onClientDrain() {}, onClientClose() {} });
        ex.writeHead(200, null, [], -1);
        ex.write(Buffer.alloc(1000));
        ex.write(Buffer.alloc(24));
        ex.end();
      },
    });
    await new Promise<void>((r) => server.net.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.net.address() as AddressInfo).port}`;
    const get = (p: string, method = 'GET') => new Promise<void>((resolve, reject) => {
      const req = http.request(`${base}${p}`, { method, agent: false, headers: { 'User-Agent': 'ua-test', Referer: 'http://ref/' } }, (res) => { res.resume(); res.on('end', resolve); });
      req.on('error', reject);
      req.end();
    });
    await get('/whole');
    await get('/stream');
    await get('/stream', 'HEAD');
    const hang = http.get(`${base}/hang`, { agent: false });
    hang.on('error', () => {});
    await waitUntil(() => server.activeExchanges === 1, 'the hanging request arrives');
    hang.destroy();
    await waitUntil(() => server.activeExchanges === 0, 'the client left');
    a.close();
    server.destroyAll();
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.method, l.uri, l.status, l.bytes_sent])).toEqual([
      ['GET', '/whole', 201, 8], ['GET', '/stream', 200, 1024], ['HEAD', '/stream', 200, 0], ['GET', '/hang', 499, 0],
    ]);
    expect(lines[0]).toMatchObject({ user_agent: 'ua-test', referer: 'http://ref/', backend: null, upstream_time: null, protocol: 'HTTP/1.1' });
    expect(lines[0].request_time).toBeGreaterThanOrEqual(0);
  });
});

describe('access log from the CLI', () => {
  it('combined lines to a file, reopened on SIGUSR1 after logrotate renames it; stdout works too', async () => {
    const { spawnCli, PY_HELLO, request } = await import('./helpers.js');
    const file = path.join(dir, 'cli-access.log');
    const cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', 'off', '--access-log', file, '--', 'python3', PY_HELLO]);
    try {
      await request(`${cli.base}/Hello/1`, { headers: { 'User-Agent': 'before-rotate' } });
      await waitUntil(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes('before-rotate'), 'the line is flushed (1 s)', 5000);
      fs.renameSync(file, `${file}.1`);
      cli.proc.kill('SIGUSR1');
      await waitUntil(() => fs.existsSync(file), 'SIGUSR1 reopens the file by its name', 5000);
      await request(`${cli.base}/Hello/2`, { headers: { 'User-Agent': 'after-rotate' } });
      await waitUntil(() => fs.readFileSync(file, 'utf8').includes('after-rotate'), 'the next line goes to the new file', 5000);
      const old = fs.readFileSync(`${file}.1`, 'utf8');
      expect(old).toMatch(/^127\.0\.0\.1 - - \[[^\]]+\] "GET \/Hello\/1 HTTP\/1\.1" 200 \d+ "-" "before-rotate" rt=\d+\.\d{3} ut=\d+\.\d{3} qt=\d+\.\d{3} backend=b0 pid=\d+\n$/);
      expect(old).not.toContain('after-rotate');
    } finally {
      await cli.stop();
    }
    const out = await spawnCli(['--listen', '127.0.0.1:0', '--admin', 'off', '--access-log', 'stdout', '--log-level', 'warn', '--', 'python3', PY_HELLO]);
    try {
      await request(`${out.base}/Hello/3`);
    } finally {
      await out.stop(); // the stop writes what is buffered
    }
    expect(out.stdout()).toMatch(/"GET \/Hello\/3 HTTP\/1\.1" 200 /);
  });
});
