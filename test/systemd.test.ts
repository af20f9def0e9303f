// --listen systemd: the public socket from socket activation. With Debian's
// systemd-socket-activate (the connection that starts upfront is served), and with a
// small holder that keeps the socket across a restart as systemd does: connections
// made while upfront restarts wait in the socket's queue and are all served.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FIXTURES, PY_HELLO, ROOT, peer, waitUntil } from './helpers.js';

const ACTIVATE = peer('systemd-socket-activate');
const CLI = path.join(ROOT, 'dist/cli.js');
const procs: ChildProcess[] = [];

afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.exitCode !== null || p.signalCode !== null) continue;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 15_000 }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

const run = ['run', '--listen', 'systemd', '--admin', 'off', '--log-level', 'warn', '--shutdown-grace', '5000', '--', 'python3', PY_HELLO];

describe('socket activation', () => {
  it('without LISTEN_FDS, --listen systemd says what is missing', () => {
    const env = { ...process.env };
    delete env.LISTEN_FDS;
    const r = spawnSync(process.execPath, [CLI, ...run], { encoding: 'utf8', timeout: 20_000, env });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/listen systemd: no socket from systemd \(LISTEN_FDS is not set\)/);
  });

  it.skipIf(!ACTIVATE)('systemd-socket-activate: the connection that starts upfront is served', async () => {
    const port = await freePort();
    const p = spawn(ACTIVATE!, ['-l', `127.0.0.1:${port}`, process.execPath, CLI, ...run], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(p);
    let err = '';
    p.stderr!.on('data', (c) => { err += c; });
    await waitUntil(() => /Listening on 127\.0\.0\.1:\d+/.test(err), 'systemd-socket-activate listens');
    // This connection starts upfront (exec'd by systemd-socket-activate) and waits in the queue meanwhile.
    const r = await get(`http://127.0.0.1:${port}/Hello/3`);
    expect(r.status).toBe(200);
    expect(r.body).toContain('Hello, World! line 3');
    expect(err).toMatch(/serving on http:\/\/127\.0\.0\.1:\d+/);
  });

  it('a restart loses no connection attempt: the socket stays with its holder, connections wait in its queue', async () => {
    const holder = spawn('python3', [path.join(FIXTURES, 'socket-holder.py'), '--', process.execPath, CLI, ...run], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(holder);
    let out = '';
    holder.stdout!.on('data', (c) => { out += c; });
    await waitUntil(() => /PORT \d+/.test(out) && /CHILD \d+/.test(out), 'the holder listens and starts upfront');
    const port = Number(/PORT (\d+)/.exec(out)![1]);
    const firstChild = Number(/CHILD (\d+)/.exec(out)![1]);
    const backendPids = new Set<string>();
    const failures: string[] = [];
    let ok = 0;
    let running = true;
    // Clients keep connecting, one new connection at a time, through the restart.
    const load = (async () => {
      while (running) {
        try {
          const r = await get(`http://127.0.0.1:${port}/pid`);
          if (r.status === 200) { ok++; backendPids.add(r.body.trim()); } else failures.push(`status ${r.status}`);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    })();
    await waitUntil(() => ok >= 20, 'the first upfront serves');
    process.kill(firstChild, 'SIGTERM');
    await waitUntil(() => (out.match(/CHILD \d+/g) ?? []).length >= 2, 'the holder starts upfront again', 20_000);
    await waitUntil(() => backendPids.size >= 2 && ok >= 60, 'the second upfront serves', 20_000);
    running = false;
    await load;
    expect(failures).toEqual([]);
    expect(backendPids.size).toBe(2);
  });
});
