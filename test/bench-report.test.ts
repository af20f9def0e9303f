// The bench report: medians over repeats, the recommendation, the terminal
// table, and the HTML page opened in headless Chromium (no network, no errors).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { recommend, renderReportHtml, renderTerminalTable } from '../src/bench/report.js';
import { summarize, type BenchResults, type CellMetrics } from '../src/bench/results.js';
import { FIXTURES } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
if (process.env.CI && !hasChromium) throw new Error('chromium is not installed (apt-get install -y chromium); the report test needs it in CI');

function load(): BenchResults {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, 'bench-results.json'), 'utf8')) as BenchResults;
}

function metrics(rps: number, over: Partial<CellMetrics> = {}): CellMetrics {
  return {
    rps,
    requests: rps * 20,
    latencyMs: { p50: 10, p90: 20, p99: 30, max: 40 },
    non2xx: 0,
    socketErrors: 0,
    eagain: 0,
    acceptQueueMax: 1,
    frontQueueMax: 5,
    cpuFrontSecPer1000: 0.1,
    cpuBackendSecPer1000: 0.4,
    memFrontMb: 70,
    memBackendMb: 30,
    ...over,
  };
}

/** The fixture with 3 repeats per measured cell (±3%), summarized again. */
function withRepeats(r: BenchResults): BenchResults {
  const copy = structuredClone(r);
  for (const c of copy.cells) {
    if (!c.median) continue;
    const base = c.median;
    c.repeats = [0.97, 1, 1.03].map((k) => ({ ...base, rps: base.rps * k, latencyMs: { ...base.latencyMs, p99: base.latencyMs.p99 * (2 - k) } }));
    Object.assign(c, summarize(c.repeats));
  }
  return copy;
}

const seriesCount = (r: BenchResults): number =>
  new Set(r.cells.filter((c) => c.median).map((c) => `${c.front}/${c.overflow}`)).size;

describe('summarize', () => {
  it('takes per-field medians, minima and maxima', () => {
    const s = summarize([metrics(3), metrics(1), metrics(2)]);
    expect(s.median?.rps).toBe(2);
    expect(s.min?.rps).toBe(1);
    expect(s.max?.rps).toBe(3);
    expect(s.median?.latencyMs.p99).toBe(30);
    // even count: mean of the middle two
    expect(summarize([metrics(1), metrics(4), metrics(2), metrics(3)]).median?.rps).toBe(2.5);
  });

  it('reduces each field on its own', () => {
    const s = summarize([
      metrics(100, { latencyMs: { p50: 1, p90: 2, p99: 90, max: 100 } }),
      metrics(300, { latencyMs: { p50: 3, p90: 4, p99: 10, max: 20 } }),
      metrics(200, { latencyMs: { p50: 2, p90: 3, p99: 50, max: 60 } }),
    ]);
    expect(s.median?.rps).toBe(200);
    expect(s.median?.latencyMs).toEqual({ p50: 2, p90: 3, p99: 50, max: 60 });
    expect(s.min?.latencyMs.p99).toBe(10);
    expect(s.max?.latencyMs.max).toBe(100);
  });

  it('keeps a field null when any repeat could not measure it', () => {
    const s = summarize([metrics(1, { eagain: 4 }), metrics(2, { eagain: null }), metrics(3, { eagain: 6, frontQueueMax: null })]);
    expect(s.median?.eagain).toBeNull();
    expect(s.min?.eagain).toBeNull();
    expect(s.max?.frontQueueMax).toBeNull();
    expect(s.median?.acceptQueueMax).toBe(1);
    const t = summarize([metrics(1, { eagain: 4 }), metrics(2, { eagain: 8 })]);
    expect(t.median?.eagain).toBe(6);
  });

  it('gives nulls for no repeats', () => {
    expect(summarize([])).toEqual({ median: null, min: null, max: null });
  });
});

describe('recommend', () => {
  it('picks the smallest process count within 5% of the best error-free upfront rate', () => {
    const r = load();
    const rec = recommend(r);
    expect(rec).not.toBeNull();
    expect(rec).toMatchObject({ front: 'upfront', overflow: 'queue', procs: 2, rps: 3349.7 });
    expect(rec!.why).toMatch(/within 5% of the best \(3,448 at 4\)/);
    expect(rec!.why).toMatch(/Little's law 200 concurrent requests at 3,350 req\/s spend 59\.7 ms/);
    expect(rec!.why).toMatch(/p50: 59\.1 ms/);
    // the fixture stores what recommend() says
    expect(r.recommendation).toEqual(rec);
  });

  it('ignores upfront cells with errors, and falls back to any cell when none is clean', () => {
    const r = load();
    // make the clean upfront (queue) series the worst: upfront (nginx) has errors at 1 and 2
    for (const c of r.cells) if (c.front === 'upfront' && c.overflow === 'queue' && c.median) c.median.rps /= 2;
    const rec = recommend(r)!;
    expect(rec.front).toBe('upfront');
    expect(rec.overflow).toBe('nginx');
    expect(rec.procs).toBe(4); // the only error-free upfront (nginx) cell
    for (const c of r.cells) if (c.median) c.median.non2xx += 1;
    const fallback = recommend(r)!;
    expect(fallback.why).toMatch(/No upfront cell ran without errors/);
    expect(fallback.front).toBe('nginx');
  });

  it('says when the best is the largest count measured, and returns null without data', () => {
    const r = load();
    r.cells = r.cells.filter((c) => !(c.front === 'upfront' && c.procs !== 4));
    const rec = recommend(r)!;
    expect(rec.procs).toBe(4);
    expect(rec.why).toMatch(/best rate/);
    expect(rec.why).toMatch(/more processes may find more/);
    r.cells = r.cells.map((c) => ({ ...c, median: null, min: null, max: null, repeats: [], error: 'x' }));
    expect(recommend(r)).toBeNull();
  });
});

describe('renderTerminalTable', () => {
  it('has a row per series, a column per process count and the ratio rows', () => {
    const text = renderTerminalTable(load());
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^transaction rate \[1\/sec\]\s+1 proc\s+2 procs\s+4 procs\s+8 procs$/);
    expect(text).toMatch(/^nginx\s+2104\.6\s+3291\.3\s+3402\.8\s+failed$/m);
    expect(text).toMatch(/^upfront \(queue\)\s+1853\.2\s+3349\.7\s+3448\.1\s+-$/m);
    expect(text).toMatch(/^upfront \(nginx\)\s+1948\.5\s+3280\.4\s+3391\.0\s+-$/m);
    expect(text).toMatch(/^ratio upfront \(queue\)\/nginx\s+0\.88\s+1\.02\s+1\.01\s+-$/m);
    expect(text).toMatch(/^ratio upfront \(nginx\)\/nginx\s+0\.93\s+1\.00\s+1\.00\s+-$/m);
    expect(text).toMatch(/failed: nginx × 8: nginx exited during warm-up/);
    // aligned: every value column ends at the same offset
    const rows = lines.filter((l) => /^(nginx|upfront|ratio)/.test(l));
    const ends = new Set(rows.map((l) => l.length));
    expect(ends.size).toBe(1);
  });
});

describe('renderReportHtml (as text)', () => {
  it('escapes text and draws whiskers when there are repeats', () => {
    const r = withRepeats(load());
    r.command = 'upfront bench "<script>alert(1)</script>" & more';
    r.cells[r.cells.length - 1].error = '<img src=x onerror=alert(1)>';
    const html = renderReportHtml(r);
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('<img');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('&amp; more');
    expect(html.match(/class="whisker"/g)?.length).toBe(2 * 9); // 9 measured cells, rps + p99
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/); // no network references
  });
});

describe.skipIf(!hasChromium)('renderReportHtml in headless Chromium', () => {
  it('renders the charts and the table with no console errors and no requests', async () => {
    const { chromium } = await import('playwright-core');
    const results = load();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-report-'));
    const file = path.join(dir, 'report.html');
    fs.writeFileSync(file, renderReportHtml(results));
    const url = pathToFileURL(file).href;

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 20_000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1220, height: 900 } });
      page.setDefaultTimeout(10_000);
      const requests: string[] = [];
      const errors: string[] = [];
      page.on('request', (req) => requests.push(req.url()));
      page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
      page.on('pageerror', (err) => errors.push(String(err)));
      await page.goto(url, { waitUntil: 'load' });

      for (const id of ['chart-rps', 'chart-p99', 'chart-errors']) {
        expect(await page.locator(`svg#${id}.chart`).count()).toBe(1);
      }
      const nSeries = seriesCount(results);
      expect(nSeries).toBe(3);
      expect(await page.locator('#chart-rps .series').count()).toBe(nSeries);
      expect(await page.locator('#chart-p99 .series').count()).toBe(nSeries);
      // 9 measured cells × (errors, EAGAIN); nginx at 8 failed and has no bars
      expect(await page.locator('#chart-errors .bar').count()).toBe(18);
      expect(await page.locator('table.cells tbody tr').count()).toBe(results.cells.length);
      expect(await page.locator('table.cells tbody tr.failed').count()).toBe(1);
      expect(await page.locator('ul.failed li').textContent()).toContain('Address already in use');
      expect(await page.locator('.recommendation').textContent()).toContain('with 2 processes');
      // the lines are really drawn: the rps chart's polylines have extent
      const box = await page.locator('#chart-rps .series').first().boundingBox();
      expect(box && box.width > 100).toBe(true);

      await page.screenshot({ path: '/tmp/bench-report.png', fullPage: true });
      expect(errors).toEqual([]);
      expect(requests).toEqual([url]);
    } finally {
      await browser.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
