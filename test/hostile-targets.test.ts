// Odd request targets and heads sent over raw sockets to a running upfront (the
// spawned CLI with a real backend): each gets a status line, and the front (and so
// every backend) lives on. Once, `//` on the admin listener made `new URL()` throw
// and upfront exit.
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, pidAlive, request, spawnCli, type RunningCli } from './helpers.js';

const FAULT = path.join(ROOT, 'test/fixtures/fault-backend.mjs');

/** Request heads, as bytes on the wire (latin1: one byte per char). */
const CORPUS: string[] = [
  ...['//', '///', '//:99999', 'http://', 'http://x/stats', 'http://[::1', 'https://127.0.0.1/stats', '*', 'example.com:443', '?', '/?', '#',
    '/stats#frag', '/%', '/%zz', '/%00', '/stats?%zz=%%', '/status?json&json=%', '//stats', '/stats/..', '/../../etc/passwd', '/\xff\xfe', '/a\x7fb',
    `/${'a'.repeat(8000)}`, `/?${'q'.repeat(8000)}`]
    .map((t) => `GET ${t} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`),
  'OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
  'POST //scale HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}',
  'POST http://x/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n',
  'GET /stats HTTP/1.1\r\n\r\n', // no Host
  'GET /stats HTTP/1.0\r\n\r\n',
  'GET /stats HTTP/1.1\r\nHost: [::1\r\n\r\n',
  'GET /stats HTTP/1.1\r\nHost: :::\r\n\r\n',
  'GET /stats HTTP/1.1\r\nHost: 127.0.0.1:99999999\r\n\r\n',
  'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: \r\n\r\n',
  'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: null\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  'BREW /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
  'GET /stats HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n',
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
  'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
  'POST /scale HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
  'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX: a\rb\r\n\r\n',
  'garbage\r\n\r\n',
  'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
];

/** Sends one head on a fresh connection; resolves with the first line of the answer ('' when closed without one). */
function statusLine(hostPort: string, head: string): Promise<string> {
  const [host, port] = [hostPort.slice(0, hostPort.lastIndexOf(':')), Number(hostPort.slice(hostPort.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host);
    let got = '';
    const timer = setTimeout(() => { s.destroy(); resolve(got.split('\r\n')[0]); }, 5000);
    s.setEncoding('latin1');
    s.on('data', (c: string) => {
      got += c;
      if (got.includes('\r\n')) { clearTimeout(timer); s.destroy(); resolve(got.split('\r\n')[0]); }
    });
    s.on('close', () => { clearTimeout(timer); resolve(got.split('\r\n')[0]); });
    s.on('error', (err: NodeJS.ErrnoException) => { if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') reject(err); });
    s.write(Buffer.from(head, 'latin1'));
  });
}

describe('odd request targets', () => {
  let cli: RunningCli;
  beforeAll(async () => {
    cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '1', '--', process.execPath, FAULT, 'ok']);
  }, 30_000);
  afterAll(async () => { await cli?.stop(); });

  it('on the admin listener: each gets a status line (400 for a target that is no path); upfront lives on', async () => {
    const answers: Record<string, string> = {};
    for (const head of CORPUS) answers[JSON.stringify(head.slice(0, 60))] = await statusLine(cli.admin!, head);
    for (const [head, line] of Object.entries(answers)) expect(line, `answer to ${head}`).toMatch(/^HTTP\/1\.[01] [1-5]\d\d /);
    for (const t of ['//', '///', '//:99999']) expect(await statusLine(cli.admin!, `GET ${t} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)).toMatch(/ 404 /);
    for (const t of ['http://', 'http://x/stats', '*']) expect(await statusLine(cli.admin!, `GET ${t} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)).toMatch(/ 400 /);
    expect(pidAlive(cli.proc.pid!)).toBe(true);
    expect(cli.proc.exitCode).toBeNull();
    const stats = await request(`http://${cli.admin}/stats`);
    expect(stats.status).toBe(200);
    expect(JSON.parse(stats.body.toString()).pools[0].backends[0].state).toBe('ready');
    expect((await request(`${cli.base}/x`)).body.toString()).toBe('ok');
  }, 60_000);

  it('on the public listener: each gets a status line; upfront and its backend live on', async () => {
    const answers: Record<string, string> = {};
    for (const head of CORPUS) answers[JSON.stringify(head.slice(0, 60))] = await statusLine(cli.base.replace('http://', ''), head);
    for (const [head, line] of Object.entries(answers)) expect(line, `answer to ${head}`).toMatch(/^HTTP\/1\.[01] [1-5]\d\d /);
    expect(cli.proc.exitCode).toBeNull();
    const r = await request(`${cli.base}/x`);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('ok');
  }, 60_000);
});
