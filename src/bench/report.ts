// Reports of `upfront bench`: a self-contained HTML page (inline SVG charts, no
// scripts, no network), the 2011-shaped terminal tables, and the recommendation.
// Every rate is shown next to the requests that failed in its cell, and a cell
// with any failed request is marked (`*`): its rate counts requests that failed.
import { PEERS } from './fronts/index.js';
import { failuresOfCell, PEER_FRONTS, type BenchResults, type Cell, type CellMetrics, type Failures, type PeerFrontName } from './results.js';

// ---------------------------------------------------------------- series

interface Series {
  key: string;
  label: string;
  front: Cell['front'];
  overflow: string | null;
  switchesKey: string;
  /** procs → cell (first cell wins if a sweep ever produced two). */
  cells: Map<number, Cell>;
}

function switchesKey(c: Cell): string {
  const parts: string[] = [];
  if (c.switches?.multithreaded) parts.push('multithreaded');
  if (c.switches?.multiplexed) parts.push('multiplexed');
  const sw = parts.join(', ');
  // Next to hand-set switches in one sweep, auto's cells stay a series of their own.
  if (c.switchesAuto) return sw ? `auto: ${sw}` : 'auto';
  return sw;
}

/** HTTP cells say so; FastCGI, the default (and all there was before), goes unsaid. */
function protocolWords(c: Pick<Cell, 'protocol'>): string[] {
  return c.protocol === 'http' ? ['http'] : [];
}

/** A front with its protocol: "nginx", "nginx (http)". */
export function frontName(c: Pick<Cell, 'front' | 'protocol'>): string {
  const p = protocolWords(c);
  return p.length ? `${c.front} (${p.join(', ')})` : c.front;
}

/** "nginx", "h2o", "nginx (http)", "upfront (queue)", "upfront (http, queue)", "upfront (nginx, multiplexed)", ... */
export function seriesLabel(c: Cell): string {
  const sw = switchesKey(c);
  const words = c.front === 'upfront' ? [...protocolWords(c), c.overflow ?? 'default'] : protocolWords(c);
  if (sw) words.push(sw);
  return words.length ? `${c.front} (${words.join(', ')})` : c.front;
}

const PEER_ORDER: readonly string[] = PEER_FRONTS;

/** Series in a stable order: the peers (nginx first, as PEER_FRONTS lists them), then upfront's in order of appearance. */
function buildSeries(results: BenchResults): Series[] {
  const byKey = new Map<string, Series>();
  for (const c of results.cells) {
    const label = seriesLabel(c);
    let s = byKey.get(label);
    if (!s) {
      s = { key: label, label, front: c.front, overflow: c.overflow, switchesKey: switchesKey(c), cells: new Map() };
      byKey.set(label, s);
    }
    if (!s.cells.has(c.procs)) s.cells.set(c.procs, c);
  }
  const all = [...byKey.values()];
  const peers = all.filter((s) => s.front !== 'upfront').sort((a, b) => PEER_ORDER.indexOf(a.front) - PEER_ORDER.indexOf(b.front));
  return [...peers, ...all.filter((s) => s.front === 'upfront')];
}

function procsList(results: BenchResults): number[] {
  return [...new Set(results.cells.map((c) => c.procs))].sort((a, b) => a - b);
}

type Measured = Cell & { median: CellMetrics };

function ok(c: Cell | undefined): c is Measured {
  return !!c && c.error === null && c.median !== null;
}

/** A request failed in some run of this cell: its rate is marked. */
export function hasFailures(c: Cell): boolean {
  return failuresOfCell(c) > 0;
}

/** The nginx series to compare an upfront series with: same switches if there is one. */
function nginxFor(series: Series[], s: Series): Series | undefined {
  const nginx = series.filter((x) => x.front === 'nginx');
  return nginx.find((x) => x.switchesKey === s.switchesKey) ?? nginx.find((x) => x.switchesKey === '') ?? nginx[0];
}

/**
 * The best front other than upfront at a process count: the highest rate among
 * its cells without a failed request (among all of them, marked, when every one
 * failed some).
 */
export function bestPeer(results: BenchResults, procs: number): Measured | undefined {
  const peers = results.cells.filter((c): c is Measured => c.front !== 'upfront' && c.procs === procs && ok(c));
  const clean = peers.filter((c) => !hasFailures(c));
  const pool = clean.length > 0 ? clean : peers;
  return pool.reduce<Measured | undefined>((a, b) => (!a || b.median.rps > a.median.rps ? b : a), undefined);
}

/** The best peer's name, starred when it had failed requests itself. */
function peerName(c: Measured): string {
  return `${seriesLabel(c)}${hasFailures(c) ? '*' : ''}`;
}

// ---------------------------------------------------------------- formatting

function esc(s: unknown): string {
  return String(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function groupThousands(intPart: string): string {
  return intPart.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** 10890.4 → "10,890" */
export function fmtInt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const r = Math.round(n);
  return (r < 0 ? '-' : '') + groupThousands(String(Math.abs(r)));
}

function fmtFixed(n: number, digits: number): string {
  if (!Number.isFinite(n)) return String(n);
  const [i, f] = Math.abs(n).toFixed(digits).split('.');
  return (n < 0 ? '-' : '') + groupThousands(i) + (f ? '.' + f : '');
}

function fmtMs(n: number | null): string {
  if (n === null) return 'n/a';
  return n < 100 ? fmtFixed(n, 1) : fmtInt(n);
}

function fmtOpt(n: number | null): string {
  return n === null ? 'n/a' : fmtInt(n);
}

/** CPU seconds per 1000 requests → µs per request. */
function usPerRequest(secPer1000: number): number {
  return secPer1000 * 1000;
}

/** The load side's CPU per request (µs); "-" where not measured. */
function loadCpuText(m: CellMetrics): string {
  return m.cpuLoadSecPer1000 == null ? '-' : fmtInt(usPerRequest(m.cpuLoadSecPer1000));
}

/** "131 (97 %)": the whole machine's busy CPU per request, and how busy it was; "-" where not measured. */
function machineCpuText(m: CellMetrics): string {
  if (m.cpuMachineSecPer1000 == null) return '-';
  return `${fmtInt(usPerRequest(m.cpuMachineSecPer1000))}${m.machineBusyPct == null ? '' : ` (${Math.round(m.machineBusyPct)} %)`}`;
}

function procsWord(n: number): string {
  return `${n} ${n === 1 ? 'process' : 'processes'}`;
}

function ratio(a: number, b: number): string {
  return (a / b).toFixed(2);
}

const FAILURE_KINDS: Array<[Exclude<keyof Failures, 'total'>, string]> = [
  ['connect', 'connect'], ['read', 'read'], ['write', 'write'], ['timeout', 'timeout'], ['non2xx', 'non-2xx'], ['other', 'other'],
];

/** Failed requests of a cell summed over its runs, by kind. */
function failuresSum(c: Cell): Failures {
  const sum: Failures = { connect: 0, read: 0, write: 0, timeout: 0, non2xx: 0, other: 0, total: 0 };
  for (const m of c.repeats) for (const k of Object.keys(sum) as Array<keyof Failures>) sum[k] += m.failures[k];
  return sum;
}

/** "0" or "1,452 (non-2xx 1,452)" or "12 (connect 2, timeout 10)". */
export function describeFailures(c: Cell): string {
  const f = failuresSum(c);
  if (f.total === 0) return '0';
  const kinds = FAILURE_KINDS.filter(([k]) => f[k] > 0).map(([k, name]) => `${name} ${fmtInt(f[k])}`);
  return `${fmtInt(f.total)} (${kinds.join(', ')})`;
}

const FAILURE_NOTE = '* a request failed in this cell (timeout, socket error or failing status, in any run): its rate counts it; see the failures.';

// ---------------------------------------------------------------- recommendation

/**
 * Among the cells without a failed request (falling back to every measured
 * cell), find the front with the best median rate — upfront or a peer — take
 * that front's smallest process count within 5% of it, compare it with the best
 * of the others, and explain the choice with Little's law.
 */
export function recommend(results: BenchResults): BenchResults['recommendation'] {
  const measured = results.cells.filter(ok);
  const clean = measured.filter((c) => !hasFailures(c));
  const pool = clean.length > 0 ? clean : measured;
  if (pool.length === 0) return null;

  const byRate = (a: Measured, b: Measured) => (b.median.rps > a.median.rps || (b.median.rps === a.median.rps && b.procs < a.procs) ? b : a);
  const best = pool.reduce(byRate);
  const same = pool.filter((c) => c.front === best.front);
  const near = same.filter((c) => c.median.rps >= 0.95 * best.median.rps);
  const minProcs = Math.min(...near.map((c) => c.procs));
  const chosen = near.filter((c) => c.procs === minProcs).reduce((a, b) => (b.median.rps > a.median.rps ? b : a));

  const m = chosen.median;
  const rps = m.rps;
  const conc = results.settings.concurrency;
  const label = seriesLabel(chosen);
  const parts: string[] = [];

  if (clean.length === 0) parts.push('Every cell had failed requests, so this is chosen among all of them; read the failures.');
  else if (measured.some((c) => c.front === 'upfront') && !clean.some((c) => c.front === 'upfront')) parts.push('Every upfront cell had failed requests; they are left out.');

  // A peer that wins is said first, plainly.
  const upfrontBest = pool.filter((c) => c.front === 'upfront').reduce<Measured | undefined>((x, y) => (x ? byRate(x, y) : y), undefined);
  const peerWins = best.front !== 'upfront';
  const lead = peerWins ? `${frontName(best)} wins, not upfront: ` : '';
  if (chosen === best) {
    const smaller = same.filter((c) => c.procs < chosen.procs).sort((a, b) => b.procs - a.procs || b.median.rps - a.median.rps)[0];
    parts.push(
      `${lead}${label} with ${procsWord(chosen.procs)} gives the best rate, ${fmtInt(rps)} req/s` +
        (smaller
          ? `; ${procsWord(smaller.procs)} ${smaller.procs === 1 ? 'reaches' : 'reach'} only ${fmtInt(smaller.median.rps)} req/s (${fmtFixed((1 - smaller.median.rps / rps) * 100, 0)}% less).`
          : '.'),
    );
  } else {
    parts.push(
      `${lead}${label} with ${procsWord(chosen.procs)} reaches ${fmtInt(rps)} req/s, within 5% of the best ` +
        `(${fmtInt(best.median.rps)} at ${best.procs}${seriesLabel(best) === label ? '' : `, ${seriesLabel(best)}`}).`,
    );
  }

  // Every front is compared with the winner.
  if (peerWins) {
    parts.push(
      upfrontBest
        ? `upfront's best, ${seriesLabel(upfrontBest)} with ${procsWord(upfrontBest.procs)}, serves ${fmtInt(upfrontBest.median.rps)} req/s (${ratio(upfrontBest.median.rps, best.median.rps)}× ${frontName(best)}).`
        : measured.some((c) => c.front === 'upfront')
          ? 'No upfront cell ran without failed requests.'
          : 'No upfront cell was measured.',
    );
  } else {
    const peers = pool.filter((c) => c.front !== 'upfront');
    const peer = peers.reduce<Measured | undefined>((x, y) => (x ? byRate(x, y) : y), undefined);
    const failing = measured.filter((c) => c.front !== 'upfront' && hasFailures(c)).reduce<Measured | undefined>((x, y) => (x ? byRate(x, y) : y), undefined);
    if (peer) {
      parts.push(`The best other front, ${seriesLabel(peer)} with ${procsWord(peer.procs)}, serves ${fmtInt(peer.median.rps)} req/s: upfront's best is ${ratio(best.median.rps, peer.median.rps)}× that.`);
    } else if (failing) {
      parts.push(`Every other front had failed requests (the fastest, ${seriesLabel(failing)} with ${procsWord(failing.procs)}, served ${fmtInt(failing.median.rps)}* req/s with ${fmtInt(failuresOfCell(failing))} failed).`);
    }
  }

  if (rps > 0 && conc > 0) {
    const inSystemMs = (conc / rps) * 1000;
    const perServiceMs = (chosen.procs / rps) * 1000;
    let little =
      `By Little's law ${fmtInt(conc)} concurrent requests at ${fmtInt(rps)} req/s spend ${fmtMs(inSystemMs)} ms each in the system ` +
      (m.latencyMs.p50 !== null ? `(measured p50: ${fmtMs(m.latencyMs.p50)} ms)` : '(the load tool gave no p50)') +
      `, while ${procsWord(chosen.procs)} serving ${fmtInt(rps)} req/s can spend at most ${fmtMs(perServiceMs)} ms on each`;
    little +=
      chosen === best && chosen.procs === Math.max(...same.map((c) => c.procs))
        ? '; the largest count measured is the best, so a sweep with more processes may find more.'
        : perServiceMs < inSystemMs
          ? ': the rest is waiting, so more processes add queueing, not throughput.'
          : '.';
    parts.push(little);
  }
  return { front: chosen.front, ...(chosen.protocol ? { protocol: chosen.protocol } : {}), overflow: chosen.overflow, procs: chosen.procs, rps, why: parts.join(' ') };
}

// ---------------------------------------------------------------- terminal tables

/** Aligned columns: text left (the first `leftCols`, and any listed in `alsoLeft`), numbers right. */
function renderRows(rows: string[][], leftCols = 1, alsoLeft: number[] = []): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const left = (i: number) => i < leftCols || alsoLeft.includes(i);
  const line = (r: string[]): string => r.map((v, i) => (left(i) ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ').trimEnd();
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map((r) => (r.length === 0 ? '' : line(r)))];
}

/** A rate with its marker; unmarked rates get a space so the digits stay aligned. */
function markedRate(c: Measured, text: string, anyMarked: boolean): string {
  return hasFailures(c) ? `${text}*` : anyMarked ? `${text} ` : text;
}

/**
 * Two tables. The 2011 shape: rows are series, columns process counts, cells the
 * median transaction rate next to the requests that failed in that cell; then
 * the ratio rows (each upfront series ÷ nginx, ÷ the best other front, named).
 * Then one row per cell: rate, failures by kind, CPU µs per request of the front
 * and of the backends, EAGAIN, and the ratios again.
 */
export function renderTerminalTable(results: BenchResults): string {
  const series = buildSeries(results);
  const procs = procsList(results);
  const anyMarked = results.cells.some((c) => ok(c) && hasFailures(c));
  const out: string[] = [];

  const head = ['transaction rate [1/sec]'];
  for (const p of procs) head.push(procsWord(p).replace('processes', 'procs').replace('process', 'proc'), 'failed');
  const rows: string[][] = [head];
  for (const s of series) {
    const row = [s.label];
    for (const p of procs) {
      const c = s.cells.get(p);
      if (!c) row.push('-', '');
      else if (!ok(c)) row.push('failed', '');
      else row.push(markedRate(c, fmtFixed(c.median.rps, 1).replace(/,/g, ''), anyMarked), String(failuresOfCell(c)));
    }
    rows.push(row);
  }
  const upfront = series.filter((x) => x.front === 'upfront');
  if (upfront.length > 0) rows.push([]);
  for (const s of upfront) {
    const ng = nginxFor(series, s);
    const row = [s.label.replace(/^upfront/, 'ratio upfront') + '/' + (ng?.label ?? 'nginx')];
    for (const p of procs) {
      const u = s.cells.get(p);
      const n = ng?.cells.get(p);
      row.push(ok(u) && ok(n) && n.median.rps > 0 ? ratio(u.median.rps, n.median.rps) + (anyMarked ? ' ' : '') : '-', '');
    }
    rows.push(row);
  }
  for (const s of upfront) {
    const row = [s.label.replace(/^upfront/, 'ratio upfront') + '/best peer'];
    for (const p of procs) {
      const u = s.cells.get(p);
      const b = bestPeer(results, p);
      row.push(ok(u) && b && b.median.rps > 0 ? `${ratio(u.median.rps, b.median.rps)} ${peerName(b)}` : '-', '');
    }
    rows.push(row);
  }
  out.push(...renderRows(rows));

  // One row per cell.
  const detail: string[][] = [['procs', 'front', 'req/s', 'failed', 'front CPU µs/req', 'backend CPU µs/req', 'load CPU µs/req', 'machine µs/req (busy)', 'EAGAIN', 'vs nginx', 'vs best peer']];
  for (const p of procs) {
    const best = bestPeer(results, p);
    for (const s of series) {
      const c = s.cells.get(p);
      if (!c) continue;
      if (!ok(c)) { detail.push([String(p), s.label, 'failed', '', '', '', '', '', '', '', '']); continue; }
      const m = c.median;
      const ng = nginxFor(series, s)?.cells.get(p);
      detail.push([
        String(p), s.label, markedRate(c, fmtInt(m.rps), anyMarked), describeFailures(c),
        fmtInt(usPerRequest(m.cpuFrontSecPer1000)), fmtInt(usPerRequest(m.cpuBackendSecPer1000)), loadCpuText(m), machineCpuText(m), fmtOpt(m.eagain),
        s.front === 'upfront' && ok(ng) && ng.median.rps > 0 ? ratio(m.rps, ng.median.rps) : '',
        s.front === 'upfront' && best && best.median.rps > 0 ? `${ratio(m.rps, best.median.rps)} ${peerName(best)}` : '',
      ]);
    }
  }
  out.push('', ...renderRows(detail, 2, [detail[0].length - 1]));

  if (anyMarked) out.push('', FAILURE_NOTE);
  out.push('best peer: the fastest front other than upfront at that process count, among its cells without a failed request.');
  for (const sk of results.skipped ?? []) out.push(`skipped: ${frontName({ front: sk.front, protocol: results.settings.protocol })}: ${sk.reason}`);
  for (const c of results.cells) if (!ok(c)) out.push(`failed: ${seriesLabel(c)} × ${c.procs}: ${c.error ?? 'no measurements'}`);
  for (const c of results.cells) for (const n of c.notes ?? []) out.push(`note: ${seriesLabel(c)} × ${c.procs}: ${n}`);
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------- SVG charts

// Each peer keeps its colour (nginx its green); upfront series take the others in order.
const PEER_COLORS: Record<string, string> = { nginx: '#1a9850', h2o: '#1f78b4', haproxy: '#a6761d', lighttpd: '#666666', caddy: '#e6ab02' };
const UPFRONT_COLORS = ['#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e41a1c', '#17becf'];

function colorOf(series: Series[], s: Series): string {
  if (s.front !== 'upfront') return PEER_COLORS[s.front] ?? '#999999';
  const i = series.filter((x) => x.front === 'upfront').indexOf(s);
  return UPFRONT_COLORS[i % UPFRONT_COLORS.length];
}

function niceTicks(max: number, integer: boolean, count = 5): number[] {
  if (!(max > 0)) max = integer ? 1 : 1;
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  let step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const top = Math.ceil(max / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function fmtTick(v: number): string {
  if (v >= 1000) return fmtInt(v);
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3)));
}

/** A chart turns logarithmic when its largest value is this many times its smallest (one series 20× the others). */
const LOG_FROM = 10;

const W = 820;
const H = 340;
const M = { left: 72, right: 230, top: 36, bottom: 52 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

interface Frame {
  x: (i: number) => number;
  y: (v: number) => number;
  svgOpen: string;
  axes: string;
}

/** A y axis: linear from 0 to its last tick, or logarithmic between its first and last tick. */
interface YScale {
  ticks: number[];
  log: boolean;
}

/** Ticks 1, 2, 5 × 10^k from the last one ≤ lo to the first one ≥ hi (both > 0). */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let k = Math.floor(Math.log10(lo)); ; k++) {
    for (const m of [1, 2, 5]) {
      const v = Number((m * 10 ** k).toPrecision(6));
      ticks.push(v);
      if (v >= hi) {
        while (ticks.length > 1 && ticks[1] <= lo) ticks.shift();
        return ticks;
      }
    }
  }
}

function frame(id: string, title: string, yLabel: string, xLabels: string[], xTitle: string, ticks: number[], log = false): Frame {
  const n = Math.max(1, xLabels.length);
  const top = ticks[ticks.length - 1] || 1;
  const bottom = ticks[0] || 1;
  const x = (i: number): number => M.left + ((i + 0.5) * PW) / n;
  const y = log
    ? (v: number): number => M.top + PH - ((Math.log10(Math.max(bottom, v)) - Math.log10(bottom)) / (Math.log10(top) - Math.log10(bottom) || 1)) * PH
    : (v: number): number => M.top + PH - (Math.max(0, v) / top) * PH;
  const parts: string[] = [];
  parts.push(`<text class="title" x="${M.left}" y="20">${esc(title)}</text>`);
  for (const t of ticks) {
    const ty = y(t).toFixed(1);
    parts.push(`<line class="grid" x1="${M.left}" x2="${M.left + PW}" y1="${ty}" y2="${ty}"/>`);
    parts.push(`<text class="tick" x="${M.left - 6}" y="${ty}" text-anchor="end" dominant-baseline="middle">${esc(fmtTick(t))}</text>`);
  }
  parts.push(`<line class="axis" x1="${M.left}" x2="${M.left + PW}" y1="${M.top + PH}" y2="${M.top + PH}"/>`);
  parts.push(`<line class="axis" x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + PH}"/>`);
  xLabels.forEach((l, i) => {
    parts.push(`<text class="tick" x="${x(i).toFixed(1)}" y="${M.top + PH + 16}" text-anchor="middle">${esc(l)}</text>`);
  });
  parts.push(`<text class="axis-title" x="${M.left + PW / 2}" y="${H - 8}" text-anchor="middle">${esc(xTitle)}</text>`);
  parts.push(
    `<text class="axis-title" transform="translate(16 ${M.top + PH / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  );
  const svgOpen = `<svg id="${esc(id)}" class="chart" data-scale="${log ? 'log' : 'linear'}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">`;
  return { x, y, svgOpen, axes: parts.join('\n') };
}

/** A red "× <series> failed" above the axis where a cell has no measurements. */
function failedMarks(results: BenchResults, procs: number[], f: Frame): string {
  const out: string[] = [];
  procs.forEach((p, i) => {
    results.cells
      .filter((c) => c.procs === p && !ok(c))
      .forEach((c, k) => {
        const tip = `${seriesLabel(c)}, ${procsWord(p)}: ${c.error ?? 'no measurements'}`;
        out.push(
          `<text class="failed-mark" x="${f.x(i).toFixed(1)}" y="${M.top + PH - 8 - k * 14}" text-anchor="middle">× ${esc(seriesLabel(c))} failed<title>${esc(tip)}</title></text>`,
        );
      });
  });
  return out.join('\n');
}

function legend(items: { label: string; color: string; kind: 'line' | 'bar' | 'bar-light' }[]): string {
  const x0 = M.left + PW + 20;
  return items
    .map((it, i) => {
      const y = M.top + 8 + i * 20;
      const mark =
        it.kind === 'line'
          ? `<line x1="${x0}" x2="${x0 + 22}" y1="${y}" y2="${y}" stroke="${it.color}" stroke-width="2.5"/><circle cx="${x0 + 11}" cy="${y}" r="3.5" fill="${it.color}"/>`
          : `<rect x="${x0 + 4}" y="${y - 6}" width="14" height="12" fill="${it.color}" ${it.kind === 'bar-light' ? 'fill-opacity="0.35" stroke="' + it.color + '"' : ''}/>`;
      return `<g class="legend-item">${mark}<text class="legend" x="${x0 + 30}" y="${y}" dominant-baseline="middle">${esc(it.label)}</text></g>`;
    })
    .join('\n');
}

function lineChart(
  id: string,
  title: string,
  yLabel: string,
  results: BenchResults,
  series: Series[],
  pick: (m: CellMetrics) => number | null,
  unit: string,
  fmt: (n: number) => string,
  /** A log scale when the largest value is at least this many times the smallest (one series 20× the others stays readable). */
  logFrom = Infinity,
): string {
  const procs = procsList(results);
  const plotted = series.filter((s) => [...s.cells.values()].some(ok));
  let maxV = 0;
  let minV = Infinity;
  for (const s of plotted) {
    for (const c of s.cells.values()) {
      if (!ok(c)) continue;
      for (const v of [pick(c.median), c.min ? pick(c.min) : null, c.max ? pick(c.max) : null]) {
        if (v === null) continue;
        maxV = Math.max(maxV, v);
        if (v > 0) minV = Math.min(minV, v);
      }
    }
  }
  const log = Number.isFinite(minV) && maxV / minV >= logFrom;
  const ticks = log ? logTicks(minV, maxV) : niceTicks(maxV * 1.05, false);
  const f = frame(id, title, log ? `${yLabel} (log scale)` : yLabel, procs.map(String), 'backend processes', ticks, log);
  const body: string[] = [];
  const dodgeStep = Math.min(8, PW / Math.max(1, procs.length) / (plotted.length + 2));
  plotted.forEach((s, si) => {
    const color = colorOf(series, s);
    const dodge = (si - (plotted.length - 1) / 2) * dodgeStep;
    const pts: { x: number; y: number; v: number; c: Measured }[] = [];
    procs.forEach((p, i) => {
      const c = s.cells.get(p);
      const v = ok(c) ? pick(c.median) : null;
      if (ok(c) && v !== null) pts.push({ x: f.x(i) + dodge, y: f.y(v), v, c });
    });
    const g: string[] = [];
    g.push(
      `<polyline class="series" data-series="${esc(s.label)}" fill="none" stroke="${color}" stroke-width="2.5" stroke-linejoin="round" points="${pts
        .map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`)
        .join(' ')}"/>`,
    );
    for (const p of pts) {
      const lo = (p.c.min ? pick(p.c.min) : null) ?? p.v;
      const hi = (p.c.max ? pick(p.c.max) : null) ?? p.v;
      if (hi > lo) {
        const y1 = f.y(lo).toFixed(1);
        const y2 = f.y(hi).toFixed(1);
        const xs = p.x.toFixed(1);
        g.push(
          `<g class="whisker" stroke="${color}" stroke-width="1.3"><line x1="${xs}" x2="${xs}" y1="${y1}" y2="${y2}"/>` +
            `<line x1="${(p.x - 4).toFixed(1)}" x2="${(p.x + 4).toFixed(1)}" y1="${y1}" y2="${y1}"/>` +
            `<line x1="${(p.x - 4).toFixed(1)}" x2="${(p.x + 4).toFixed(1)}" y1="${y2}" y2="${y2}"/></g>`,
        );
      }
      const failed = hasFailures(p.c);
      const tip = `${s.label}, ${procsWord(p.c.procs)}: ${fmt(p.v)} ${unit}` + (hi > lo ? ` (${fmt(lo)}–${fmt(hi)})` : '') + (failed ? `; * failed requests: ${describeFailures(p.c)}` : '');
      g.push(`<circle class="marker" cx="${p.x.toFixed(1)}" cy="${p.y.toFixed(1)}" r="4" fill="${color}" stroke="#fff" stroke-width="1"><title>${esc(tip)}</title></circle>`);
      // A cell with failed requests: a red ring and a star next to its point.
      if (failed) {
        g.push(`<circle class="failed-requests" cx="${p.x.toFixed(1)}" cy="${p.y.toFixed(1)}" r="7" fill="none" stroke="#c0392b" stroke-width="1.5"><title>${esc(tip)}</title></circle>`);
        g.push(`<text class="failed-star" x="${(p.x + 8).toFixed(1)}" y="${(p.y - 6).toFixed(1)}">*</text>`);
      }
    }
    body.push(`<g class="series-group">${g.join('')}</g>`);
  });
  const leg = legend(plotted.map((s) => ({ label: s.label, color: colorOf(series, s), kind: 'line' as const })));
  const emptyText = plotted.length === 0 ? 'no measured cells' : plottedPoints(plotted, procs, pick) === 0 ? 'n/a: the load tool does not measure this' : '';
  const empty = emptyText ? `<text class="tick" x="${M.left + PW / 2}" y="${M.top + PH / 2}" text-anchor="middle">${esc(emptyText)}</text>` : '';
  return `${f.svgOpen}\n${f.axes}\n${body.join('\n')}\n${failedMarks(results, procs, f)}\n${leg}\n${empty}</svg>`;
}

function errorChart(results: BenchResults, series: Series[]): string {
  const procs = procsList(results);
  const plotted = series.filter((s) => [...s.cells.values()].some(ok));
  let maxV = 0;
  for (const s of plotted)
    for (const c of s.cells.values())
      if (ok(c)) maxV = Math.max(maxV, failuresOfCell(c), c.median.eagain ?? 0);
  const ticks = niceTicks(maxV * 1.3, true);
  const f = frame('chart-errors', 'Failed requests (all runs) and EAGAIN (median) per cell', 'count', procs.map(String), 'backend processes', ticks);
  const groupW = PW / Math.max(1, procs.length);
  const slot = (groupW * 0.8) / Math.max(1, plotted.length);
  const barW = Math.max(2, slot / 2 - 2);
  const base = M.top + PH;
  const bars: string[] = [];
  procs.forEach((p, i) => {
    const gx = f.x(i) - (groupW * 0.8) / 2;
    plotted.forEach((s, si) => {
      const c = s.cells.get(p);
      if (!ok(c)) return;
      const color = colorOf(series, s);
      const sx = gx + si * slot + 1;
      const vals: { v: number | null; kind: string; light: boolean }[] = [
        { v: failuresOfCell(c), kind: 'failed requests', light: false },
        { v: c.median.eagain, kind: 'EAGAIN', light: true },
      ];
      vals.forEach((b, bi) => {
        const bx = sx + bi * (barW + 1);
        const cx = (bx + barW / 2).toFixed(1);
        if (b.v === null) {
          bars.push(`<text class="na" x="${cx}" y="${base - 4}" text-anchor="middle">n/a</text>`);
          return;
        }
        const top = f.y(b.v);
        const h = Math.max(1, base - top); // a 1 px stub marks a measured zero
        const tip = `${s.label}, ${procsWord(p)}: ${b.kind} ${b.light ? fmtInt(b.v) : describeFailures(c)}`;
        bars.push(
          `<rect class="bar" data-series="${esc(s.label)}" data-kind="${b.light ? 'eagain' : 'errors'}" x="${bx.toFixed(1)}" y="${(base - h).toFixed(1)}" width="${barW.toFixed(1)}" height="${h.toFixed(1)}" fill="${color}"${b.light ? ` fill-opacity="0.35" stroke="${color}"` : ''}><title>${esc(tip)}</title></rect>`,
        );
        if (b.v > 0) {
          const ly = (base - h - 4).toFixed(1);
          bars.push(`<text class="val" x="${cx}" y="${ly}" transform="rotate(-90 ${cx} ${ly})" dominant-baseline="middle">${esc(fmtInt(b.v))}</text>`);
        }
      });
    });
  });
  const leg = legend([
    ...plotted.map((s) => ({ label: s.label, color: colorOf(series, s), kind: 'bar' as const })),
    { label: 'solid: failed requests', color: '#555', kind: 'bar' as const },
    { label: 'light: EAGAIN', color: '#555', kind: 'bar-light' as const },
  ]);
  return `${f.svgOpen}\n${f.axes}\n${bars.join('\n')}\n${failedMarks(results, procs, f)}\n${leg}</svg>`;
}

/** Points a line chart would draw (none: say so instead of an empty frame). */
function plottedPoints(plotted: Series[], procs: number[], pick: (m: CellMetrics) => number | null): number {
  let n = 0;
  for (const s of plotted) for (const p of procs) { const c = s.cells.get(p); if (ok(c) && pick(c.median) !== null) n++; }
  return n;
}

// ---------------------------------------------------------------- HTML

const CSS = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 24px auto; max-width: 1180px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 6px; } h2 { font-size: 17px; margin: 28px 0 8px; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
pre.cmd { background: #f4f4f4; border: 1px solid #ddd; padding: 8px 10px; white-space: pre-wrap; word-break: break-all; }
dl.meta { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 2px 14px; margin: 8px 0; }
dl.meta dt { color: #666; } dl.meta dd { margin: 0; }
.recommendation { background: #eef7ee; border-left: 4px solid #1a9850; padding: 8px 12px; }
.recommendation.peer-wins { background: #fff6e5; border-left-color: #e08e0b; }
.recommendation.none { background: #fbeeee; border-left-color: #c0392b; }
svg.chart { display: block; margin: 8px 0 4px; max-width: 100%; height: auto; background: #fff; border: 1px solid #e3e3e3; }
svg.chart .title { font-size: 14px; font-weight: 600; fill: #222; }
svg.chart .tick, svg.chart .legend { font-size: 12px; fill: #444; }
svg.chart .axis-title { font-size: 12px; fill: #666; }
svg.chart .grid { stroke: #eee; } svg.chart .axis { stroke: #888; }
svg.chart .val { font-size: 10px; fill: #333; } svg.chart .failed-mark { font-size: 11px; fill: #c0392b; } svg.chart .na { font-size: 9px; fill: #999; }
svg.chart .failed-star { font-size: 14px; font-weight: 700; fill: #c0392b; }
p.note { color: #666; font-size: 12px; margin: 0 0 8px; }
table.cells { border-collapse: collapse; font-size: 12.5px; width: 100%; }
table.cells th, table.cells td { border-bottom: 1px solid #e5e5e5; padding: 4px 6px; text-align: right; white-space: nowrap; }
table.cells th { background: #f6f6f6; font-weight: 600; white-space: normal; vertical-align: bottom; min-width: 3.5em; }
div.table-wrap { overflow-x: auto; }
#all-cells { font-size: 12px; } #all-cells th, #all-cells td { padding: 4px 4px; } #all-cells th { min-width: 3em; }
table.cells td.l, table.cells th.l { text-align: left; }
table.cells tr.failed td { color: #a33; background: #fdf3f3; }
table.cells tr.has-failures td { background: #fff6e5; }
table.cells td.failures.some { color: #a33; font-weight: 600; }
table.cells td.err { text-align: left; white-space: normal; }
.failed-requests-mark { color: #c0392b; font-weight: 700; }
.range { color: #888; }
ul.failed li { color: #a33; }
ul.notes li { color: #7a5a00; }
p.ratio { font-size: 15px; margin: 10px 0; } p.ratio strong { font-size: 17px; }
p.files a { margin-right: 10px; }
@media (max-width: 700px) {
  body { margin: 12px auto; padding: 0 10px; }
  dl.meta { grid-template-columns: max-content 1fr; }
  table.cells, table.cells tbody, table.cells tr, table.cells td { display: block; width: 100%; box-sizing: border-box; }
  table.cells thead { display: none; }
  table.cells tr { border: 1px solid #e3e3e3; border-radius: 6px; margin: 0 0 8px; padding: 4px 8px; }
  table.cells td { border-bottom: 1px dotted #eee; padding: 3px 0; white-space: normal; text-align: right; overflow-wrap: anywhere; }
  table.cells td::before { content: attr(data-label); float: left; margin-right: 12px; color: #666; text-align: left; font-weight: 600; }
  table.cells td.l, table.cells td.err { text-align: right; }
}
`;

/** Each <td> of a row gets the label of its column (the phone layout shows them beside the values). */
function labelled(row: string, labels: string[]): string {
  let i = 0;
  return row.replace(/<td(?=[ >])/g, () => `<td data-label="${esc(labels[Math.min(i++, labels.length - 1)])}"`);
}

function metaList(pairs: [string, string][]): string {
  return `<dl class="meta">${pairs.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`;
}

/** A median rate, marked when a request failed in the cell. */
function rateHtml(c: Measured, withRange: boolean): string {
  const rng = withRange && c.min && c.max && c.repeats.length > 1 ? ` <span class="range">[${esc(fmtInt(c.min.rps))}–${esc(fmtInt(c.max.rps))}]</span>` : '';
  const mark = hasFailures(c) ? `<span class="failed-requests-mark" title="${esc(`failed requests: ${describeFailures(c)}`)}">*</span>` : '';
  return `${esc(fmtInt(c.median.rps))}${mark}${rng}`;
}

function failuresCell(c: Cell): string {
  const f = describeFailures(c);
  return `<td class="failures${f === '0' ? '' : ' some'}">${esc(f)}</td>`;
}

const CELL_COLUMNS = ['front', 'overflow', 'procs', 'switches', 'req/s median [min–max]', 'failed requests (all runs)', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms',
  'EAGAIN', 'accept-queue max', 'front-queue max', 'front CPU µs/req', 'backend CPU µs/req', 'load side CPU µs/req', 'machine CPU µs/req', 'front MB', 'backends MB'];

function cellRow(c: Cell): string {
  return labelled(cellRowHtml(c), ok(c) ? CELL_COLUMNS : [...CELL_COLUMNS.slice(0, 4), 'failed']);
}

function cellRowHtml(c: Cell): string {
  const sw = switchesKey(c) || '-';
  const head = `<td class="l">${esc(frontName(c))}</td><td class="l">${esc(c.overflow ?? '-')}</td><td>${esc(c.procs)}</td><td class="l">${esc(sw)}</td>`;
  if (!ok(c)) {
    return `<tr class="failed">${head}<td class="err" colspan="${CELL_COLUMNS.length - 4}">failed: ${esc(c.error ?? 'no measurements')}</td></tr>`;
  }
  const m = c.median;
  const td = (v: string): string => `<td>${esc(v)}</td>`;
  return (
    `<tr${hasFailures(c) ? ' class="has-failures"' : ''}>${head}<td>${rateHtml(c, true)}</td>` +
    failuresCell(c) +
    td(fmtMs(m.latencyMs.p50)) +
    td(fmtMs(m.latencyMs.p90)) +
    td(fmtMs(m.latencyMs.p99)) +
    td(fmtMs(m.latencyMs.max)) +
    td(fmtOpt(m.eagain)) +
    td(fmtOpt(m.acceptQueueMax)) +
    td(fmtOpt(m.frontQueueMax)) +
    td(fmtInt(usPerRequest(m.cpuFrontSecPer1000))) +
    td(fmtInt(usPerRequest(m.cpuBackendSecPer1000))) +
    td(m.cpuLoadSecPer1000 == null ? '-' : fmtInt(usPerRequest(m.cpuLoadSecPer1000))) +
    td(m.cpuMachineSecPer1000 == null ? '-' : fmtInt(usPerRequest(m.cpuMachineSecPer1000))) +
    td(fmtFixed(m.memFrontMb, 1)) +
    td(fmtFixed(m.memBackendMb, 1)) +
    `</tr>`
  );
}

/** Per process count: nginx, the best peer (named), each upfront series with its ratios to both. */
function peersTable(results: BenchResults, series: Series[]): string {
  const procs = procsList(results);
  const upfront = series.filter((s) => s.front === 'upfront');
  const nginx = series.find((s) => s.front === 'nginx');
  const head =
    `<tr><th>procs</th><th>${esc(nginx?.label ?? 'nginx')} req/s</th><th class="l">best peer</th><th>best peer req/s</th>` +
    upfront.map((s) => `<th>${esc(s.label)} req/s</th><th>÷ nginx</th><th>÷ best peer</th>`).join('') +
    `</tr>`;
  const labels = ['procs', 'nginx req/s', 'best peer', 'best peer req/s', ...upfront.flatMap((s) => [`${s.label} req/s`, `${s.label} ÷ nginx`, `${s.label} ÷ best peer`])];
  const rows = procs.map((p) => {
    const n = nginx?.cells.get(p);
    const best = bestPeer(results, p);
    const cells = [
      `<td>${esc(p)}</td>`,
      `<td>${ok(n) ? rateHtml(n, false) : '-'}</td>`,
      `<td class="l">${best ? esc(seriesLabel(best)) : '-'}</td>`,
      `<td>${best ? rateHtml(best, false) : '-'}</td>`,
    ];
    for (const s of upfront) {
      const u = s.cells.get(p);
      const ng = nginxFor(series, s)?.cells.get(p);
      cells.push(`<td>${ok(u) ? rateHtml(u, false) : '-'}</td>`);
      cells.push(`<td>${ok(u) && ok(ng) && ng.median.rps > 0 ? esc(ratio(u.median.rps, ng.median.rps)) : '-'}</td>`);
      cells.push(`<td>${ok(u) && best && best.median.rps > 0 ? esc(`${ratio(u.median.rps, best.median.rps)} (${peerName(best)})`) : '-'}</td>`);
    }
    return labelled(`<tr>${cells.join('')}</tr>`, labels);
  });
  return `<div class="table-wrap"><table class="cells" id="peers"><thead>${head}</thead><tbody>${rows.join('\n')}</tbody></table></div>`;
}

/** Front CPU µs per request, a row per series, a column per process count. */
function cpuTable(results: BenchResults, series: Series[]): string {
  const procs = procsList(results);
  const head = `<tr><th class="l">front</th>${procs.map((p) => `<th>${esc(procsWord(p))}</th>`).join('')}</tr>`;
  const rows = series.map((s) => {
    const tds = procs.map((p) => {
      const c = s.cells.get(p);
      return `<td>${ok(c) ? esc(fmtInt(usPerRequest(c.median.cpuFrontSecPer1000))) + (hasFailures(c) ? '<span class="failed-requests-mark">*</span>' : '') : '-'}</td>`;
    });
    return labelled(`<tr><td class="l">${esc(s.label)}</td>${tds.join('')}</tr>`, ['front', ...procs.map(procsWord)]);
  });
  return `<div class="table-wrap"><table class="cells" id="cpu"><thead>${head}</thead><tbody>${rows.join('\n')}</tbody></table></div>`;
}

const BUDGET_COLUMNS = ['procs', 'front', 'front µs', 'backends µs', 'load side µs', 'the rest µs', 'machine µs', 'busy %'];

/**
 * Where the machine's CPU went per request, per cell: the front, the backends, the load side
 * (the load tool and the bench process), the rest (the kernel's own threads and interrupts,
 * anything else on the host), summing to the machine's busy µs; and how busy it was. Where
 * the cores are the wall, a front's rate is its busy share over this sum.
 */
function cpuBudgetTable(results: BenchResults, series: Series[]): string {
  const head = `<tr>${BUDGET_COLUMNS.map((c, i) => `<th${i === 1 ? ' class="l"' : ''}>${esc(c)}</th>`).join('')}</tr>`;
  const rows: string[] = [];
  for (const p of procsList(results)) {
    for (const s of series) {
      const c = s.cells.get(p);
      if (!ok(c)) continue;
      const m = c.median;
      const front = usPerRequest(m.cpuFrontSecPer1000);
      const backends = usPerRequest(m.cpuBackendSecPer1000);
      const load = m.cpuLoadSecPer1000 == null ? null : usPerRequest(m.cpuLoadSecPer1000);
      const machine = m.cpuMachineSecPer1000 == null ? null : usPerRequest(m.cpuMachineSecPer1000);
      const rest = machine === null || load === null ? null : Math.max(0, machine - front - backends - load);
      const cells = [String(p), s.label, fmtInt(front), fmtInt(backends), load === null ? '-' : fmtInt(load), rest === null ? '-' : fmtInt(rest),
        machine === null ? '-' : fmtInt(machine), m.machineBusyPct == null ? '-' : fmtFixed(m.machineBusyPct, 1)];
      rows.push(labelled(`<tr>${cells.map((v, i) => `<td${i === 1 ? ' class="l"' : ''}>${esc(v)}</td>`).join('')}</tr>`, BUDGET_COLUMNS));
    }
  }
  return `<div class="table-wrap"><table class="cells" id="cpu-budget"><thead>${head}</thead><tbody>${rows.join('\n')}</tbody></table></div>`;
}

/**
 * upfront's best rate over the best peer's, each the best of its cells without a
 * failed request (of all its cells when none is clean); null without both.
 */
export function upfrontVsBestPeer(results: BenchResults): { ratio: number; upfront: Measured; peer: Measured } | null {
  const best = (front: (c: Cell) => boolean): Measured | undefined => {
    const cells = results.cells.filter((c): c is Measured => ok(c) && front(c));
    const clean = cells.filter((c) => !hasFailures(c));
    return (clean.length ? clean : cells).reduce<Measured | undefined>((a, b) => (!a || b.median.rps > a.median.rps ? b : a), undefined);
  };
  const upfront = best((c) => c.front === 'upfront');
  const peer = best((c) => c.front !== 'upfront');
  if (!upfront || !peer || peer.median.rps <= 0) return null;
  return { ratio: upfront.median.rps / peer.median.rps, upfront, peer };
}

/** The files next to report.html: results.json and the config of each peer front that ran. */
function filesHtml(results: BenchResults): string {
  const ran = new Set(results.cells.map((c) => c.front).filter((f): f is PeerFrontName => f !== 'upfront'));
  const configs = PEER_FRONTS.filter((f) => ran.has(f)).map((f) => PEERS[f].configFile);
  const links = ['results.json', ...configs].map((f) => `<a href="${esc(encodeURI(f))}">${esc(f)}</a>`);
  return `<p class="files" id="files">Next to this page: ${links.join(' ')}</p>`;
}

export function renderReportHtml(results: BenchResults): string {
  const series = buildSeries(results);
  const s = results.settings;
  const mach = results.machine;
  const rec = results.recommendation ?? recommend(results);
  const failed = results.cells.filter((c) => !ok(c));
  const marked = results.cells.filter((c) => ok(c) && hasFailures(c));
  const repeatsNote = `Medians over ${s.repeat} repeat${s.repeat === 1 ? '' : 's'}; whiskers span min–max. A red ring and * mark a cell where a request failed.`;

  const recHtml = rec
    ? `<p class="recommendation${rec.front === 'upfront' ? '' : ' peer-wins'}"><strong>Recommendation: ${esc(frontName({ front: rec.front as Cell['front'], protocol: rec.protocol }))}${rec.overflow ? ` (overflow ${esc(rec.overflow)})` : ''} with ${esc(procsWord(rec.procs))}, ${esc(fmtInt(rec.rps))} req/s.</strong> ${esc(rec.why)}</p>`
    : `<p class="recommendation none"><strong>No recommendation:</strong> no cell was measured.</p>`;

  const header = `<tr>${CELL_COLUMNS.map((c, i) => `<th${i === 0 || i === 1 || i === 3 ? ' class="l"' : ''}>${esc(c)}</th>`).join('')}</tr>`;

  const failedHtml =
    failed.length > 0
      ? `<h2>Failed cells</h2><ul class="failed">${failed
          .map((c) => `<li><strong>${esc(seriesLabel(c))} × ${esc(c.procs)}</strong>: ${esc(c.error ?? 'no measurements')}</li>`)
          .join('')}</ul>`
      : '';
  const notes = results.cells.flatMap((c) => (c.notes ?? []).map((n) => `<li><strong>${esc(seriesLabel(c))} × ${esc(c.procs)}</strong>: ${esc(n)}</li>`));
  const skipped = (results.skipped ?? []).map((k) => `<li><strong>${esc(frontName({ front: k.front, protocol: s.protocol }))}</strong>: ${esc(k.reason)}</li>`);
  const notesHtml = notes.length + skipped.length > 0 ? `<h2>Notes</h2><ul class="notes">${[...skipped, ...notes].join('')}</ul>` : '';
  const versions: [string, string][] = (['nginx', 'h2o', 'haproxy', 'lighttpd', 'caddy', 'spawnFcgi', 'python', 'loadTool'] as const)
    .filter((k) => k in mach)
    .map((k) => [k === 'spawnFcgi' ? 'spawn-fcgi' : k === 'loadTool' ? 'load tool' : k, (mach[k] as string | null | undefined) ?? 'not installed']);
  const vs = upfrontVsBestPeer(results);
  const ratioHtml = vs
    ? `<p class="ratio" id="upfront-ratio">upfront ÷ the best peer: <strong>${esc(vs.ratio.toFixed(2))}×</strong> — ${esc(seriesLabel(vs.upfront))} with ${esc(procsWord(vs.upfront.procs))}, ${rateHtml(vs.upfront, false)} req/s, against ${esc(seriesLabel(vs.peer))} with ${esc(procsWord(vs.peer.procs))}, ${rateHtml(vs.peer, false)} req/s${vs.ratio < 1 ? ` (${esc(vs.peer.front)} is faster)` : ''}.</p>`
    : '';
  const anyErrors = results.cells.some((c) => ok(c) && (hasFailures(c) || (c.median.eagain ?? 0) > 0));

  const title = `upfront bench — ${s.path} — ${results.startedAt}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>upfront bench</h1>
<pre class="cmd">${esc(results.command)}</pre>
${metaList([
  ['started', results.startedAt],
  ['cores', String(mach.cores)],
  ['kernel', mach.kernel],
  ['node', mach.node],
  ...versions,
  ['protocol', s.protocol ?? 'fastcgi'],
  ['backend', s.backend],
  ['path', s.path],
  ['load', s.load],
  ['concurrency', String(s.concurrency)],
  ['backlog', s.backlog !== undefined ? `${s.backlog} (every front's backend sockets)` : 'not recorded'],
  ['scheduling', 'upfront runs itself and starts its processes under SCHED_BATCH (its defaults, --front-sched-policy and --sched-policy), itself at the weight of its processes (nice -3 for 2, -6 for 4; its threads and, as it leads a session of its own here, its session: under autogroup scheduling the nice of a thread counts only within its session) and its processes at the nice it was started with (--front-nice, like the worker_priority of nginx, which the peers leave at 0); the peers run under the policy they start with, their fronts and their processes (spawn-fcgi\'s, or the bench\'s for --protocol http): SCHED_OTHER unless the bench or COMMAND is wrapped in chrt'],
  ['duration', `${s.durationSec} s (+ ${s.warmupSec} s warm-up)`],
  ['repeats', String(s.repeat)],
  ['cells', `${results.cells.length} (${failed.length} failed, ${marked.length} with failed requests)`],
])}
${recHtml}
${ratioHtml}
${filesHtml(results)}
<h2>Against the peers</h2>
<p class="note">Per process count: upfront's rate ÷ nginx's, and ÷ the best other front's (the fastest front other than upfront at that count, among its cells without a failed request).</p>
${peersTable(results, series)}
<h2>Throughput</h2>
<p class="note">${esc(repeatsNote)}</p>
${lineChart('chart-rps', 'Requests per second (median)', 'req/s', results, series, (m) => m.rps, 'req/s', fmtInt)}
<h2>Tail latency</h2>
<p class="note">${esc(repeatsNote)}</p>
${lineChart('chart-p99', 'p99 latency (median)', 'ms', results, series, (m) => m.latencyMs.p99, 'ms', fmtMs, LOG_FROM)}
<h2>Front CPU per request</h2>
<p class="note">CPU time of every process and thread of the front during the measured run ÷ the requests the load tool counted, in µs.</p>
${lineChart('chart-cpu', 'Front CPU per request (median)', 'µs per request', results, series, (m) => usPerRequest(m.cpuFrontSecPer1000), 'µs', fmtInt, LOG_FROM)}
${cpuTable(results, series)}
<h2>Where the machine's CPU went</h2>
<p class="note">Per request, medians, in µs of CPU: the front, the backends, the load side (the load tool and the bench process driving it), and the rest — the kernel's own threads and interrupts, anything else on the host — summing to the whole machine's busy time; and the share of the machine's CPU time that was busy. With the cores the wall, a front's rate is its busy share over this sum: a front that spends less here, or keeps the machine busier, serves more. "-" where a run did not measure it.</p>
${cpuBudgetTable(results, series)}
<h2>Failures</h2>
${anyErrors
    ? `<p class="note" id="failures-chart-note">Solid bars: requests that failed (timeouts, socket errors, failing statuses, summed over runs); light bars: EAGAIN on connect to the backend socket (n/a where it cannot be measured). Backend sockets' backlog: ${esc(s.backlog ?? 'not recorded')}.</p>\n${errorChart(results, series)}`
    : `<p class="note" id="no-failures">No request failed and no connect() met EAGAIN in any cell (backlog ${esc(s.backlog ?? 'not recorded')}): nothing to chart.</p>`}
<h2>All cells</h2>
<div class="table-wrap"><table class="cells" id="all-cells">
<thead>${header}</thead>
<tbody>
${results.cells.map(cellRow).join('\n')}
</tbody>
</table></div>
${marked.length > 0 ? `<p class="note failures-note"><span class="failed-requests-mark">*</span> ${esc(FAILURE_NOTE.replace(/^\* /, ''))}</p>` : ''}
${failedHtml}
${notesHtml}
</body>
</html>
`;
}
