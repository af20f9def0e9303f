// The admin API against a real front over real HTTP: POSTs need the token
// (generated into a 0600 file in the socket dir, or the operator's
// --admin-token-file), a loopback Host, no foreign Origin and a JSON body; reads
// stay open. The CLI finds the token itself and exits non-zero with the reason.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TIMEOUTS, AdminServer } from '../src/admin/adminServer.js';
import type { StatsSources } from '../src/stats/snapshot.js';
import { PY_HELLO, ROOT, request, spawnCli, startTestFront, tmpDir, waitUntil, type RunningCli, type TestFront } from './helpers.js';

const CLI = path.join(ROOT, 'dist/cli.js');

/** Runs the CLI to its end; never rejects: exit code, stdout and stderr. */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('a TCP admin listener', () => {
  let front: TestFront;
  let admin: string;
  let tokenFile: string;
  let token: string;

  beforeAll(async () => {
    front = await startTestFront({ procs: 1, admin: '127.0.0.1:0', command: ['python3', PY_HELLO] });
    admin = `http://${front.adminAddress}`;
    tokenFile = path.join(front.socketDir, 'admin.token');
    token = fs.readFileSync(tokenFile, 'utf8').trim();
  });
  afterAll(async () => { await front?.stop(); });

  const post = (p: string, opts: { body?: string; headers?: Record<string, string> } = {}) =>
    request(`${admin}${p}`, { method: 'POST', body: Buffer.from(opts.body ?? '{}'), headers: { 'Content-Type': 'application/json', ...opts.headers }, agent: false });
  const ready = () => front.pool.backends.filter((b) => b.state === 'ready').length;

  it('generates a 64-hex token into DIR/admin.token, mode 0600; GET /stats names the file (not the token)', async () => {
    expect(fs.statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    const stats = await request(`${admin}/stats`);
    expect(stats.status).toBe(200);
    expect(JSON.parse(stats.body.toString()).adminTokenFile).toBe(tokenFile);
    expect(stats.body.toString()).not.toContain(token);
    for (const p of ['/metrics', '/status', '/status?json']) expect((await request(`${admin}${p}`)).status, p).toBe(200);
  });

  it('POST without the token or with a wrong one: 401 naming the token file; nothing happens', async () => {
    const none = await post('/scale', { body: '{"procs": 4}' });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(none.body.toString()).toContain(tokenFile);
    expect((await post('/scale', { body: '{"procs": 4}', headers: { Authorization: `Bearer ${'0'.repeat(64)}` } })).status).toBe(401);
    expect((await post('/scale', { body: '{"procs": 4}', headers: { Authorization: `Bearer ${token}x` } })).status).toBe(401);
    expect((await post('/reload', { headers: { Authorization: token } })).status).toBe(401);
    expect(front.supervisor!.procs).toBe(1);
    expect(front.log.count((l) => /scaling from|reloading/.test(l.msg))).toBe(0);
  });

  it('a Host that is not a loopback name is refused (DNS rebinding), reads included; loopback names pass', async () => {
    const port = front.adminAddress!.split(':').pop();
    for (const host of ['evil.example', `evil.example:${port}`, `127.0.0.1.nip.io:${port}`]) {
      const r = await post('/scale', { body: '{"procs": 4}', headers: { Host: host, Authorization: `Bearer ${token}` } });
      expect(r.status, host).toBe(421);
      expect(r.body.toString()).toMatch(/not a loopback name/);
      expect((await request(`${admin}/stats`, { headers: { Host: host }, agent: false })).status).toBe(421);
    }
    for (const host of [`localhost:${port}`, `[::1]:${port}`, '127.0.0.1']) expect((await request(`${admin}/stats`, { headers: { Host: host }, agent: false })).status, host).toBe(200);
    expect(front.supervisor!.procs).toBe(1);
  });

  it('a browser\'s foreign Origin is refused, even with the token; the admin\'s own origin passes', async () => {
    for (const origin of ['http://evil.example', 'null', `https://${front.adminAddress}`]) {
      const r = await post('/scale', { body: '{"procs": 4}', headers: { Origin: origin, Authorization: `Bearer ${token}` } });
      expect(r.status, origin).toBe(403);
    }
    expect(front.supervisor!.procs).toBe(1);
    const own = await post('/scale', { body: '{"procs": 1}', headers: { Origin: `http://${front.adminAddress}`, Authorization: `Bearer ${token}` } });
    expect(own.status).toBe(202);
  });

  it('a body that is not sent as application/json: 415 (a form or text/plain POST from a page)', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', '']) {
      const r = await request(`${admin}/scale`, { method: 'POST', body: Buffer.from('{"procs": 4}'), headers: { 'Content-Type': type, Authorization: `Bearer ${token}` }, agent: false });
      expect(r.status, type).toBe(415);
    }
    expect(front.supervisor!.procs).toBe(1);
  });

  it('with the token: 202 and the scale happens; bad input 400; GET on an action 405', async () => {
    const auth = { Authorization: `Bearer ${token}` };
    expect((await post('/scale', { body: '{"procs": 0}', headers: auth })).status).toBe(400);
    expect((await post('/scale', { body: 'not json', headers: auth })).status).toBe(400);
    expect((await post('/scale', { body: `{"procs": ${'9'.repeat(5000)}}`, headers: auth })).status).toBe(413);
    expect((await request(`${admin}/scale`)).status).toBe(405);
    const r = await post('/scale', { body: '{"procs": 2}', headers: auth });
    expect(r.status).toBe(202);
    expect(JSON.parse(r.body.toString())).toEqual({ from: 1, to: 2 });
    await waitUntil(() => ready() === 2, 'two ready backends');
  });

  it('`upfront scale 3` finds the token itself; bad input exits 2, a wrong token file 1, each with the reason', async () => {
    const ok = await cli(['scale', '3', '--admin', front.adminAddress!]);
    expect(ok).toMatchObject({ code: 0, stdout: 'scaled from 2 to 3 processes\n' });
    await waitUntil(() => ready() === 3, 'three ready backends');
    for (const bad of ['0', 'many', '1025']) {
      const r = await cli(['scale', bad, '--admin', front.adminAddress!]);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toMatch(/^upfront: procs: expected a whole number from 1 to 1024/);
    }
    const dir = tmpDir();
    const wrong = path.join(dir, 'wrong.token');
    fs.writeFileSync(wrong, 'f'.repeat(64) + '\n', { mode: 0o600 });
    const denied = await cli(['scale', '1', '--admin', front.adminAddress!, '--admin-token-file', wrong]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^upfront: admin 127\.0\.0\.1:\d+: POST needs the header "Authorization: Bearer TOKEN".*\(401\)\n$/);
    const missing = await cli(['reload', '--admin', front.adminAddress!, '--admin-token-file', path.join(dir, 'none')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read the admin token .*none \(ENOENT\)/);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(front.supervisor!.procs).toBe(3);
    const nobody = await cli(['scale', '2', '--admin', '127.0.0.1:1']);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toMatch(/nothing answers on admin 127\.0\.0\.1:1 \(ECONNREFUSED\)/);
  });

  it('the token file and the socket dir are gone after stop', async () => {
    await front.stop();
    expect(fs.existsSync(tokenFile)).toBe(false);
    expect(fs.existsSync(front.socketDir)).toBe(false);
  });
});

describe('--admin-token-file', () => {
  const dirs: string[] = [];
  let running: RunningCli | null = null;
  afterEach(async () => {
    await running?.stop();
    running = null;
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it('a file readable by group or others: exit 2 with one clear line, nothing started', async () => {
    const dir = tmpDir();
    dirs.push(dir);
    const file = path.join(dir, 'token');
    fs.writeFileSync(file, 'a'.repeat(64) + '\n');
    fs.chmodSync(file, 0o644);
    const r = await cli(['run', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--admin-token-file', file, '--', 'python3', PY_HELLO]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`upfront: admin-token-file: ${file} is open to group or others (mode 0644); chmod 600 ${file}\n`);
    fs.writeFileSync(path.join(dir, 'short'), 'abc\n', { mode: 0o600 });
    const short = await cli(['run', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--admin-token-file', path.join(dir, 'short'), '--', 'python3', PY_HELLO]);
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/^upfront: admin-token-file: .*short must hold one line of 32 to 1024 visible ASCII characters/);
  });

  it('the operator\'s file: its token is the one; /stats names it; it stays after stop', async () => {
    const dir = tmpDir();
    dirs.push(dir);
    const file = path.join(dir, 'token');
    const token = 'T'.repeat(40);
    fs.writeFileSync(file, token + '\n', { mode: 0o600 });
    const socketDir = path.join(dir, 'sockets');
    running = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--admin-token-file', file, '--socket-dir', socketDir, '-n', '1', '--', 'python3', PY_HELLO]);
    const admin = `http://${running.admin}`;
    expect(JSON.parse((await request(`${admin}/stats`)).body.toString()).adminTokenFile).toBe(file);
    expect(fs.readdirSync(socketDir)).toEqual(['b0.sock']);
    const r = await request(`${admin}/scale`, { method: 'POST', body: Buffer.from('{"procs": 2}'), headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, agent: false });
    expect(r.status).toBe(202);
    expect(await cli(['scale', '1', '--admin', running.admin!])).toMatchObject({ code: 0, stdout: 'scaled from 2 to 1 process\n' });
    await running.stop();
    expect(fs.readFileSync(file, 'utf8')).toBe(token + '\n');
    expect(fs.existsSync(socketDir)).toBe(false);
  }, 30_000);
});

describe('`upfront reload` reports the outcome', () => {
  it('a config that no longer validates: the reload is refused, the CLI says why and exits 1; the process keeps serving', async () => {
    const dir = tmpDir();
    const conf = path.join(dir, 'upfront.yaml');
    fs.writeFileSync(conf, `procs: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\ncommand: [python3, ${PY_HELLO}]\n`);
    const running = await spawnCli(['-c', conf]);
    try {
      const pid = JSON.parse((await request(`http://${running.admin}/stats`)).body.toString()).pools[0].backends[0].pid;
      fs.writeFileSync(conf, `procs: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\ncommand: [/no/such/app]\n`);
      const refused = await cli(['reload', '--admin', running.admin!]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^upfront: admin 127\.0\.0\.1:\d+: reload refused: backend command \/no\/such\/app not found \(ENOENT\) \(409\)\n$/);
      fs.writeFileSync(conf, `procs: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\nbacklog: lots\ncommand: [python3, ${PY_HELLO}]\n`);
      const invalid = await cli(['reload', '--admin', running.admin!]);
      expect(invalid.code).toBe(1);
      expect(invalid.stderr).toMatch(/reload refused: backlog: expected a whole number/);
      const stats = JSON.parse((await request(`http://${running.admin}/stats`)).body.toString());
      expect(stats.pools[0].backends.map((b: { pid: number }) => b.pid)).toEqual([pid]);
      expect((await request(`${running.base}/Hello/1`)).status).toBe(200);
    } finally {
      await running.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('an admin listener not on loopback', () => {
  it('is warned about on stderr before anything is bound', async () => {
    // Hold the port on loopback, so that binding 0.0.0.0 fails: nothing is ever exposed by this test.
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const r = await cli(['run', '--listen', '127.0.0.1:0', '--admin', `0.0.0.0:${port}`, '--', 'python3', PY_HELLO]);
      expect(r.stderr).toMatch(new RegExp(`^upfront: WARNING: the admin listener 0\\.0\\.0\\.0:${port} is not on loopback: other machines can read /stats`, 'm'));
      expect(r.stderr).toMatch(/address already in use/);
      expect(r.code).toBe(1);
    } finally {
      holder.close();
    }
  });
});


describe('admin listener: slow clients are bounded (not by node\'s 60 s / 300 s defaults)', () => {
  let dir: string;
  let admin: AdminServer;
  let socketPath: string;
  const timeouts = { headersMs: 300, requestMs: 600, keepAliveMs: 300 };

  beforeAll(async () => {
    dir = tmpDir('upfront-admin-slow-');
    socketPath = path.join(dir, 'admin.sock');
    // A unix socket needs no token; nothing here reaches the stats or the actions.
    const sources = { pools: [], startedAt: Date.now(), acceptedConn: () => 0, children: () => [], sampler: null } as StatsSources;
    const refuse = () => Promise.reject(new Error('not in this test'));
    // A scale that takes longer than the request bound, as one waiting for new processes does.
    const scale = (procs: number) => new Promise<{ from: number; to: number }>((r) => setTimeout(() => r({ from: 1, to: procs }), timeouts.requestMs + 400));
    admin = new AdminServer({ listen: { kind: 'unix', path: socketPath }, tokenDir: dir, timeouts }, sources, { scale, reload: refuse }, pino({ level: 'silent' }));
    await admin.listen();
  });
  afterAll(() => {
    admin?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Connects, writes `first`, and resolves with what came back and when the server closed (bounded). */
  const closedAfter = (first: string, boundMs: number) => new Promise<{ reply: string; ms: number }>((resolve, reject) => {
    const t0 = Date.now();
    const s = net.connect(socketPath, () => s.write(first));
    let reply = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`still open ${Date.now() - t0} ms after ${JSON.stringify(first)}; got ${JSON.stringify(reply)}`)); }, boundMs);
    s.setEncoding('latin1');
    s.on('data', (c: string) => { reply += c; });
    s.on('error', () => { /* a reset is a close too */ });
    s.on('close', () => { clearTimeout(timer); resolve({ reply, ms: Date.now() - t0 }); });
  });

  it('the defaults fit a local API: head 10 s, whole request 30 s, idle keep-alive 5 s', () => {
    expect(ADMIN_TIMEOUTS).toEqual({ headersMs: 10_000, requestMs: 30_000, keepAliveMs: 5000 });
  });

  it('half a request line is closed at the head bound', async () => {
    const r = await closedAfter('GET /sta', 3000);
    expect(r.ms).toBeGreaterThanOrEqual(timeouts.headersMs - 50);
    expect(r.reply).toMatch(/^(HTTP\/1\.1 408 |$)/);
  });

  it('a POST whose body never comes whole is closed at the request bound', async () => {
    const r = await closedAfter('POST /scale HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"procs":', 3000);
    expect(r.ms).toBeGreaterThanOrEqual(timeouts.requestMs - 50);
  });

  it('the answer to a whole request is not bounded by them: a /scale that takes longer than the request bound is answered', async () => {
    const r = await closedAfter('POST /scale HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{"procs":2}', 5000);
    expect(r.reply).toMatch(/^HTTP\/1\.1 202 /);
    expect(r.reply).toContain('{"from":1,"to":2}');
  });

  it('an idle kept connection is closed after the keep-alive bound', async () => {
    const r = await closedAfter('GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n', 3000);
    expect(r.reply).toMatch(/^HTTP\/1\.1 404 /);
    expect(r.ms).toBeGreaterThanOrEqual(timeouts.keepAliveMs - 50);
  });
});
