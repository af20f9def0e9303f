// The admin listener: /stats, /metrics and /status parse and agree with each
// other and with what the test sent; `upfront stats` prints them.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PY_HELLO, ROOT, request, startTestFront, tmpDir, type TestFront } from './helpers.js';

/** Prometheus text exposition format: # HELP / # TYPE lines and `name{labels} value` samples. */
function parsePrometheus(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[\d.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

describe('admin listener', () => {
  let front: TestFront;
  let admin: string;
  const dir = tmpDir();
  const adminSock = path.join(dir, 'admin.sock');

  beforeAll(async () => {
    front = await startTestFront({ procs: 2, admin: `unix:${adminSock}`, command: ['python3', PY_HELLO] });
    admin = adminSock;
    // 30 requests: 20 × 200, 10 × 404
    await Promise.all(Array.from({ length: 30 }, (_, i) => request(`${front.url}/${i < 20 ? 'Hello/3' : 'status/404'}`)));
  });
  afterAll(async () => {
    await front?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const get = (p: string) => new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
    import('node:http').then(({ default: http }) => {
      http.get({ socketPath: admin, path: p }, (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
      }).on('error', reject);
    });
  });

  it('is a unix socket with mode 0600', () => {
    expect(fs.statSync(adminSock).mode & 0o777).toBe(0o600);
  });

  it('/stats, /metrics and /status agree with each other and with the requests sent', async () => {
    const stats = JSON.parse((await get('/stats')).body);
    const pool = stats.pools[0];
    expect(pool).toMatchObject({ name: 'app', policy: 'least-conn', overflow: 'queue' });
    expect(pool.queue).toEqual(expect.objectContaining({ current: 0, timeouts: 0, full: 0, waitMs: expect.objectContaining({ p50: expect.any(Number), p99: expect.any(Number) }) }));
    const sum = (f: (b: any) => number) => pool.backends.reduce((a: number, b: any) => a + f(b), 0);
    expect(sum((b) => b.requests)).toBe(30);
    expect(sum((b) => b.responses['2xx'])).toBe(20);
    expect(sum((b) => b.responses['4xx'])).toBe(10);
    for (const b of pool.backends) {
      expect(b).toEqual(expect.objectContaining({
        id: expect.any(String), address: expect.stringMatching(/^unix:/), pid: expect.any(Number), state: 'ready',
        slots: 1, inflight: 0, restarts: 0, multithreaded: false, multiplexed: false, connectErrors: {},
        acceptQueue: { current: 0, max: expect.any(Number), backlog: 1024 },
        latencyMs: { p50: expect.any(Number), p90: expect.any(Number), p99: expect.any(Number) },
      }));
    }
    expect(stats.acceptedConn).toBeGreaterThan(0);

    const metrics = await get('/metrics');
    expect(metrics.type).toMatch(/^text\/plain/);
    const samples = parsePrometheus(metrics.body);
    const total = (name: string, filter: Record<string, string> = {}) => samples
      .filter((s) => s.name === name && Object.entries(filter).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
    expect(total('upfront_backend_requests_total')).toBe(30);
    expect(total('upfront_backend_responses_total', { code: '2xx' })).toBe(20);
    expect(total('upfront_backend_responses_total', { code: '4xx' })).toBe(10);
    expect(total('upfront_backend_slots')).toBe(2);
    expect(total('upfront_accepted_connections_total')).toBe(stats.acceptedConn);
    // upfront's own names, and the standard process_ ones for the front's own process
    expect(samples.filter((s) => !/^(upfront|process)_/.test(s.name))).toEqual([]);

    const status = (await get('/status')).body;
    for (const field of ['pool', 'process manager', 'start time', 'start since', 'accepted conn', 'listen queue', 'max listen queue',
      'listen queue len', 'idle processes', 'active processes', 'total processes', 'max active processes', 'max children reached', 'slow requests']) {
      expect(status).toMatch(new RegExp(`^${field}:\\s+\\S`, 'm'));
    }
    const statusJson = JSON.parse((await get('/status?json')).body);
    expect(statusJson).toMatchObject({ pool: 'app', 'accepted conn': stats.acceptedConn, 'total processes': 2, 'active processes': 0, 'idle processes': 2, 'listen queue len': 65_536 + 2 * 1024 }); // the default --queue-size and two backlogs
  });

  it('upfront stats prints a table from it', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'stats', '--admin', `unix:${admin}`], { timeout: 10_000 });
    expect(stdout).toMatch(/pool app: policy least-conn, overflow queue/);
    expect(stdout).toMatch(/^b0\s+\d+\s+ready\s+1\s+0/m);
    expect(stdout).toMatch(/^b1\s+\d+\s+ready/m);
  });

  it('unknown paths are 404, the public listener has no /stats', async () => {
    expect((await get('/nope')).status).toBe(404);
    const r = await request(`${front.url}/stats`);
    expect(r.status).toBe(404); // the Python app's 404, not upfront's stats
    expect(r.body.toString()).not.toMatch(/pools/);
  });
});
