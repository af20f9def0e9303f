// `upfront bench` end to end: a short sweep (2 s cells) of the Python example at
// procs 1,2 with both fronts; results.json has every field, report.html renders in
// headless Chromium with its charts; `upfront nginx-conf` passes `nginx -t`.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PY_HELLO, ROOT, peer, tmpDir } from './helpers.js';

const run = promisify(execFile);
const CLI = path.join(ROOT, 'dist/cli.js');
const CHROMIUM = '/usr/bin/chromium';
const NGINX = peer('nginx');
const SPAWN_FCGI = peer('spawn-fcgi');

const METRIC_FIELDS = ['rps', 'requests', 'latencyMs', 'non2xx', 'socketErrors', 'eagain', 'acceptQueueMax', 'frontQueueMax',
  'cpuFrontSecPer1000', 'cpuBackendSecPer1000', 'memFrontMb', 'memBackendMb'];

describe.skipIf(!NGINX || !SPAWN_FCGI)('upfront bench', () => {
  it('a short sweep: results.json with every field, a report with charts, no process left', async () => {
    const out = tmpDir('upfront-bench-test-');
    const { stdout } = await run(process.execPath, [CLI, 'bench', '--procs', '1,2', '--overflow', 'queue', '--duration', '2s', '--warmup', '0s',
      '--repeat', '1', '--concurrency', '20', '--out', out, '--', 'python3', PY_HELLO], { cwd: ROOT, timeout: 120_000 });
    expect(stdout).toMatch(/transaction rate \[1\/sec\]/);
    expect(stdout).toMatch(/ratio upfront \(queue\)\/nginx/);
    expect(stdout).toMatch(/^recommendation: /m);
    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(results.machine.cores).toBe(os.cpus().length);
    expect(results.settings).toMatchObject({ path: '/Hello/100', concurrency: 20, durationSec: 2, repeat: 1, load: 'autocannon' });
    expect(results.cells.map((c: any) => `${c.front}/${c.procs}`).sort()).toEqual(['nginx/1', 'nginx/2', 'upfront/1', 'upfront/2']);
    for (const cell of results.cells) {
      expect(cell.error).toBeNull();
      for (const key of ['median', 'min', 'max']) for (const field of METRIC_FIELDS) expect(cell[key]).toHaveProperty(field);
      expect(cell.median.rps).toBeGreaterThan(0);
      expect(cell.median.non2xx).toBe(0);
      expect(cell.median.cpuFrontSecPer1000).toBeGreaterThan(0);
      expect(cell.median.cpuBackendSecPer1000).toBeGreaterThan(0);
      if (cell.front === 'upfront') expect(cell.median.frontQueueMax).toBeGreaterThanOrEqual(0);
      else expect(cell.median.frontQueueMax).toBeNull();
    }
    expect(results.recommendation).toMatchObject({ procs: expect.any(Number), why: expect.stringMatching(/Little's law/) });
    expect(fs.readFileSync(path.join(out, 'nginx.conf'), 'utf8')).toMatch(/fastcgi_pass backends;/);
    // Nothing the bench started is still running.
    const { stdout: ps } = await run('ps', ['-eo', 'args']);
    expect(ps).not.toMatch(new RegExp(`upfront-bench-(nginx-)?\\w+`));

    if (fs.existsSync(CHROMIUM) || process.env.CI) {
      const { chromium } = await import('playwright-core');
      const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 20_000,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
      try {
        const page = await browser.newPage();
        const requests: string[] = [];
        page.on('request', (r) => requests.push(r.url()));
        await page.goto(pathToFileURL(path.join(out, 'report.html')).href, { waitUntil: 'load' });
        for (const id of ['chart-rps', 'chart-p99', 'chart-errors']) expect(await page.locator(`svg#${id}`).count()).toBe(1);
        expect(await page.locator('#chart-rps .series').count()).toBe(2); // nginx, upfront (queue)
        expect(requests.every((u) => u.startsWith('file://'))).toBe(true);
      } finally {
        await browser.close();
      }
    }
    fs.rmSync(out, { recursive: true, force: true });
  }, 150_000);

  it('upfront nginx-conf prints a config that passes nginx -t, and the spawn-fcgi lines', async () => {
    const dir = tmpDir('upfront-nginx-conf-');
    const { stdout } = await run(process.execPath, [CLI, 'nginx-conf', '-n', '2', '--socket-dir', dir, '--', 'python3', PY_HELLO], { cwd: ROOT, timeout: 20_000 });
    expect(stdout).toMatch(new RegExp(`#   spawn-fcgi -s ${dir}/b0.sock -b 1024 -F 1 -- python3 `));
    expect(stdout).toMatch(/server unix:.*b1\.sock;/);
    fs.writeFileSync(path.join(dir, 'nginx.conf'), stdout);
    const t = await run(NGINX!, ['-t', '-p', `${dir}/`, '-c', 'nginx.conf'], { timeout: 20_000 }).catch((err) => err);
    expect(`${t.stderr}`).toMatch(/test is successful/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('upfront bench: bad input', () => {
  it('names the option and exits 2', async () => {
    const r = await run(process.execPath, [CLI, 'bench', '--procs', 'one', '--', 'true'], { timeout: 20_000 }).catch((err) => err);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^upfront: procs: expected a whole number/);
  });
});
