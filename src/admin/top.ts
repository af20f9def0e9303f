// `upfront top`: the dashboard in a terminal, refreshed every second (uwsgitop, pm2
// monit). Rates are differences between two GET /stats snapshots divided by the
// time between them; the pool line is highlighted while its front queue is not
// empty, a backend's row while its accept queue holds 80 % of its backlog. q quits.
import type { BackendStats, PoolStats, Stats } from '../stats/snapshot.js';
import { fetchStats } from './adminClient.js';

/** An accept queue this full of its backlog is about to refuse connections (EAGAIN). */
export const HOT_ACCEPT_QUEUE = 0.8;

const ESC = '\x1b[';
const HIGHLIGHT = `${ESC}30;43m`; // black on yellow
const BOLD = `${ESC}1m`;
const DIM = `${ESC}2m`;
const RESET = `${ESC}0m`;

export interface TopView {
  width: number;
  height: number;
  color: boolean;
  admin: string;
  /** Shown instead of the figures' age when the last read failed. */
  error?: string | null;
  now?: Date;
}

function num(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '-';
}

function perSec(n: number): string {
  return n >= 100 ? num(n) : n >= 10 ? num(n, 1) : num(n, 2);
}

function ms(v: number): string {
  return v >= 1000 ? `${num(v / 1000, 2)}s` : `${num(v, v < 10 ? 2 : 1)}ms`;
}

function mib(bytes: number): string {
  return `${num(bytes / (1 << 20), 1)}M`;
}

function duration(sec: number): string {
  const d = Math.floor(sec / 86400), h = Math.floor(sec / 3600) % 24, m = Math.floor(sec / 60) % 60, s = Math.floor(sec % 60);
  return d > 0 ? `${d}d${h}h` : h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
}

function sum(o: Record<string, number> | undefined): number {
  let n = 0;
  if (o) for (const k in o) n += o[k];
  return n;
}

/** The rate of a counter between two snapshots (0 without a previous one, or when it went back: a new backend). */
function rateOf(cur: number, prev: number | undefined, dt: number): number {
  if (prev === undefined || dt <= 0 || cur < prev) return 0;
  return (cur - prev) / dt;
}

export function acceptQueueHot(b: Pick<BackendStats, 'acceptQueue'>): boolean {
  const q = b.acceptQueue;
  return q !== null && q.backlog > 0 && q.current >= HOT_ACCEPT_QUEUE * q.backlog;
}

export function poolHot(p: Pick<PoolStats, 'queue'>): boolean {
  return p.queue.current > 0;
}

/** Aligned columns; text columns (listed) left, numbers right. */
function columns(rows: string[][], left: Set<number>): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (left.has(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd());
}

/** One frame: plain lines, with the highlighted ones marked (the caller colours or prefixes them). */
export function topLines(cur: Stats, prev: Stats | null, dtSec: number, view: TopView): Array<{ text: string; hot?: boolean; head?: boolean }> {
  const out: Array<{ text: string; hot?: boolean; head?: boolean }> = [];
  const now = view.now ?? new Date();
  const procs = cur.children.length;
  out.push({ text: `upfront ${view.admin} · up ${duration(cur.uptimeSec)} · ${procs} process${procs === 1 ? '' : 'es'} (${cur.processManager}) · ${now.toLocaleTimeString('en-GB')}${view.error ? ` · ${view.error}` : ''}`, head: true });
  const lq = cur.listenQueue;
  const self = cur.front ? `upfront ${num(cur.front.cpuPercent, 1)}% CPU ${mib(cur.front.rssBytes)}` : '';
  out.push({ text: `listen queue ${num(lq.current)} (front ${num(lq.frontQueue)} + accept ${num(lq.acceptQueues)}; max ${num(lq.max)} of ${num(lq.len)}) · ${num(cur.acceptedConn)} connections · ${self}`, hot: lq.current > 0 });
  const causes = Object.entries(cur.frontResponses)
    .map(([c, n]) => ({ c, n, r: rateOf(n, prev?.frontResponses[c as keyof Stats['frontResponses']], dtSec) }))
    .filter((x) => x.n > 0);
  const frontRate = causes.reduce((a, x) => a + x.r, 0);
  out.push({ text: `front-generated ${perSec(frontRate)}/s${causes.length ? ': ' + causes.map((x) => `${x.c} ${perSec(x.r)}/s (${num(x.n)})`).join(', ') : ' (none since start)'}`, hot: frontRate > 0 });
  for (const p of cur.pools) {
    const pp = prev?.pools.find((x) => x.name === p.name);
    const prevB = new Map((pp?.backends ?? []).map((b) => [b.id, b]));
    let req = 0;
    let r5 = 0;
    for (const b of p.backends) {
      const pb = prevB.get(b.id);
      req += rateOf(b.requests, pb?.requests, dtSec);
      r5 += rateOf(b.responses['5xx'], pb?.responses['5xx'], dtSec);
    }
    const q = p.queue;
    const wait = p.rates?.['10s']?.queueWaitMs.p99 ?? 0;
    out.push({ text: '' });
    out.push({
      text: `POOL ${p.name}  ${p.policy}, overflow ${p.overflow}  queue ${num(q.current)}/${num(q.size)} (max ${num(q.max)}, full ${num(q.full)}, timeouts ${num(q.timeouts)})  wait p99 ${ms(wait)}  ${perSec(req)} req/s  5xx ${perSec(r5)}/s`,
      hot: poolHot(p),
    });
    const rows: string[][] = [['BACKEND', 'PID', 'STATE', 'INFLIGHT/SLOTS', 'ACCEPT Q/BACKLOG', 'MAX', 'REQ/S', 'REQUESTS', 'EAGAIN/S', 'ERR/S', '5XX/S', 'P99', 'RESTARTS', 'RSS', 'CPU', 'UP', 'SERVING NOW']];
    const hot: boolean[] = [false];
    for (const b of p.backends) {
      const pb = prevB.get(b.id);
      const eagain = b.connectErrors.EAGAIN ?? 0;
      const others = sum(b.connectErrors) - eagain;
      const pe = pb ? pb.connectErrors.EAGAIN ?? 0 : undefined;
      const po = pb ? sum(pb.connectErrors) - (pb.connectErrors.EAGAIN ?? 0) : undefined;
      const slots = `${b.inflight}/${b.slots}${b.pipelined > 0 ? ` +${b.pipelined}p` : ''}${b.slotsLearned !== null ? ' L' : ''}`;
      const cur = b.current;
      rows.push([
        b.id, b.pid === null ? '-' : String(b.pid), b.state, slots,
        b.acceptQueue ? `${num(b.acceptQueue.current)}/${num(b.acceptQueue.backlog)}` : '-', b.acceptQueue ? num(b.acceptQueue.max) : '-',
        perSec(rateOf(b.requests, pb?.requests, dtSec)), num(b.requests),
        perSec(rateOf(eagain, pe, dtSec)), perSec(rateOf(others, po, dtSec)), perSec(rateOf(b.responses['5xx'], pb?.responses['5xx'], dtSec)),
        ms(b.rates?.['10s']?.latencyMs.p99 ?? b.latencyMs.p99), num(b.restarts),
        b.process ? mib(b.process.rssBytes) : '-', b.process ? `${num(b.process.cpuPercent, 1)}%` : '-', b.process ? duration(b.process.uptimeSec) : '-',
        cur ? `${cur.method} ${cur.uri} ${ms(cur.durationMs)}` : 'idle',
      ]);
      hot.push(acceptQueueHot(b));
    }
    columns(rows, new Set([0, 2, 3, 16])).forEach((text, i) => out.push({ text, hot: hot[i], head: i === 0 }));
  }
  out.push({ text: '' });
  out.push({ text: 'rates: since the last refresh · p99: last 10 s · +Np: pipelined beyond the slots · L: slots learned from the kernel · q quits' });
  return out;
}

/** A frame for a terminal: cut to its size, highlighted rows coloured (or marked with ! without colour). */
export function renderTop(cur: Stats, prev: Stats | null, dtSec: number, view: TopView): string {
  const lines = topLines(cur, prev, dtSec, view).slice(0, Math.max(1, view.height));
  return lines.map((l) => {
    const text = (view.color ? l.text : `${l.hot ? '!' : ' '}${l.text}`).slice(0, view.width);
    if (!view.color) return text;
    if (l.hot) return `${HIGHLIGHT}${text.padEnd(view.width)}${RESET}`;
    if (l.head) return `${BOLD}${text}${RESET}`;
    return l.text.startsWith('rates:') ? `${DIM}${text}${RESET}` : text;
  }).join('\n');
}

export interface TopIo {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  intervalMs?: number;
}

/** Runs until q (or Ctrl-C). The first read must succeed; later failures are shown and retried. */
export async function runTop(admin: string, io: TopIo): Promise<void> {
  const { stdin, stdout } = io;
  const interval = io.intervalMs ?? 1000;
  let prev: Stats | null = null;
  let prevAt = 0;
  let cur = await fetchStats(admin);
  let curAt = performance.now();
  let error: string | null = null;
  const tty = stdout.isTTY === true;
  const color = tty && !process.env.NO_COLOR;
  const draw = () => {
    const view: TopView = { width: stdout.columns || 120, height: stdout.rows || 40, color, admin, error };
    const frame = renderTop(cur, prev, (curAt - prevAt) / 1000, view);
    // Home, each line cleared to its end, then the rest of the screen cleared: no flicker.
    stdout.write(tty ? `${ESC}H${frame.split('\n').map((l) => `${l}${ESC}K`).join('\n')}${ESC}J` : `${frame}\n\n`);
  };
  if (tty) stdout.write(`${ESC}?1049h${ESC}?25l`); // alternate screen, no cursor
  const wasRaw = stdin.isTTY ? stdin.isRaw : false;
  if (stdin.isTTY) stdin.setRawMode(true);
  stdin.resume();
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => { finish = resolve; });
  const onKey = (data: Buffer) => {
    for (const c of data) if (c === 0x71 /* q */ || c === 0x51 /* Q */ || c === 0x03 /* Ctrl-C */) finish();
  };
  stdin.on('data', onKey);
  stdin.on('end', () => finish());
  process.once('SIGINT', () => finish());
  process.once('SIGTERM', () => finish());
  process.once('SIGHUP', () => finish()); // the terminal went away
  stdout.on('error', () => finish()); // EIO: nobody reads this terminal any more
  const onResize = () => draw();
  stdout.on('resize', onResize);
  const tick = async () => {
    try {
      const next = await fetchStats(admin);
      prev = cur;
      prevAt = curAt;
      cur = next;
      curAt = performance.now();
      error = null;
    } catch (err) {
      error = `no answer: ${(err as Error).message}`;
    }
    if (stopped) return;
    draw();
    timer = setTimeout(() => { void tick(); }, interval);
  };
  draw();
  timer = setTimeout(() => { void tick(); }, interval);
  try {
    await done;
  } finally {
    stopped = true;
    if (timer) clearTimeout(timer);
    stdin.off('data', onKey);
    stdout.off('resize', onResize);
    if (stdin.isTTY) stdin.setRawMode(wasRaw);
    stdin.pause();
    if (tty) stdout.write(`${ESC}?25h${ESC}?1049l`);
  }
}
