// Active health checks of --upstream backends: real FastCGI and HTTP servers that
// die and come back; the checks take them out after `fall` failures and bring them
// back after `rise` successes, and /stats shows it on the backend.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PY_HELLO, ROOT, getStats, request, startTestFront, tmpDir, waitUntil, type TestFront } from './helpers.js';

const children: ChildProcess[] = [];
const fronts: TestFront[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const f of fronts.splice(0)) await f.stop();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) { c.kill('SIGKILL'); await new Promise((r) => c.once('exit', r)); }
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function startApp(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const c = spawn(cmd, args, { stdio: 'ignore', env: { ...process.env, ...env } });
  children.push(c);
  return c;
}

async function kill(c: ChildProcess): Promise<void> {
  c.kill('SIGKILL');
  await new Promise((r) => c.once('exit', r));
}

const backendOf = async (front: TestFront) => (await getStats(front)).pools[0].backends[0];

describe('active health checks', () => {
  it('FastCGI (GET_VALUES): a dead upstream is taken out after 2 failures (503 at once), and back after 2 passes', async () => {
    const dir = tmpDir('upfront-hc-');
    dirs.push(dir);
    const sock = path.join(dir, 'app.sock');
    let app = startApp('python3', [PY_HELLO, '--bind', sock]);
    await waitUntil(() => fs.existsSync(sock), 'the app binds its socket');
    const front = await startTestFront({ procs: 0, upstream: [`unix:${sock}`], 'health-check-interval': 150, 'health-check-rise': 2, 'health-check-fall': 2, 'health-check-timeout': 500, 'connect-timeout': 300 });
    fronts.push(front);
    expect((await request(`${front.url}/Hello/1`)).status).toBe(200);
    await waitUntil(async () => (await backendOf(front)).health.checks >= 2, 'two checks ran');
    expect((await backendOf(front)).health).toMatchObject({ status: 'up', lastError: null });

    await kill(app);
    await front.log.waitFor((l) => /health check: upstream u0 .* taken out after 2 failed checks in a row \(connect: ECONNREFUSED\)/.test(l.msg), 'the upstream is taken out');
    const down = await backendOf(front);
    expect(down.state).toBe('down');
    expect(down.health).toMatchObject({ status: 'down', consecutiveFailed: 2, lastError: 'connect: ECONNREFUSED' });
    const t0 = Date.now();
    const refused = await request(`${front.url}/Hello/1`);
    expect(refused.status).toBe(503);
    expect(Date.now() - t0).toBeLessThan(2000);

    app = startApp('python3', [PY_HELLO, '--bind', sock]);
    await front.log.waitFor((l) => /health check: upstream u0 .* is back \(2 passing checks in a row\)/.test(l.msg), 'the upstream comes back');
    expect((await backendOf(front)).state).not.toBe('down');
    expect((await request(`${front.url}/Hello/2`)).status).toBe(200);
  });

  it('HTTP (GET PATH): 2xx passes; a path answering 404 takes the upstream out', async () => {
    const dir = tmpDir('upfront-hch-');
    dirs.push(dir);
    const sock = path.join(dir, 'http.sock');
    startApp(process.execPath, [path.join(ROOT, 'examples/node/http-app.mjs')], { UPFRONT_SOCKET: sock });
    await waitUntil(() => fs.existsSync(sock), 'the app binds its socket');
    const good = await startTestFront({ procs: 0, protocol: 'http', upstream: [`unix:${sock}`], 'health-check-interval': 150, 'health-check-path': '/pid', 'health-check-fall': 2 });
    fronts.push(good);
    await waitUntil(async () => (await backendOf(good)).health.checks >= 3, 'three checks ran');
    expect((await backendOf(good)).health).toMatchObject({ status: 'up', failures: 0 });
    const bad = await startTestFront({ procs: 0, protocol: 'http', upstream: [`unix:${sock}`], 'health-check-interval': 150, 'health-check-path': '/no-such-health-page', 'health-check-fall': 2 });
    fronts.push(bad);
    await bad.log.waitFor((l) => /taken out after 2 failed checks in a row \(GET \/no-such-health-page answered 404\)/.test(l.msg), 'the 404 takes it out');
    expect((await backendOf(bad)).state).toBe('down');
  });

  it('a path with FastCGI is a config error', async () => {
    await expect(startTestFront({ procs: 0, upstream: ['unix:/nonexistent.sock'], 'health-check-interval': 1000, 'health-check-path': '/x' }))
      .rejects.toThrow(/health-check-path: FastCGI upstreams are checked with FCGI_GET_VALUES/);
  });
});
