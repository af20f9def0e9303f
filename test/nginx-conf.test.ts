// `upfront nginx-conf` prints lines that work as printed: the spawn-fcgi lines are
// run as they are, nginx checks and serves the config, and a request goes through.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { PY_HELLO, ROOT, peer, pidAlive, request, tmpDir, waitUntil } from './helpers.js';

const run = promisify(execFile);
const CLI = path.join(ROOT, 'dist/cli.js');
const NGINX = peer('nginx');
const SPAWN_FCGI = peer('spawn-fcgi');

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

/** The shell lines nginx-conf prints for the backends (`#   ` comments after "Backends first"). */
function backendLines(conf: string): string[] {
  const lines = conf.split('\n');
  const from = lines.findIndex((l) => l.startsWith('# Backends first'));
  const out: string[] = [];
  for (const l of lines.slice(from + 1)) {
    if (!l.startsWith('#   ')) break;
    out.push(l.slice(4));
  }
  return out;
}

describe('upfront nginx-conf', () => {
  it.skipIf(!NGINX || !SPAWN_FCGI)('its spawn-fcgi lines run as printed, nginx -t passes, and a request goes through', async () => {
    const dir = tmpDir('upfront-nginx-conf-');
    const sockets = path.join(dir, 'sockets'); // does not exist yet: the printed lines create it
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    // Run from elsewhere: the printed lines must not depend on the directory they are run in.
    const { stdout: conf } = await run(process.execPath, [CLI, 'nginx-conf', '--listen', String(port), '-n', '2', '--socket-dir', sockets, '--', 'python3', PY_HELLO], { cwd: dir, timeout: 20_000 });
    const lines = backendLines(conf);
    expect(lines).toEqual([
      `mkdir -p ${sockets}`,
      expect.stringMatching(new RegExp(`^spawn-fcgi -s ${sockets}/b0\\.sock -b 1024 -F 1 -d ${dir} -- /\\S+/python3 ${PY_HELLO}$`)),
      expect.stringMatching(new RegExp(`^spawn-fcgi -s ${sockets}/b1\\.sock -b 1024 -F 1 -d ${dir} -- /\\S+/python3 ${PY_HELLO}$`)),
    ]);
    const children: number[] = [];
    cleanups.push(() => { for (const pid of children) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
    for (const line of lines) {
      const r = await run('/bin/sh', ['-c', line], { cwd: '/', timeout: 10_000 });
      const m = /PID: (\d+)/.exec(r.stdout + r.stderr);
      if (line.startsWith('spawn-fcgi')) {
        expect(m, `${line}: ${r.stdout}${r.stderr}`).not.toBeNull();
        children.push(Number(m![1]));
      }
    }
    fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
    const t = await run(NGINX!, ['-t', '-p', `${dir}/`, '-c', 'nginx.conf'], { timeout: 20_000 }).catch((err) => err);
    expect(`${t.stderr}`).toMatch(/test is successful/);
    const nginx: ChildProcess = spawn(NGINX!, ['-p', `${dir}/`, '-c', 'nginx.conf'], { stdio: 'ignore', detached: true });
    cleanups.push(async () => {
      if (nginx.exitCode !== null) return;
      const exited = new Promise((r) => nginx.once('exit', r));
      process.kill(-nginx.pid!, 'SIGTERM');
      await exited;
    });
    await waitUntil(() => new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    }), 'nginx listens');
    const r = await request(`http://127.0.0.1:${port}/Hello/3`, { agent: false });
    expect(r.status).toBe(200);
    expect(r.body.toString().match(/Hello, World!/g)).toHaveLength(3);
    for (const pid of children) expect(pidAlive(pid)).toBe(true);
  }, 30_000);

  it('reads a run config file (-c), flags override it; bad input exits 2', async () => {
    const dir = tmpDir('upfront-nginx-conf-');
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'run.yaml');
    fs.writeFileSync(file, `listen: 8290\nprocs: 3\nsocket: shared\nsocket-dir: ${dir}/s\nadmin: 127.0.0.1:8291\noverflow: queue\ncommand: [python3, ${PY_HELLO}]\n`);
    const { stdout } = await run(process.execPath, [CLI, 'nginx-conf', '-c', file, '--backlog', '128'], { cwd: dir, timeout: 20_000 });
    expect(backendLines(stdout)[1]).toMatch(new RegExp(`^spawn-fcgi -s ${dir}/s/shared\\.sock -b 128 -F 3 -d ${dir} -- `));
    expect(stdout).toMatch(/listen 127\.0\.0\.1:8290 /);
    const bad = await run(process.execPath, [CLI, 'nginx-conf', '--procs', 'x', '--', 'python3', PY_HELLO], { cwd: dir, timeout: 20_000 }).catch((err) => err);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^upfront: procs: expected a whole number/);
  });
});
