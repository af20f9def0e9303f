// Reports of `upfront bench`: a self-contained HTML page (inline SVG charts, no
// scripts, no network), the 2011-shaped terminal table, and the recommendation.
import type { BenchResults, Cell, CellMetrics } from './results.js';

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
  return parts.join(', ');
}

/** "nginx", "upfront (queue)", "upfront (nginx, multiplexed)", ... */
export function seriesLabel(c: Cell): string {
  const sw = switchesKey(c);
  if (c.front === 'nginx') return sw ? `nginx (${sw})` : 'nginx';
  const inner = [c.overflow ?? 'default', ...(sw ? [sw] : [])].join(', ');
  return `upfront (${inner})`;
}

/** Series in a stable order: nginx first, then upfront, each in order of first appearance. */
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
  return [...all.filter((s) => s.front === 'nginx'), ...all.filter((s) => s.front !== 'nginx')];
}

function procsList(results: BenchResults): number[] {
  return [...new Set(results.cells.map((c) => c.procs))].sort((a, b) => a - b);
}

function ok(c: Cell | undefined): c is Cell & { median: CellMetrics } {
  return !!c && c.error === null && c.median !== null;
}

/** The nginx series to compare an upfront series with: same switches if there is one. */
function nginxFor(series: Series[], s: Series): Series | undefined {
  const nginx = series.filter((x) => x.front === 'nginx');
  return nginx.find((x) => x.switchesKey === s.switchesKey) ?? nginx.find((x) => x.switchesKey === '') ?? nginx[0];
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

function fmtMs(n: number): string {
  return n < 100 ? fmtFixed(n, 1) : fmtInt(n);
}

function fmtOpt(n: number | null): string {
  return n === null ? 'n/a' : fmtInt(n);
}

function procsWord(n: number): string {
  return `${n} ${n === 1 ? 'process' : 'processes'}`;
}

// ---------------------------------------------------------------- recommendation

/**
 * Among upfront cells without errors (non-2xx or socket errors; falling back to
 * any measured cell), take the best median rate, then the smallest process count
 * within 5% of it, and explain the choice with Little's law.
 */
export function recommend(results: BenchResults): BenchResults['recommendation'] {
  const measured = results.cells.filter(ok);
  const clean = measured.filter((c) => c.front === 'upfront' && c.median.non2xx === 0 && c.median.socketErrors === 0);
  const pool = clean.length > 0 ? clean : measured;
  if (pool.length === 0) return null;

  const best = pool.reduce((a, b) => (b.median.rps > a.median.rps || (b.median.rps === a.median.rps && b.procs < a.procs) ? b : a));
  const near = pool.filter((c) => c.median.rps >= 0.95 * best.median.rps);
  const minProcs = Math.min(...near.map((c) => c.procs));
  const chosen = near.filter((c) => c.procs === minProcs).reduce((a, b) => (b.median.rps > a.median.rps ? b : a));

  const m = chosen.median;
  const rps = m.rps;
  const conc = results.settings.concurrency;
  const label = seriesLabel(chosen);
  const parts: string[] = [];

  if (clean.length === 0) {
    parts.push(
      measured.some((c) => c.front === 'upfront')
        ? 'No upfront cell ran without errors, so this is chosen among all cells; check the error counts.'
        : 'No upfront cell was measured, so this is chosen among the nginx cells.',
    );
  }
  if (chosen === best) {
    const smaller = pool.filter((c) => c.procs < chosen.procs).sort((a, b) => b.procs - a.procs || b.median.rps - a.median.rps)[0];
    parts.push(
      `${label} with ${procsWord(chosen.procs)} gives the best rate, ${fmtInt(rps)} req/s` +
        (smaller
          ? `; ${procsWord(smaller.procs)} reach only ${fmtInt(smaller.median.rps)} req/s (${fmtFixed((1 - smaller.median.rps / rps) * 100, 0)}% less).`
          : '.'),
    );
  } else {
    parts.push(
      `${label} with ${procsWord(chosen.procs)} reaches ${fmtInt(rps)} req/s, within 5% of the best ` +
        `(${fmtInt(best.median.rps)} at ${best.procs}${seriesLabel(best) === label ? '' : `, ${seriesLabel(best)}`}).`,
    );
  }
  if (rps > 0 && conc > 0) {
    const inSystemMs = (conc / rps) * 1000;
    const perServiceMs = (chosen.procs / rps) * 1000;
    let little =
      `By Little's law ${fmtInt(conc)} concurrent requests at ${fmtInt(rps)} req/s spend ${fmtMs(inSystemMs)} ms each in the system ` +
      `(measured p50: ${fmtMs(m.latencyMs.p50)} ms), while ${procsWord(chosen.procs)} serving ${fmtInt(rps)} req/s can spend at most ${fmtMs(perServiceMs)} ms on each`;
    little +=
      chosen === best && chosen.procs === Math.max(...pool.map((c) => c.procs))
        ? '; the largest count measured is the best, so a sweep with more processes may find more.'
        : perServiceMs < inSystemMs
          ? ': the rest is waiting, so more processes add queueing, not throughput.'
          : '.';
    parts.push(little);
  }
  return { front: chosen.front, overflow: chosen.overflow, procs: chosen.procs, rps, why: parts.join(' ') };
}

// ---------------------------------------------------------------- terminal table

/**
 * Rows are series, columns process counts, cells the median transaction rate;
 * one "ratio" row per upfront series (upfront ÷ nginx at the same process count).
 */
export function renderTerminalTable(results: BenchResults): string {
  const series = buildSeries(results);
  const procs = procsList(results);
  const rows: string[][] = [];
  rows.push(['transaction rate [1/sec]', ...procs.map((p) => procsWord(p).replace('processes', 'procs').replace('process', 'proc'))]);
  for (const s of series) {
    rows.push([
      s.label,
      ...procs.map((p) => {
        const c = s.cells.get(p);
        if (!c) return '-';
        return ok(c) ? fmtFixed(c.median.rps, 1).replace(/,/g, '') : 'failed';
      }),
    ]);
  }
  for (const s of series.filter((x) => x.front === 'upfront')) {
    const ng = nginxFor(series, s);
    const name = s.label.replace(/^upfront/, 'ratio upfront') + '/' + (ng?.label ?? 'nginx');
    rows.push([
      name,
      ...procs.map((p) => {
        const u = s.cells.get(p);
        const n = ng?.cells.get(p);
        if (!ok(u) || !ok(n) || n.median.rps <= 0) return '-';
        return (u.median.rps / n.median.rps).toFixed(2);
      }),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]): string => r.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ').trimEnd();
  const out = [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  ')];
  const nValues = 1 + series.length;
  rows.slice(1).forEach((r, i) => {
    if (i + 1 === nValues && rows.length > nValues) out.push('');
    out.push(line(r));
  });
  const failed = results.cells.filter((c) => !ok(c));
  for (const c of failed) out.push(`failed: ${seriesLabel(c)} × ${c.procs}: ${c.error ?? 'no measurements'}`);
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------- SVG charts

const PALETTE = ['#1a9850', '#d95f02', '#7570b3', '#e7298a', '#1f78b4', '#a6761d', '#666666', '#e6ab02'];

function colorOf(series: Series[], s: Series): string {
  // nginx keeps its green; upfront series take the rest in order.
  if (s.front === 'nginx') {
    const i = series.filter((x) => x.front === 'nginx').indexOf(s);
    return i === 0 ? PALETTE[0] : PALETTE[(5 + i) % PALETTE.length];
  }
  const i = series.filter((x) => x.front !== 'nginx').indexOf(s);
  return PALETTE[1 + (i % (PALETTE.length - 1))];
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

function frame(id: string, title: string, yLabel: string, xLabels: string[], xTitle: string, ticks: number[]): Frame {
  const n = Math.max(1, xLabels.length);
  const top = ticks[ticks.length - 1] || 1;
  const x = (i: number): number => M.left + ((i + 0.5) * PW) / n;
  const y = (v: number): number => M.top + PH - (Math.max(0, v) / top) * PH;
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
  const svgOpen = `<svg id="${esc(id)}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">`;
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
  pick: (m: CellMetrics) => number,
  unit: string,
  fmt: (n: number) => string,
): string {
  const procs = procsList(results);
  const plotted = series.filter((s) => [...s.cells.values()].some(ok));
  let maxV = 0;
  for (const s of plotted) for (const c of s.cells.values()) if (ok(c)) maxV = Math.max(maxV, pick(c.median), c.max ? pick(c.max) : 0);
  const ticks = niceTicks(maxV * 1.05, false);
  const f = frame(id, title, yLabel, procs.map(String), 'backend processes', ticks);
  const body: string[] = [];
  const dodgeStep = Math.min(8, PW / Math.max(1, procs.length) / (plotted.length + 2));
  plotted.forEach((s, si) => {
    const color = colorOf(series, s);
    const dodge = (si - (plotted.length - 1) / 2) * dodgeStep;
    const pts: { x: number; y: number; c: Cell & { median: CellMetrics } }[] = [];
    procs.forEach((p, i) => {
      const c = s.cells.get(p);
      if (ok(c)) pts.push({ x: f.x(i) + dodge, y: f.y(pick(c.median)), c });
    });
    const g: string[] = [];
    g.push(
      `<polyline class="series" data-series="${esc(s.label)}" fill="none" stroke="${color}" stroke-width="2.5" stroke-linejoin="round" points="${pts
        .map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`)
        .join(' ')}"/>`,
    );
    for (const p of pts) {
      const lo = p.c.min ? pick(p.c.min) : pick(p.c.median);
      const hi = p.c.max ? pick(p.c.max) : pick(p.c.median);
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
      const tip = `${s.label}, ${procsWord(p.c.procs)}: ${fmt(pick(p.c.median))} ${unit}` + (hi > lo ? ` (${fmt(lo)}–${fmt(hi)})` : '');
      g.push(`<circle class="marker" cx="${p.x.toFixed(1)}" cy="${p.y.toFixed(1)}" r="4" fill="${color}" stroke="#fff" stroke-width="1"><title>${esc(tip)}</title></circle>`);
    }
    body.push(`<g class="series-group">${g.join('')}</g>`);
  });
  const leg = legend(plotted.map((s) => ({ label: s.label, color: colorOf(series, s), kind: 'line' as const })));
  const empty = plotted.length === 0 ? `<text class="tick" x="${M.left + PW / 2}" y="${M.top + PH / 2}" text-anchor="middle">no measured cells</text>` : '';
  return `${f.svgOpen}\n${f.axes}\n${body.join('\n')}\n${failedMarks(results, procs, f)}\n${leg}\n${empty}</svg>`;
}

function errorChart(results: BenchResults, series: Series[]): string {
  const procs = procsList(results);
  const plotted = series.filter((s) => [...s.cells.values()].some(ok));
  let maxV = 0;
  for (const s of plotted)
    for (const c of s.cells.values())
      if (ok(c)) maxV = Math.max(maxV, c.median.non2xx + c.median.socketErrors, c.median.eagain ?? 0);
  const ticks = niceTicks(maxV * 1.3, true);
  const f = frame('chart-errors', 'Errors per cell (median over repeats)', 'count', procs.map(String), 'backend processes', ticks);
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
        { v: c.median.non2xx + c.median.socketErrors, kind: 'non-2xx + socket errors', light: false },
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
        const tip = `${s.label}, ${procsWord(p)}: ${b.kind} ${fmtInt(b.v)}`;
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
    { label: 'solid: non-2xx + socket errors', color: '#555', kind: 'bar' as const },
    { label: 'light: EAGAIN', color: '#555', kind: 'bar-light' as const },
  ]);
  return `${f.svgOpen}\n${f.axes}\n${bars.join('\n')}\n${failedMarks(results, procs, f)}\n${leg}</svg>`;
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
.recommendation.none { background: #fbeeee; border-left-color: #c0392b; }
svg.chart { display: block; margin: 8px 0 4px; max-width: 100%; height: auto; background: #fff; border: 1px solid #e3e3e3; }
svg.chart .title { font-size: 14px; font-weight: 600; fill: #222; }
svg.chart .tick, svg.chart .legend { font-size: 12px; fill: #444; }
svg.chart .axis-title { font-size: 12px; fill: #666; }
svg.chart .grid { stroke: #eee; } svg.chart .axis { stroke: #888; }
svg.chart .val { font-size: 10px; fill: #333; } svg.chart .failed-mark { font-size: 11px; fill: #c0392b; } svg.chart .na { font-size: 9px; fill: #999; }
p.note { color: #666; font-size: 12px; margin: 0 0 8px; }
table.cells { border-collapse: collapse; font-size: 12.5px; width: 100%; }
table.cells th, table.cells td { border-bottom: 1px solid #e5e5e5; padding: 4px 6px; text-align: right; white-space: nowrap; }
table.cells th { background: #f6f6f6; font-weight: 600; white-space: normal; vertical-align: bottom; min-width: 3.5em; }
div.table-wrap { overflow-x: auto; }
table.cells td.l, table.cells th.l { text-align: left; }
table.cells tr.failed td { color: #a33; background: #fdf3f3; }
table.cells td.err { text-align: left; white-space: normal; }
.range { color: #888; }
ul.failed li { color: #a33; }
`;

function metaList(pairs: [string, string][]): string {
  return `<dl class="meta">${pairs.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`;
}

function cellRow(c: Cell): string {
  const label = c.front === 'nginx' ? 'nginx' : 'upfront';
  const sw = switchesKey(c) || '-';
  const head = `<td class="l">${esc(label)}</td><td class="l">${esc(c.overflow ?? '-')}</td><td>${esc(c.procs)}</td><td class="l">${esc(sw)}</td>`;
  if (!ok(c)) {
    return `<tr class="failed">${head}<td class="err" colspan="14">failed: ${esc(c.error ?? 'no measurements')}</td></tr>`;
  }
  const m = c.median;
  const rng = c.min && c.max && c.repeats.length > 1 ? ` <span class="range">[${esc(fmtInt(c.min.rps))}–${esc(fmtInt(c.max.rps))}]</span>` : '';
  const td = (v: string): string => `<td>${esc(v)}</td>`;
  return (
    `<tr>${head}<td>${esc(fmtInt(m.rps))}${rng}</td>` +
    td(fmtMs(m.latencyMs.p50)) +
    td(fmtMs(m.latencyMs.p90)) +
    td(fmtMs(m.latencyMs.p99)) +
    td(fmtMs(m.latencyMs.max)) +
    td(fmtInt(m.non2xx)) +
    td(fmtInt(m.socketErrors)) +
    td(fmtOpt(m.eagain)) +
    td(fmtOpt(m.acceptQueueMax)) +
    td(fmtOpt(m.frontQueueMax)) +
    td(fmtFixed(m.cpuFrontSecPer1000, 3)) +
    td(fmtFixed(m.cpuBackendSecPer1000, 3)) +
    td(fmtFixed(m.memFrontMb, 1)) +
    td(fmtFixed(m.memBackendMb, 1)) +
    `</tr>`
  );
}

export function renderReportHtml(results: BenchResults): string {
  const series = buildSeries(results);
  const s = results.settings;
  const mach = results.machine;
  const rec = results.recommendation ?? recommend(results);
  const failed = results.cells.filter((c) => !ok(c));
  const repeatsNote = `Medians over ${s.repeat} repeat${s.repeat === 1 ? '' : 's'}; whiskers span min–max.`;

  const recHtml = rec
    ? `<p class="recommendation"><strong>Recommendation: ${esc(rec.front)}${rec.overflow ? ` (overflow ${esc(rec.overflow)})` : ''} with ${esc(procsWord(rec.procs))}, ${esc(fmtInt(rec.rps))} req/s.</strong> ${esc(rec.why)}</p>`
    : `<p class="recommendation none"><strong>No recommendation:</strong> no cell was measured.</p>`;

  const header =
    `<tr><th class="l">front</th><th class="l">overflow</th><th>procs</th><th class="l">switches</th><th>req/s median [min–max]</th>` +
    `<th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th><th>non-2xx</th><th>socket errors</th><th>EAGAIN</th>` +
    `<th>accept-queue max</th><th>front-queue max</th><th>front CPU s/1000 req</th><th>backend CPU s/1000 req</th>` +
    `<th>front MB</th><th>backends MB</th></tr>`;

  const failedHtml =
    failed.length > 0
      ? `<h2>Failed cells</h2><ul class="failed">${failed
          .map((c) => `<li><strong>${esc(seriesLabel(c))} × ${esc(c.procs)}</strong>: ${esc(c.error ?? 'no measurements')}</li>`)
          .join('')}</ul>`
      : '';

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
  ['nginx', mach.nginx ?? 'not installed'],
  ['backend', s.backend],
  ['path', s.path],
  ['load', s.load],
  ['concurrency', String(s.concurrency)],
  ['duration', `${s.durationSec} s (+ ${s.warmupSec} s warm-up)`],
  ['repeats', String(s.repeat)],
  ['cells', `${results.cells.length} (${failed.length} failed)`],
])}
${recHtml}
<h2>Throughput</h2>
<p class="note">${esc(repeatsNote)}</p>
${lineChart('chart-rps', 'Requests per second (median)', 'req/s', results, series, (m) => m.rps, 'req/s', fmtInt)}
<h2>Tail latency</h2>
<p class="note">${esc(repeatsNote)}</p>
${lineChart('chart-p99', 'p99 latency (median)', 'ms', results, series, (m) => m.latencyMs.p99, 'ms', fmtMs)}
<h2>Errors</h2>
<p class="note">Solid bars: non-2xx responses + socket errors; light bars: EAGAIN on connect (n/a where it cannot be measured).</p>
${errorChart(results, series)}
<h2>All cells</h2>
<div class="table-wrap"><table class="cells">
<thead>${header}</thead>
<tbody>
${results.cells.map(cellRow).join('\n')}
</tbody>
</table></div>
${failedHtml}
</body>
</html>
`;
}
