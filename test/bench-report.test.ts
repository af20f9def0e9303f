// The bench report: medians over repeats, the recommendation, the terminal
// table, and the HTML page opened in headless Chromium (no network, no errors).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bestPeer, recommend, renderReportHtml, renderTerminalTable } from '../src/bench/report.js';
import { summarize, withTotal, type BenchResults, type Cell, type CellMetrics } from '../src/bench/results.js';
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
    failures: withTotal({ connect: 0, read: 0, write: 0, timeout: 0, non2xx: 0, other: 0 }),
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

/** A request failed in every run of the cell (a timeout each). */
function failOnce(c: Cell): void {
  for (const m of [...c.repeats, ...(c.median ? [c.median] : [])]) { m.failures.timeout += 1; m.failures.total += 1; }
}

/** A measured cell of a front at a process count, one run. */
function cellOf(front: Cell['front'], procs: number, m: CellMetrics, overflow: string | null = front === 'upfront' ? 'queue' : null): Cell {
  return { front, overflow, procs, switches: { multithreaded: false, multiplexed: false }, repeats: [m], ...summarize([m]), error: null };
}

/** A sweep of several fronts at procs 1 and 2 (rates per front and count). */
function manyFronts(rates: Record<string, [number, number]>): BenchResults {
  const r = load();
  r.cells = Object.entries(rates).flatMap(([front, [one, two]]) => [cellOf(front as Cell['front'], 1, metrics(one)), cellOf(front as Cell['front'], 2, metrics(two))]);
  r.recommendation = null;
  return r;
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

  it('leaves cells with failed requests out; says plainly when a peer wins; falls back to every cell when none is clean', () => {
    const r = load();
    // make the clean upfront (queue) series the worst: upfront (nginx) has failures at 1 and 2
    for (const c of r.cells) if (c.front === 'upfront' && c.overflow === 'queue' && c.median) c.median.rps /= 2;
    const rec = recommend(r)!;
    // nginx at 4 (clean, 3,403) now beats upfront (nginx) at 4 (clean, 3,391)
    expect(rec).toMatchObject({ front: 'nginx', procs: 4 });
    expect(rec.why).toMatch(/^nginx wins, not upfront: nginx with 4 processes gives the best rate, 3,403 req\/s/);
    expect(rec.why).toMatch(/upfront's best, upfront \(nginx\) with 4 processes, serves 3,391 req\/s \(1\.00× nginx\)/);
    for (const c of r.cells) if (c.median) failOnce(c);
    const fallback = recommend(r)!;
    expect(fallback.why).toMatch(/Every cell had failed requests/);
    expect(fallback.front).toBe('nginx');
  });

  it('compares every front: the best peer is named, whoever wins', () => {
    const peerWins = recommend(manyFronts({ nginx: [4900, 7200], h2o: [4800, 8900], haproxy: [4700, 8600], upfront: [5000, 8500] }))!;
    expect(peerWins).toMatchObject({ front: 'h2o', procs: 2, rps: 8900 });
    expect(peerWins.why).toMatch(/^h2o wins, not upfront: h2o with 2 processes gives the best rate, 8,900 req\/s/);
    expect(peerWins.why).toMatch(/upfront's best, upfront \(queue\) with 2 processes, serves 8,500 req\/s \(0\.96× h2o\)/);

    const upfrontWins = recommend(manyFronts({ nginx: [4900, 7200], h2o: [4800, 8900], upfront: [5000, 9800] }))!;
    expect(upfrontWins).toMatchObject({ front: 'upfront', procs: 2 });
    expect(upfrontWins.why).toMatch(/The best other front, h2o with 2 processes, serves 8,900 req\/s: upfront's best is 1\.10× that/);

    // a peer that answered fast with failures is not the best peer
    const r = manyFronts({ nginx: [4900, 7200], lighttpd: [9000, 9900], upfront: [5000, 8000] });
    for (const c of r.cells) if (c.front === 'lighttpd') failOnce(c);
    expect(bestPeer(r, 2)?.front).toBe('nginx');
    expect(recommend(r)).toMatchObject({ front: 'upfront' });
    expect(recommend(r)!.why).toMatch(/The best other front, nginx with 2 processes, serves 7,200 req\/s/);
    for (const c of r.cells) if (c.front === 'nginx') failOnce(c);
    expect(bestPeer(r, 2)?.front).toBe('lighttpd'); // every peer failed some: the fastest, marked
    expect(recommend(r)!.why).toMatch(/Every other front had failed requests \(the fastest, lighttpd with 2 processes, served 9,900\* req\/s with 1 failed\)/);
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
  it('has a row per series, rate and failures per process count, the ratio rows, and marks cells with failures', () => {
    const text = renderTerminalTable(load());
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^transaction rate \[1\/sec\]\s+1 proc\s+failed\s+2 procs\s+failed\s+4 procs\s+failed\s+8 procs\s+failed$/);
    expect(text).toMatch(/^nginx\s+2104\.6\*\s+1452\s+3291\.3\*\s+118\s+3402\.8 \s+0\s+failed$/m);
    expect(text).toMatch(/^upfront \(queue\)\s+1853\.2 \s+0\s+3349\.7 \s+0\s+3448\.1 \s+0\s+-$/m);
    expect(text).toMatch(/^upfront \(nginx\)\s+1948\.5\*\s+1297\s+3280\.4\*\s+131\s+3391\.0 \s+0\s+-$/m);
    expect(text).toMatch(/^ratio upfront \(queue\)\/nginx\s+0\.88 \s+1\.02 \s+1\.01 \s+-$/m);
    expect(text).toMatch(/^ratio upfront \(nginx\)\/nginx\s+0\.93 \s+1\.00 \s+1\.00 \s+-$/m);
    // the best peer is named, and starred when it failed requests itself
    expect(text).toMatch(/^ratio upfront \(queue\)\/best peer\s+0\.88 nginx\*\s+1\.02 nginx\*\s+1\.01 nginx\s+-$/m);
    // one row per cell: failures by kind, CPU µs per request of the front
    expect(text).toMatch(/^1\s+nginx\s+2,105\*\s+1,452 \(non-2xx 1,452\)\s+41\s+452\s+1,452$/m);
    expect(text).toMatch(/^4\s+upfront \(queue\)\s+3,448 \s+0\s+87\s+448\s+0\s+1\.01\s+1\.01 nginx$/m);
    expect(text).toMatch(/^\* a request failed in this cell/m);
    expect(text).toMatch(/failed: nginx × 8: nginx exited during warm-up/);
    // aligned: the rate table's rows end at the same offset
    const rows = lines.slice(0, lines.indexOf('')).filter((l) => /^(nginx|upfront)/.test(l));
    expect(new Set(rows.map((l) => l.length)).size).toBe(1);
  });

  it('has no marker or footnote when every request succeeded, and names skipped fronts', () => {
    const r = manyFronts({ nginx: [4900, 7200], h2o: [4800, 8900], caddy: [4400, 4800], upfront: [5000, 8500] });
    r.skipped = [{ front: 'haproxy', reason: 'haproxy is not installed: apt-get install haproxy' }];
    const text = renderTerminalTable(r);
    expect(text).not.toMatch(/\*/);
    expect(text).toMatch(/^nginx\s+4900\.0\s+0\s+7200\.0\s+0$/m);
    expect(text).toMatch(/^ratio upfront \(queue\)\/best peer\s+1\.02 nginx\s+0\.96 h2o$/m);
    expect(text).toMatch(/^skipped: haproxy: haproxy is not installed: apt-get install haproxy$/m);
    // the peers in their order, then upfront
    expect(text.split('\n').slice(2, 6).map((l) => l.split(/\s+/)[0])).toEqual(['nginx', 'h2o', 'caddy', 'upfront']);
  });

  it('shows n/a for what siege cannot measure, not 0', () => {
    const r = manyFronts({ nginx: [4900, 7200], upfront: [5000, 8500] });
    r.settings.load = 'siege';
    for (const c of r.cells) for (const m of [...c.repeats, c.median!]) m.latencyMs = { p50: null, p90: null, p99: null, max: 310 };
    const html = renderReportHtml(r);
    expect(html).toMatch(/<td>n\/a<\/td><td>n\/a<\/td><td>n\/a<\/td><td>310<\/td>/);
    expect(recommend(r)!.why).toMatch(/the load tool gave no p50/);
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
      expect(await page.locator('#all-cells tbody tr').count()).toBe(results.cells.length);
      expect(await page.locator('#all-cells tbody tr.failed').count()).toBe(1);
      // cells with failed requests: the row marked, a visible * next to the rate, the failures beside it
      expect(await page.locator('#all-cells tbody tr.has-failures').count()).toBe(4);
      expect(await page.locator('#all-cells tbody tr.has-failures .failed-requests-mark').first().isVisible()).toBe(true);
      expect(await page.locator('#all-cells tbody tr.has-failures td.failures').first().textContent()).toBe('1,452 (non-2xx 1,452)');
      expect(await page.locator('.failures-note').isVisible()).toBe(true);
      expect(await page.locator('#chart-rps .failed-requests').count()).toBe(4);
      // the peers table: per process count, nginx, the best peer named, upfront's ratios to both
      expect(await page.locator('#peers tbody tr').count()).toBe(4);
      expect(await page.locator('#peers tbody tr').nth(2).textContent()).toContain('1.01 (nginx)');
      expect(await page.locator('#cpu tbody tr').count()).toBe(nSeries);
      expect(await page.locator('ul.failed li').textContent()).toContain('Address already in use');
      expect(await page.locator('.recommendation').textContent()).toContain('with 2 processes');
      // the lines are really drawn: the rps chart's polylines have extent
      const box = await page.locator('#chart-rps .series').first().boundingBox();
      expect(box && box.width > 100).toBe(true);

      await page.screenshot({ path: path.join(dir, 'bench-report.png'), fullPage: true }); // inside dir: removed below
      expect(errors).toEqual([]);
      expect(requests).toEqual([url]);
    } finally {
      await browser.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
