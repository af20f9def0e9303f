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
    // one row per cell: failures by kind, CPU µs per request of the front, the backends, the load
    // side and the machine (the last two not in this fixture's results: written before they were measured)
    expect(text).toMatch(/^1\s+nginx\s+2,105\*\s+1,452 \(non-2xx 1,452\)\s+41\s+452\s+-\s+-\s+1,452$/m);
    expect(text).toMatch(/^4\s+upfront \(queue\)\s+3,448 \s+0\s+87\s+448\s+-\s+-\s+0\s+1\.01\s+1\.01 nginx$/m);
    expect(text).toMatch(/^\* a request failed in this cell/m);
    expect(text).toMatch(/failed: nginx × 8: nginx exited during warm-up/);
    // aligned: the rate table's rows end at the same offset
    const rows = lines.slice(0, lines.indexOf('')).filter((l) => /^(nginx|upfront)/.test(l));
    expect(new Set(rows.map((l) => l.length)).size).toBe(1);
  });

  it('gives the load side\'s and the whole machine\'s busy CPU per request and how busy it was, where measured', () => {
    const r = load();
    const cell = r.cells.find((c) => c.front === 'upfront' && c.overflow === 'queue' && c.procs === 4)!;
    cell.median = { ...cell.median!, cpuMachineSecPer1000: 0.65, machineBusyPct: 96.6, cpuLoadSecPer1000: 0.021 };
    expect(renderTerminalTable(r)).toMatch(/^4\s+upfront \(queue\)\s+3,448 \s+0\s+87\s+448\s+21\s+650 \(97 %\)\s+0\s+1\.01\s+1\.01 nginx$/m);
    // report.html: where it went, line by line; the rest is what none of the three used (650 - 87 - 448 - 21)
    const html = renderReportHtml(r);
    expect(html).toContain('<td data-label="front µs">87</td><td data-label="backends µs">448</td><td data-label="load side µs">21</td><td data-label="the rest µs">94</td><td data-label="machine µs">650</td><td data-label="busy %">96.6</td>');
    // a cell from before the load side was measured: its budget says so
    expect(html).toMatch(/<td data-label="procs">1<\/td><td data-label="front" class="l">nginx<\/td><td data-label="front µs">41<\/td><td data-label="backends µs">452<\/td><td data-label="load side µs">-<\/td><td data-label="the rest µs">-<\/td><td data-label="machine µs">-<\/td><td data-label="busy %">-<\/td>/);
    // All cells carries them too, beside the front's and the backends'
    expect(html).toContain('<td data-label="front CPU µs/req">87</td><td data-label="backend CPU µs/req">448</td><td data-label="load side CPU µs/req">21</td><td data-label="machine CPU µs/req">650</td>');
    expect(html).toMatch(/<td data-label="front CPU µs\/req">41<\/td><td data-label="backend CPU µs\/req">452<\/td><td data-label="load side CPU µs\/req">-<\/td><td data-label="machine CPU µs\/req">-<\/td>/);
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

  it('names the protocol of HTTP cells in every series, ratio, skip line and the recommendation', () => {
    const r = manyFronts({ nginx: [4900, 7200], haproxy: [5100, 7000], upfront: [3000, 6000] });
    for (const c of r.cells) c.protocol = 'http';
    r.settings.protocol = 'http';
    r.skipped = [{ front: 'h2o', reason: 'not at 2 processes: one URL only' }];
    r.recommendation = recommend(r);
    const text = renderTerminalTable(r);
    expect(text).toMatch(/^nginx \(http\)\s+4900\.0\s+0\s+7200\.0\s+0$/m);
    expect(text).toMatch(/^upfront \(http, queue\)\s+3000\.0\s+0\s+6000\.0\s+0$/m);
    expect(text).toMatch(/^ratio upfront \(http, queue\)\/nginx \(http\)\s+0\.61\s+0\.83$/m);
    expect(text).toMatch(/^ratio upfront \(http, queue\)\/best peer\s+0\.59 haproxy \(http\)\s+0\.83 nginx \(http\)$/m);
    expect(text).toMatch(/^skipped: h2o \(http\): not at 2 processes: one URL only$/m);
    expect(r.recommendation).toMatchObject({ front: 'nginx', protocol: 'http', procs: 2 });
    expect(r.recommendation!.why).toMatch(/^nginx \(http\) wins, not upfront: nginx \(http\) with 2 processes/);
    const html = renderReportHtml(r);
    expect(html).toMatch(/<dt>protocol<\/dt><dd>http<\/dd>/);
    expect(html).toMatch(/<tr><td data-label="front" class="l">nginx \(http\)<\/td><td data-label="overflow" class="l">-<\/td><td data-label="procs">1<\/td>/);
    expect(html).toMatch(/Recommendation: nginx \(http\) with 2 processes/);
    // FastCGI cells (and results written before the field existed) keep their names
    expect(renderTerminalTable(manyFronts({ nginx: [4900, 7200], upfront: [5000, 8500] }))).toMatch(/^ratio upfront \(queue\)\/nginx\s+1\.02\s+1\.18$/m);
  });

  it('shows n/a for what siege cannot measure, not 0', () => {
    const r = manyFronts({ nginx: [4900, 7200], upfront: [5000, 8500] });
    r.settings.load = 'siege';
    for (const c of r.cells) for (const m of [...c.repeats, c.median!]) m.latencyMs = { p50: null, p90: null, p99: null, max: 310 };
    const html = renderReportHtml(r);
    expect(html).toMatch(/<td data-label="p50 ms">n\/a<\/td><td data-label="p90 ms">n\/a<\/td><td data-label="p99 ms">n\/a<\/td><td data-label="max ms">310<\/td>/);
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

  it('says under which CPU scheduling policy each side\'s processes ran', () => {
    const html = renderReportHtml(load());
    expect(html).toMatch(/<dt>scheduling<\/dt><dd>upfront runs itself and starts its processes under SCHED_BATCH \(its defaults, --front-sched-policy and --sched-policy\), itself at the weight of its processes \(nice -3 for 2, -6 for 4; its threads and, as it leads a session of its own here, its session: under autogroup scheduling the nice of a thread counts only within its session\) and its processes at the nice it was started with \(--front-nice, like the worker_priority of nginx, which the peers leave at 0\); the peers run under the policy they start with, their fronts and their processes/);
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

describe.skipIf(!hasChromium)('renderReportHtml, readable (Chromium)', () => {
  type Page = import('playwright-core').Page;
  /** Renders `results` to a file, opens it at `width`, runs `check`; no console error, no request but the page. */
  async function inChromium(results: BenchResults, width: number, check: (page: Page) => Promise<void>): Promise<void> {
    const { chromium } = await import('playwright-core');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-report-'));
    const file = path.join(dir, 'report.html');
    fs.writeFileSync(file, renderReportHtml(results));
    const browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true, timeout: 20_000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width, height: 900 } });
      page.setDefaultTimeout(10_000);
      const requests: string[] = [];
      const errors: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      await check(page);
      expect(errors).toEqual([]);
      expect(requests).toEqual([pathToFileURL(file).href]);
    } finally {
      await browser.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Every table fits its column (no sideways scrolling), and so does the page. */
  async function fits(page: Page, width: number): Promise<void> {
    const m = await page.evaluate(() => ({
      doc: document.documentElement.scrollWidth,
      tables: [...document.querySelectorAll('table.cells')].map((t) => ({ id: t.id, table: t.scrollWidth, room: (t.parentElement as HTMLElement).clientWidth })),
    }));
    expect(m.doc, 'page width').toBeLessThanOrEqual(width);
    for (const t of m.tables) expect(t.table, t.id).toBeLessThanOrEqual(t.room);
    expect(m.tables.length).toBe(4);
  }

  function sweep(): BenchResults {
    const r = manyFronts({ nginx: [4900, 7200], h2o: [4800, 8900], haproxy: [4700, 8600], upfront: [5000, 8500] });
    r.settings.backlog = 128;
    Object.assign(r.machine, { h2o: 'h2o version 2.2.6', haproxy: 'HAProxy version 2.6.12', python: 'Python 3.11.2', loadTool: 'wrk 4.1.0 [epoll]' });
    return r;
  }

  it('the fixture at 1400 px: the ratio to the best peer, CPU and failures charts, versions, backlog and links, tables that fit', async () => {
    const results = load();
    results.settings.backlog = 1024;
    results.machine.python = 'Python 3.11.2';
    results.machine.loadTool = 'autocannon 8.0.0';
    await inChromium(results, 1400, async (page) => {
      expect(await page.locator('#upfront-ratio').textContent()).toMatch(/^upfront ÷ the best peer: 1\.01× — upfront \(queue\) with 4 processes, 3,448 req\/s, against nginx with 4 processes, 3,403 req\/s\.$/);
      expect(await page.locator('#chart-cpu .series').count()).toBe(3);
      expect(await page.locator('#chart-errors').count()).toBe(1); // requests failed in 4 cells
      expect(await page.locator('#failures-chart-note').textContent()).toContain("Backend sockets' backlog: 1024");
      const meta = Object.fromEntries(await page.locator('dl.meta dt').evaluateAll((dts) => dts.map((dt) => [dt.textContent, dt.nextElementSibling?.textContent])));
      expect(meta).toMatchObject({ node: 'v20.19.2', nginx: 'nginx/1.22.1', python: 'Python 3.11.2', 'load tool': 'autocannon 8.0.0', backlog: "1024 (every front's backend sockets)" });
      expect(await page.locator('#files a').evaluateAll((as) => as.map((a) => a.getAttribute('href')))).toEqual(['results.json', 'nginx.conf']);
      await fits(page, 1400);
    });
  }, 30_000);

  it('a peer that wins is said so, with upfront\'s ratio below 1; no failures: no failures chart; fits a phone', async () => {
    await inChromium(sweep(), 390, async (page) => {
      expect(await page.locator('.recommendation.peer-wins').textContent()).toMatch(/^Recommendation: h2o with 2 processes, 8,900 req\/s\. h2o wins, not upfront/);
      expect(await page.locator('#upfront-ratio').textContent()).toMatch(/0\.96× — upfront \(queue\) with 2 processes, 8,500 req\/s, against h2o with 2 processes, 8,900 req\/s \(h2o is faster\)/);
      expect(await page.locator('#chart-errors').count()).toBe(0);
      expect(await page.locator('#no-failures').textContent()).toMatch(/No request failed and no connect\(\) met EAGAIN in any cell \(backlog 128\)/);
      expect(await page.locator('#files a').allTextContents()).toEqual(['results.json', 'nginx.conf', 'h2o.conf', 'haproxy.cfg']);
      await fits(page, 390);
      // On a phone each row is a card: every value next to its column's name.
      const first = page.locator('#all-cells tbody tr').first().locator('td');
      expect(await first.first().getAttribute('data-label')).toBe('front');
      expect(await first.nth(4).evaluate((td) => getComputedStyle(td, '::before').content)).toBe('"req/s median [min–max]"');
    });
  }, 30_000);

  it('p99 stays readable when one series is 20× the others: a log scale', async () => {
    const r = sweep();
    for (const c of r.cells) {
      const p99 = c.front === 'nginx' ? [2000, 2400][c.procs - 1] : c.front === 'upfront' ? [60, 100][c.procs - 1] : [70, 110][c.procs - 1];
      for (const m of [...c.repeats, c.median!, c.min!, c.max!]) m.latencyMs.p99 = p99;
    }
    const linear = sweep(); // the same rates, p99 all 30 ms: linear
    await inChromium(r, 1400, async (page) => {
      expect(await page.locator('#chart-p99').getAttribute('data-scale')).toBe('log');
      expect(await page.locator('#chart-p99').textContent()).toContain('ms (log scale)');
      const ys = await page.locator('#chart-p99 .series[data-series="upfront (queue)"]').evaluate((pl) => (pl.getAttribute('points') ?? '').split(' ').map((p) => Number(p.split(',')[1])));
      expect(Math.abs(ys[0] - ys[1])).toBeGreaterThan(20); // 60 → 100 ms is visible beside 2,400
    });
    await inChromium(linear, 1400, async (page) => {
      expect(await page.locator('#chart-p99').getAttribute('data-scale')).toBe('linear');
    });
  }, 40_000);
});
