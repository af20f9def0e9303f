// The dashboard at the admin's `/`, in headless Chromium, against a real front
// (dist/cli.js, two Python backends) under wrk's load: it loads nothing from
// anywhere but the admin's origin, logs no console error, its figures move between
// two screenshots, a wrong token is refused, and +1 process really adds one.
// UPDATE_SCREENSHOT=1 writes the README's docs/dashboard.png.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PY_HELLO, ROOT, peer, request, spawnCli, waitUntil, type RunningCli } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
if (process.env.CI && !hasChromium) throw new Error('chromium is not installed (apt-get install -y chromium); the dashboard test needs it in CI');
const WRK = peer('wrk');

describe.skipIf(!hasChromium || !WRK)('the dashboard', () => {
  let cli: RunningCli | null = null;
  let wrk: ChildProcess | null = null;
  let close: (() => Promise<void>) | null = null;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'upfront-chromium-'));

  afterAll(async () => {
    await close?.();
    if (wrk && wrk.exitCode === null) wrk.kill('SIGKILL');
    await cli?.stop();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  });

  it('shows live figures under load, talks to its own origin only, and scales with the token', async () => {
    cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '2', '--queue-size', '16', '--', 'python3', PY_HELLO]);
    const origin = `http://${cli.admin}`;
    const stats = async () => JSON.parse((await request(`${origin}/stats`, { agent: false })).body.toString());
    wrk = spawn(WRK!, ['-t1', '-c24', '-d60s', `${cli.base}/Hello/50`], { stdio: 'ignore' });

    const { chromium } = await import('playwright-core');
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 20_000,
      viewport: { width: 1400, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    close = () => context.close();
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    const requests: string[] = [];
    const errors: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));

    const response = await page.goto(`${origin}/`, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toMatch(/default-src 'none'; script-src 'sha256-[^']+'; style-src 'sha256-[^']+'; connect-src 'self'.*frame-ancestors 'none'/);
    await page.locator('tr[data-backend]').nth(1).waitFor();
    expect(await page.locator('#procs').textContent()).toBe('2 processes');
    // Under load: requests per second above 0, the queue's and the backends' figures shown.
    await page.waitForFunction(() => Number(document.querySelector('#card-rps .value')?.textContent?.replace(/,/g, '')) > 0);
    expect(await page.locator('tr[data-backend] .state').first().textContent()).toMatch(/^(busy|ready)$/);
    expect(await page.locator('tr[data-backend] svg.spark').count()).toBe(2); // accept queue against backlog, 60 s
    expect(await page.locator('#token-box').isVisible()).toBe(true); // a TCP admin: POSTs need the token

    const requestCounts = () => page.locator('td.requests').allTextContents();
    // A screenshot between two equal reads of the counts shows those counts.
    let countsA: string[] = [];
    let shotA = Buffer.alloc(0);
    for (let same = false; !same;) {
      const before = await requestCounts();
      shotA = await page.screenshot();
      countsA = await requestCounts();
      same = before.join() === countsA.join();
    }
    await page.waitForFunction((before) => [...document.querySelectorAll('td.requests')].map((e) => e.textContent).join() !== before, countsA.join());
    const countsB = await requestCounts();
    const shotB = await page.screenshot();
    expect(countsB).not.toEqual(countsA);
    expect(Buffer.compare(shotA, shotB)).not.toBe(0);
    if (process.env.UPDATE_SCREENSHOT) {
      await page.waitForTimeout(30_000); // half a minute of sparklines
      fs.mkdirSync(path.join(ROOT, 'docs'), { recursive: true });
      await page.screenshot({ path: path.join(ROOT, 'docs/dashboard.png') });
    }

    expect(errors).toEqual([]);
    // A wrong token: refused, nothing changes (Chromium logs the 401 it asked for, nothing else).
    await page.fill('#token', 'x'.repeat(64));
    await page.click('#scale-up');
    await page.waitForFunction(() => /401/.test(document.querySelector('#action-result')?.textContent ?? ''));
    expect((await stats()).children).toHaveLength(2);

    // The real one (the operator pastes the token file's content): one process more.
    const s = await stats();
    const token = fs.readFileSync(s.adminTokenFile, 'utf8').trim();
    await page.fill('#token', token);
    await page.click('#scale-up');
    await page.waitForFunction(() => /scaling from 2 to 3 processes/.test(document.querySelector('#action-result')?.textContent ?? ''));
    await waitUntil(async () => (await stats()).children.length === 3, 'upfront runs 3 processes', 15_000);
    await page.locator('tr[data-backend]').nth(2).waitFor();
    await page.waitForFunction(() => document.querySelector('#procs')?.textContent === '3 processes');

    expect(errors).toEqual(['Failed to load resource: the server responded with a status of 401 (Unauthorized)']);
    expect(requests.filter((u) => !u.startsWith(`${origin}/`))).toEqual([]);
    expect(requests.filter((u) => u === `${origin}/stats?history`).length).toBeGreaterThan(2); // polled, once a second
  }, process.env.UPDATE_SCREENSHOT ? 120_000 : 60_000);
});
