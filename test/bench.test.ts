// `upfront bench` end to end: a short sweep (2 s cells, 1 process) of the Python
// example behind every front — upfront, nginx, h2o, HAProxy, lighttpd, Caddy, the
// peers over spawn-fcgi; results.json has every field, report.html renders in
// headless Chromium; every front gives the app the same SCRIPT_NAME / PATH_INFO;
// siege as the load; a backend that cannot start fails the bench with its cause;
// (`upfront nginx-conf`: nginx-conf.test.ts); `--protocol http` puts upfront and nginx
// (proxy_pass, upstream keepalive) before Tornado processes on their own sockets.
// Each run gets its own TMPDIR, so what the bench leaves behind (a process, a
// temp dir, a socket) is found exactly.
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { PY_HELLO, ROOT, peer, tmpDir } from './helpers.js';

const run = promisify(execFile);
const CLI = path.join(ROOT, 'dist/cli.js');
const CHROMIUM = '/usr/bin/chromium';
const SPAWN_FCGI = peer('spawn-fcgi');
const WRK = peer('wrk');
const SIEGE = peer('siege');
const PEERS = { nginx: peer('nginx'), h2o: peer('h2o'), haproxy: peer('haproxy'), lighttpd: peer('lighttpd'), caddy: peer('caddy') };
const INSTALLED = Object.entries(PEERS).filter(([, p]) => p && SPAWN_FCGI).map(([name]) => name);
// Tornado is Debian's python3-tornado, under Debian's python (the pyenv python3 on PATH has none).
const SYSTEM_PYTHON = '/usr/bin/python3';
const TORNADO_APP = path.join(ROOT, 'examples/python/tornado_hello.py');
const HAS_TORNADO = spawnSync(SYSTEM_PYTHON, ['-c', 'import tornado'], { stdio: 'ignore' }).status === 0;
if (process.env.CI && !HAS_TORNADO) throw new Error('python3-tornado is not installed; .ci/run should have installed it');

const METRIC_FIELDS = ['rps', 'requests', 'latencyMs', 'failures', 'eagain', 'acceptQueueMax', 'frontQueueMax',
  'cpuFrontSecPer1000', 'cpuBackendSecPer1000', 'cpuMachineSecPer1000', 'machineBusyPct', 'cpuLoadSecPer1000', 'memFrontMb', 'memBackendMb'];

/** Pids of live processes whose environment has TMPDIR=dir: everything a bench run with that TMPDIR started. */
function processesOf(dir: string): number[] {
  const found: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(`TMPDIR=${dir}`)) {
        if (!/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${name}/stat`, 'utf8'))) found.push(Number(name));
      }
    } catch { /* gone, or not ours */ }
  }
  return found;
}

const cleanups: Array<() => void> = [];
afterEach(() => { while (cleanups.length) cleanups.pop()!(); });

/** A private TMPDIR for one bench run; afterwards nothing may be left in it, and no process may carry it. */
function privateTmp(): { env: NodeJS.ProcessEnv; dir: string; assertClean(): void } {
  const dir = tmpDir('upfront-bench-tmp-');
  cleanups.push(() => {
    for (const p of processesOf(dir)) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    env: { ...process.env, TMPDIR: dir },
    assertClean: () => {
      expect(processesOf(dir)).toEqual([]);
      expect(fs.readdirSync(dir)).toEqual([]);
    },
  };
}

describe('upfront bench', () => {
  it('a short sweep of every front: a cell per front with req/s > 0 and no failed request, every field, a report with charts, nothing left', async () => {
    const out = tmpDir('upfront-bench-test-');
    cleanups.push(() => fs.rmSync(out, { recursive: true, force: true }));
    const tmp = privateTmp();
    const load = WRK ? 'wrk' : 'autocannon';
    const { stdout, stderr } = await run(process.execPath, [CLI, 'bench', '--front', 'all', '--procs', '1', '--overflow', 'queue', '--duration', '2s', '--warmup', '0',
      '--repeat', '1', '--concurrency', '20', '--load', load, '--out', out, '--', 'python3', PY_HELLO], { cwd: ROOT, timeout: 90_000, env: tmp.env });
    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(results.cells.map((c: any) => c.front).sort()).toEqual(['upfront', ...INSTALLED].sort());
    for (const cell of results.cells) {
      expect(cell.error, `${cell.front}: ${cell.error}`).toBeNull();
      for (const key of ['median', 'min', 'max']) for (const field of METRIC_FIELDS) expect(cell[key]).toHaveProperty(field);
      expect(cell.median.rps, cell.front).toBeGreaterThan(0);
      expect(cell.median.failures, cell.front).toEqual({ connect: 0, read: 0, write: 0, timeout: 0, non2xx: 0, other: 0, total: 0 });
      expect(cell.median.eagain, cell.front).toBe(0);
      expect(cell.median.cpuFrontSecPer1000, cell.front).toBeGreaterThan(0);
      expect(cell.median.cpuBackendSecPer1000, cell.front).toBeGreaterThan(0);
      expect(cell.median.memFrontMb, cell.front).toBeGreaterThan(0);
      // The load tool spent CPU, and the whole machine was busy at least as long as the front, the
      // backends and the load side together (within /proc's 10 ms ticks).
      const m = cell.median;
      expect(m.cpuLoadSecPer1000, cell.front).toBeGreaterThan(0);
      expect(m.cpuMachineSecPer1000, cell.front).toBeGreaterThanOrEqual(0.9 * (m.cpuFrontSecPer1000 + m.cpuBackendSecPer1000 + m.cpuLoadSecPer1000));
      expect(m.machineBusyPct, cell.front).toBeGreaterThan(0);
      expect(m.machineBusyPct, cell.front).toBeLessThanOrEqual(100);
      if (cell.front === 'upfront') expect(Number.isInteger(cell.median.frontQueueMax), 'upfront reports its queue').toBe(true);
      else {
        expect(cell.median.frontQueueMax).toBeNull();
        expect(cell.median.acceptQueueMax, cell.front).not.toBeNull(); // sampled from the kernel
      }
    }
    expect(results.machine.cores).toBe(os.cpus().length);
    for (const name of INSTALLED) expect(results.machine[name], name).toMatch(/\d+\.\d+/);
    expect(results.machine.spawnFcgi).toMatch(/spawn-fcgi/);
    expect(results.settings).toMatchObject({ path: '/Hello/100', concurrency: 20, durationSec: 2, repeat: 1, load });
    // every peer's generated config is kept next to results.json
    const configs: Record<string, string> = { nginx: 'nginx.conf', h2o: 'h2o.conf', haproxy: 'haproxy.cfg', lighttpd: 'lighttpd.conf', caddy: 'Caddyfile' };
    for (const name of INSTALLED) expect(fs.readFileSync(path.join(out, configs[name]), 'utf8')).toMatch(/^# Backends: spawn-fcgi -s \S+ -M 0666 -b 1024 -F 1 /m);
    if (PEERS.haproxy) expect(fs.readFileSync(path.join(out, 'haproxy.cfg'), 'utf8')).toMatch(/^\s+no option keep-conn$/m);

    expect(stdout).toMatch(/transaction rate \[1\/sec\]\s+1 proc\s+failed/);
    expect(stdout).toMatch(/^ratio upfront \(queue\)\/best peer\s+\d\.\d\d \S+$/m);
    if (PEERS.nginx) expect(stdout).toMatch(/^ratio upfront \(queue\)\/nginx\s+\d\.\d\d$/m);
    expect(stdout).toMatch(/^procs\s+front\s+req\/s\s+failed\s+front CPU µs\/req\s+backend CPU µs\/req\s+load CPU µs\/req\s+machine µs\/req \(busy\)/m);
    // Figures above 999 have thousands separators (a machine busy with other tests: 1,160 µs a request).
    expect(stdout).toMatch(/^1\s+upfront \(queue\)\s+[\d,]+\s+\S+\s+[\d,]+\s+[\d,]+\s+[\d,]+\s+[\d,]+ \(\d+ %\)/m);
    expect(stdout).toMatch(/^recommendation: /m);
    expect(stdout).not.toMatch(/^\* a request failed/m);
    expect(stderr).not.toMatch(/is skipped/);
    tmp.assertClean();

    if (fs.existsSync(CHROMIUM) || process.env.CI) {
      const { chromium } = await import('playwright-core');
      const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 20_000,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
      try {
        const page = await browser.newPage();
        const requests: string[] = [];
        page.on('request', (r) => requests.push(r.url()));
        await page.goto(pathToFileURL(path.join(out, 'report.html')).href, { waitUntil: 'load' });
        for (const id of ['chart-rps', 'chart-p99', 'chart-cpu']) expect(await page.locator(`svg#${id}`).count()).toBe(1);
        // No request failed: the failures chart gives way to a line saying so.
        expect(await page.locator('svg#chart-errors').count()).toBe(0);
        expect(await page.locator('#no-failures').count()).toBe(1);
        expect(await page.locator('#chart-rps .series').count()).toBe(1 + INSTALLED.length);
        expect(await page.locator('#cpu tbody tr').count()).toBe(1 + INSTALLED.length);
        expect(requests.every((u) => u.startsWith('file://'))).toBe(true);
      } finally {
        await browser.close();
      }
    }
  }, 120_000);

  it('every front gives the app the same SCRIPT_NAME ("") and PATH_INFO (the path), and the same 100 lines', async () => {
    const tmp = privateTmp();
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp.dir; // this process starts the fronts: the same private TMPDIR for them
    cleanups.push(() => { if (saved === undefined) delete process.env.TMPDIR; else process.env.TMPDIR = saved; });
    const { startPeer } = await import(pathToFileURL(path.join(ROOT, 'dist/bench/peerFront.js')).href);
    const { startUpfront } = await import(pathToFileURL(path.join(ROOT, 'dist/bench/upfrontFront.js')).href);
    const { get } = await import(pathToFileURL(path.join(ROOT, 'dist/bench/processes.js')).href);
    const opts = { command: ['python3', PY_HELLO], path: '/Hello/1', backlog: 1024 };
    const seen: Record<string, unknown> = {};
    for (const name of ['upfront', ...INSTALLED]) {
      const front = name === 'upfront' ? await startUpfront(opts, 1, 'queue', null) : await startPeer(name, opts, 1);
      try {
        const env = JSON.parse((await get({ host: '127.0.0.1', port: front.port, path: '/env?a=1' })).body);
        const hello = (await get({ host: '127.0.0.1', port: front.port, path: '/Hello/100' })).body;
        seen[name] = { SCRIPT_NAME: env.SCRIPT_NAME, PATH_INFO: env.PATH_INFO, QUERY_STRING: env.QUERY_STRING, lines: hello.match(/<p>Hello, World! line \d+<\/p>/g)?.length };
      } finally {
        await front.stop();
      }
    }
    for (const name of Object.keys(seen)) expect(seen[name], name).toEqual({ SCRIPT_NAME: '', PATH_INFO: '/env', QUERY_STRING: 'a=1', lines: 100 });
    tmp.assertClean();
  }, 60_000);

  it.skipIf(!HAS_TORNADO || !PEERS.nginx)('--protocol http: upfront and nginx proxy HTTP to Tornado processes on their own sockets; every request answered, nothing left', async () => {
    const out = tmpDir('upfront-bench-test-');
    cleanups.push(() => fs.rmSync(out, { recursive: true, force: true }));
    const tmp = privateTmp();
    const load = WRK ? 'wrk' : 'autocannon';
    const { stdout } = await run(process.execPath, [CLI, 'bench', '--protocol', 'http', '--front', 'upfront,nginx', '--procs', '1', '--duration', '2s', '--warmup', '0',
      '--repeat', '1', '--concurrency', '20', '--load', load, '--out', out, '--', SYSTEM_PYTHON, TORNADO_APP], { cwd: ROOT, timeout: 60_000, env: tmp.env });
    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(results.settings).toMatchObject({ protocol: 'http', load });
    expect(results.settings).not.toHaveProperty('backlog'); // the app binds its socket with its own
    expect(results.cells.map((c: any) => [c.front, c.protocol, c.overflow])).toEqual([['upfront', 'http', 'queue'], ['nginx', 'http', null]]);
    for (const cell of results.cells) {
      expect(cell.error, `${cell.front}: ${cell.error}`).toBeNull();
      expect(cell.median.rps, cell.front).toBeGreaterThan(0);
      expect(cell.median.failures, cell.front).toEqual({ connect: 0, read: 0, write: 0, timeout: 0, non2xx: 0, other: 0, total: 0 });
      expect(cell.median.eagain, cell.front).toBe(0);
      expect(cell.median.acceptQueueMax, cell.front).not.toBeNull(); // sampled from the kernel
      expect(cell.median.cpuFrontSecPer1000, cell.front).toBeGreaterThan(0);
      expect(cell.median.cpuBackendSecPer1000, cell.front).toBeGreaterThan(0); // the Tornado processes were found
      expect(cell.median.memBackendMb, cell.front).toBeGreaterThan(0);
    }
    expect(stdout).toMatch(/^nginx \(http\)\s+\d+\.\d\s+0$/m);
    expect(stdout).toMatch(/^ratio upfront \(http, queue[^)]*\)\/nginx \(http\)\s+\d\.\d\d$/m);
    const conf = fs.readFileSync(path.join(out, 'nginx.conf'), 'utf8');
    expect(conf).toMatch(new RegExp(`^# Backends: UPFRONT_SOCKET=\\S+/b0\\.sock ${SYSTEM_PYTHON} ${TORNADO_APP}$`, 'm'));
    for (const line of [/^\s+server unix:\S+\/b0\.sock;$/m, /^\s+keepalive 32;$/m, /^\s+proxy_http_version 1\.1;$/m, /^\s+proxy_set_header Connection "";$/m]) expect(conf).toMatch(line);
    tmp.assertClean();
  }, 60_000);

  it.skipIf(!SIEGE || !PEERS.nginx || !SPAWN_FCGI)('--load siege: its transaction rate and failures, n/a for the percentiles it does not measure', async () => {
    const out = tmpDir('upfront-bench-test-');
    cleanups.push(() => fs.rmSync(out, { recursive: true, force: true }));
    const tmp = privateTmp();
    const { stdout } = await run(process.execPath, [CLI, 'bench', '--front', 'nginx', '--procs', '1', '--duration', '1s', '--warmup', '0', '--repeat', '1',
      '--concurrency', '10', '--load', 'siege', '--out', out, '--', 'python3', PY_HELLO], { cwd: ROOT, timeout: 60_000, env: tmp.env });
    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(results.machine.loadTool).toMatch(/SIEGE 4/);
    const [cell] = results.cells;
    expect(cell.error).toBeNull();
    expect(cell.median.rps).toBeGreaterThan(0);
    expect(cell.median.latencyMs).toMatchObject({ p50: null, p90: null, p99: null });
    expect(cell.median.failures.total).toBe(0);
    expect(stdout).toMatch(/^nginx\s+\d+\.\d\s+0$/m);
    expect(fs.readFileSync(path.join(out, 'report.html'), 'utf8')).toMatch(/<td data-label="p50 ms">n\/a<\/td><td data-label="p90 ms">n\/a<\/td><td data-label="p99 ms">n\/a<\/td>/);
    tmp.assertClean();
  }, 60_000);

  it('--switches auto,false/false: the defaults next to hand-set switches, each cell its own series; repeats take turns', async () => {
    const out = tmpDir('upfront-bench-test-');
    cleanups.push(() => fs.rmSync(out, { recursive: true, force: true }));
    const tmp = privateTmp();
    // A backend that claims 1000 and serves one connection at a time: auto learns what false/false says.
    const { stdout } = await run(process.execPath, [CLI, 'bench', '--front', 'upfront', '--switches', 'auto,false/false', '--procs', '1', '--overflow', 'queue',
      '--duration', '1s', '--warmup', '0', '--repeat', '2', '--concurrency', '10', '--path', '/Hello/1', '--out', out,
      '--', 'python3', path.join(ROOT, 'test/fixtures/capacity-backend.py'), 'serial'], { cwd: ROOT, timeout: 60_000, env: tmp.env });
    const cells = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')).cells;
    expect(cells).toHaveLength(2);
    // Rounds: the first run of each cell, then the second of each — not one cell's runs back to back.
    const [a, b] = cells.map((c: { runsAt: string[] }) => c.runsAt.map((t) => Date.parse(t)));
    expect([a.length, b.length]).toEqual([2, 2]);
    expect(a[0] < b[0] && b[0] < a[1] && a[1] < b[1], JSON.stringify(cells.map((c: { runsAt: string[] }) => c.runsAt))).toBe(true);
    for (const c of cells) expect(c.repeats).toHaveLength(2);
    expect(cells.map((c: { switchesAuto?: boolean }) => c.switchesAuto ?? false)).toEqual([true, false]);
    for (const c of cells) {
      expect(c.error).toBeNull();
      expect(c.median.failures.total).toBe(0);
      expect(c.median.requests).toBeGreaterThan(0);
    }
    expect(stdout).toMatch(/^upfront \(queue, auto(: multithreaded)?\)\s+\d+\.\d\s+0$/m);
    expect(stdout).toMatch(/^upfront \(queue\)\s+\d+\.\d\s+0$/m);
    tmp.assertClean();
  }, 60_000);

  it('a backend that cannot start: every cell names the cause, and the bench exits 1', async () => {
    const out = tmpDir('upfront-bench-test-');
    cleanups.push(() => fs.rmSync(out, { recursive: true, force: true }));
    const tmp = privateTmp();
    const fronts = PEERS.nginx && SPAWN_FCGI ? 'upfront,nginx' : 'upfront';
    const r = await run(process.execPath, [CLI, 'bench', '--front', fronts, '--procs', '1', '--overflow', 'queue', '--duration', '1s', '--warmup', '0', '--repeat', '1',
      '--out', out, '--', 'false'], { cwd: ROOT, timeout: 60_000, env: tmp.env }).catch((err) => err);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^upfront: no cell succeeded: /m);
    expect(r.stderr).toMatch(/upfront did not answer 200 on \/Hello\/100: every backend is down: b0 exited with code 1/);
    expect(r.stderr).not.toMatch(/no cell succeeded:.*Ctrl-C/); // not upfront's banner
    if (fronts.includes('nginx')) expect(r.stderr).toMatch(/spawn-fcgi failed: child exited with: 1/);
    expect(r.stdout).toMatch(/^failed: upfront \(queue\) × 1: .*exited with code 1/m);
    tmp.assertClean();
  }, 60_000);

  it.skipIf(!PEERS.nginx || !SPAWN_FCGI)('a cell where no request succeeded gives the front\'s and the backend\'s last words', async () => {
    const out = tmpDir('upfront-bench-test-');
    cleanups.push(() => fs.rmSync(out, { recursive: true, force: true }));
    const tmp = privateTmp();
    // It answers the readiness probe, then exits; spawn-fcgi restarts nothing: every request after fails.
    const r = await run(process.execPath, [CLI, 'bench', '--front', 'nginx', '--procs', '1', '--duration', '1s', '--warmup', '0', '--repeat', '1',
      '--concurrency', '10', '--out', out, '--', 'python3', path.join(ROOT, 'test/fixtures/one-request-backend.py')], { cwd: ROOT, timeout: 60_000, env: tmp.env }).catch((err) => err);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^failed: nginx × 1: no successful request \(\d+ failed\); nginx: .*connect\(\) to unix:\S+ failed \(111: Connection refused\).*; backend stderr: one-request-backend: served its one request, exiting$/m);
    const [cell] = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')).cells;
    expect(cell.repeats[0].failures.total).toBeGreaterThan(0); // the run is kept: every request counted
    tmp.assertClean();
  }, 60_000);
});

describe('upfront bench: bad input', () => {
  it('names the option and exits 2', async () => {
    const r = await run(process.execPath, [CLI, 'bench', '--procs', 'one', '--', 'true'], { timeout: 20_000 }).catch((err) => err);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^upfront: procs: expected a whole number/);
    const f = await run(process.execPath, [CLI, 'bench', '--front', 'apache', '--', 'true'], { timeout: 20_000 }).catch((err) => err);
    expect(f.code).toBe(2);
    expect(f.stderr).toMatch(/^upfront: front: "apache" is not one of upfront, nginx, h2o, haproxy, lighttpd, caddy, all/);
    const l = await run(process.execPath, [CLI, 'bench', '--load', 'ab', '--', 'true'], { timeout: 20_000 }).catch((err) => err);
    expect(l.code).toBe(2);
    expect(l.stderr).toMatch(/^upfront: load: "ab": use autocannon, wrk, siege/);
    const p = await run(process.execPath, [CLI, 'bench', '--protocol', 'spdy', '--', 'true'], { timeout: 20_000 }).catch((err) => err);
    expect(p.code).toBe(2);
    expect(p.stderr).toMatch(/^upfront: protocol: "spdy" is not one of fastcgi, http/);
    const s = await run(process.execPath, [CLI, 'bench', '--switches', 'auto,true', '--', 'true'], { timeout: 20_000 }).catch((err) => err);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/^upfront: switches: expected auto or multithreaded\/multiplexed pairs such as false\/false,true\/true, got "true"/);
    const o = await run(process.execPath, [CLI, 'bench', '--protocol', 'http', '--overflow', 'queue,nginx', '--', 'true'], { timeout: 20_000 }).catch((err) => err);
    expect(o.code).toBe(2);
    expect(o.stderr).toMatch(/^upfront: overflow: nginx reproduces nginx's FastCGI behaviour; with --protocol http use queue or shed/);
  });
});
