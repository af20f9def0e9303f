// Figures over a sliding window (the last 10 s and the last minute) beside the
// lifetime ones: once a second the counters of the front, each pool and each
// backend are read into a ring of 61 samples, and each duration histogram keeps
// what was recorded in each second. Rates and percentiles are computed at that
// tick and held until the next, so every read in between — /stats, the dashboard,
// `upfront top` — shows the same window figures.
import type { Backend } from '../pool/backend.js';
import type { Pool } from '../pool/pool.js';
import type { AcceptQueueSampler } from './acceptQueueSampler.js';
import { FRONT_RESPONSE_CAUSES, type CauseCounts, type FrontResponses } from './frontResponses.js';
import { HistogramWindow, type Histogram } from './histogram.js';

export const WINDOWS = [{ name: '10s', seconds: 10 }, { name: '1m', seconds: 60 }] as const;
export type WindowName = (typeof WINDOWS)[number]['name'];
/** Seconds of per-second points the sparklines get. */
export const HISTORY_POINTS = 60;

type ClassRates = Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>;

export interface BackendWindow {
  /** Seconds the window really covers (less than its name says in the first minute). */
  seconds: number;
  requestsPerSec: number;
  responsesPerSec: ClassRates;
  eagainPerSec: number;
  /** connect() failures other than EAGAIN. */
  connectErrorsPerSec: number;
  failuresPerSec: number;
  latencyMs: Record<string, number>;
}

export interface PoolWindow {
  seconds: number;
  requestsPerSec: number;
  responsesPerSec: ClassRates;
  eagainPerSec: number;
  connectErrorsPerSec: number;
  failuresPerSec: number;
  slotsExhaustedPerSec: number;
  queueWaitMs: Record<string, number>;
}

export interface FrontWindow {
  seconds: number;
  acceptedConnPerSec: number;
  /** Responses the front wrote itself, per cause. */
  frontResponsesPerSec: CauseCounts;
}

// Counter layouts of one sample.
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const B_REQUESTS = 0;
const B_CLASS = 1; // 5 classes
const B_EAGAIN = 6;
const B_CONNERR = 7;
const B_FAILURES = 8;
const B_AQMAX = 9; // not a counter: the accept queue's most in the second (NaN: not measured)
const B_LEN = 10;
const P_EXHAUSTED = 0;
const P_QMAX = 1; // not a counter: the front queue's most in the second
const P_LEN = 2;
const F_ACCEPTED = 0;
const F_CAUSE = 1;

interface Sample {
  t: number;
  values: Map<object, Float64Array>;
}

export interface HistorySources {
  pools: Pool[];
  acceptedConn(): number;
  frontResponses?: FrontResponses | null;
  sampler?: AcceptQueueSampler | null;
}

const FRONT_KEY = {};

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

function sum(o: Record<string, number>): number {
  let n = 0;
  for (const k in o) n += o[k];
  return n;
}

export class StatsHistory {
  private readonly samples: Sample[] = [];
  private readonly latency = new Map<Backend, HistogramWindow>();
  private readonly queueWait = new Map<Pool, HistogramWindow>();
  private timer: NodeJS.Timeout | null = null;
  private readonly listeners: Array<() => void> = [];
  private frontFigures = new Map<WindowName, FrontWindow>();
  private poolFigures = new Map<Pool, Map<WindowName, PoolWindow>>();
  private backendFigures = new Map<Backend, Map<WindowName, BackendWindow>>();
  /** When the window figures were computed (ms since the epoch; 0: not yet). */
  sampledAt = 0;

  constructor(private readonly src: HistorySources, private readonly intervalMs = 1000) {}

  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Called after each tick (process sampling, the refusal warnings). */
  onTick(listener: () => void): void {
    this.listeners.push(listener);
  }

  tick(now = Date.now()): void {
    const values = new Map<object, Float64Array>();
    const front = new Float64Array(1 + FRONT_RESPONSE_CAUSES.length);
    front[F_ACCEPTED] = this.src.acceptedConn();
    const counts = this.src.frontResponses?.counts;
    if (counts) FRONT_RESPONSE_CAUSES.forEach((c, i) => { front[F_CAUSE + i] = counts[c]; });
    values.set(FRONT_KEY, front);
    const sampler = this.src.sampler ?? null;
    const live = new Set<object>();
    for (const pool of this.src.pools) {
      const p = new Float64Array(P_LEN);
      p[P_EXHAUSTED] = pool.slotsExhausted;
      p[P_QMAX] = sampler ? sampler.takeQueueIntervalMax(pool) : pool.queue.length;
      values.set(pool, p);
      live.add(pool);
      this.windowOf(this.queueWait, pool, pool.queueWait).tick();
      for (const b of pool.backends) {
        const v = new Float64Array(B_LEN);
        const c = b.counters;
        v[B_REQUESTS] = c.requests;
        CLASSES.forEach((k, i) => { v[B_CLASS + i] = c.responses[k]; });
        const eagain = c.connectErrors.EAGAIN ?? 0;
        v[B_EAGAIN] = eagain;
        v[B_CONNERR] = sum(c.connectErrors) - eagain;
        v[B_FAILURES] = sum(c.failures);
        v[B_AQMAX] = sampler?.takeIntervalMax(b) ?? NaN;
        values.set(b, v);
        live.add(b);
        this.windowOf(this.latency, b, b.latency).tick();
      }
    }
    for (const k of this.latency.keys()) if (!live.has(k)) this.latency.delete(k);
    for (const k of this.queueWait.keys()) if (!live.has(k)) this.queueWait.delete(k);
    this.samples.push({ t: now, values });
    if (this.samples.length > HISTORY_POINTS + 1) this.samples.shift();
    this.sampledAt = now;
    this.compute();
    for (const l of this.listeners) l();
  }

  private windowOf<K>(map: Map<K, HistogramWindow>, key: K, h: Histogram): HistogramWindow {
    let w = map.get(key);
    if (!w) {
      w = new HistogramWindow(h, HISTORY_POINTS);
      map.set(key, w);
    }
    return w;
  }

  private compute(): void {
    const cur = this.samples[this.samples.length - 1];
    const frontFigures = new Map<WindowName, FrontWindow>();
    const poolFigures = new Map<Pool, Map<WindowName, PoolWindow>>();
    const backendFigures = new Map<Backend, Map<WindowName, BackendWindow>>();
    for (const w of WINDOWS) {
      const oldIdx = Math.max(0, this.samples.length - 1 - w.seconds);
      const old = this.samples[oldIdx];
      const intervals = this.samples.length - 1 - oldIdx;
      const seconds = (cur.t - old.t) / 1000;
      const rate = (key: object, i: number): number => {
        if (seconds <= 0) return 0;
        const a = cur.values.get(key);
        if (!a) return 0;
        const before = old.values.get(key)?.[i] ?? 0; // born after `old`: counted from 0
        return (a[i] - before) / seconds;
      };
      frontFigures.set(w.name, {
        seconds,
        acceptedConnPerSec: round2(rate(FRONT_KEY, F_ACCEPTED)),
        frontResponsesPerSec: Object.fromEntries(FRONT_RESPONSE_CAUSES.map((c, i) => [c, round2(rate(FRONT_KEY, F_CAUSE + i))])) as CauseCounts,
      });
      for (const pool of this.src.pools) {
        const totals = { requests: 0, eagain: 0, connErr: 0, failures: 0, classes: [0, 0, 0, 0, 0] };
        for (const b of pool.backends) {
          const bw: BackendWindow = {
            seconds,
            requestsPerSec: rate(b, B_REQUESTS),
            responsesPerSec: Object.fromEntries(CLASSES.map((k, i) => [k, rate(b, B_CLASS + i)])) as ClassRates,
            eagainPerSec: rate(b, B_EAGAIN),
            connectErrorsPerSec: rate(b, B_CONNERR),
            failuresPerSec: rate(b, B_FAILURES),
            latencyMs: intervals > 0 ? this.latency.get(b)!.percentilesMs(intervals, [50, 90, 99]) : { p50: 0, p90: 0, p99: 0 },
          };
          totals.requests += bw.requestsPerSec;
          totals.eagain += bw.eagainPerSec;
          totals.connErr += bw.connectErrorsPerSec;
          totals.failures += bw.failuresPerSec;
          CLASSES.forEach((k, i) => { totals.classes[i] += bw.responsesPerSec[k]; });
          bw.requestsPerSec = round2(bw.requestsPerSec);
          bw.eagainPerSec = round2(bw.eagainPerSec);
          bw.connectErrorsPerSec = round2(bw.connectErrorsPerSec);
          bw.failuresPerSec = round2(bw.failuresPerSec);
          for (const k of CLASSES) bw.responsesPerSec[k] = round2(bw.responsesPerSec[k]);
          let m = backendFigures.get(b);
          if (!m) backendFigures.set(b, (m = new Map()));
          m.set(w.name, bw);
        }
        let pm = poolFigures.get(pool);
        if (!pm) poolFigures.set(pool, (pm = new Map()));
        pm.set(w.name, {
          seconds,
          requestsPerSec: round2(totals.requests),
          responsesPerSec: Object.fromEntries(CLASSES.map((k, i) => [k, round2(totals.classes[i])])) as ClassRates,
          eagainPerSec: round2(totals.eagain),
          connectErrorsPerSec: round2(totals.connErr),
          failuresPerSec: round2(totals.failures),
          slotsExhaustedPerSec: round2(rate(pool, P_EXHAUSTED)),
          queueWaitMs: intervals > 0 ? this.queueWait.get(pool)!.percentilesMs(intervals, [50, 99]) : { p50: 0, p99: 0 },
        });
      }
    }
    this.frontFigures = frontFigures;
    this.poolFigures = poolFigures;
    this.backendFigures = backendFigures;
  }

  front(): Record<WindowName, FrontWindow> | null {
    return this.frontFigures.size ? Object.fromEntries(this.frontFigures) as Record<WindowName, FrontWindow> : null;
  }

  pool(pool: Pool): Record<WindowName, PoolWindow> | null {
    const m = this.poolFigures.get(pool);
    return m ? Object.fromEntries(m) as Record<WindowName, PoolWindow> : null;
  }

  backend(b: Backend): Record<WindowName, BackendWindow> | null {
    const m = this.backendFigures.get(b);
    return m ? Object.fromEntries(m) as Record<WindowName, BackendWindow> : null;
  }

  /** The accept queue's most in each of the last seconds, oldest first (null where not measured or not there yet). */
  acceptQueueHistory(b: Backend): Array<number | null> {
    return this.series(b, B_AQMAX);
  }

  /** The front queue's most in each of the last seconds, oldest first. */
  queueHistory(pool: Pool): Array<number | null> {
    return this.series(pool, P_QMAX);
  }

  private series(key: object, i: number): Array<number | null> {
    const out: Array<number | null> = [];
    for (let k = Math.max(1, this.samples.length - HISTORY_POINTS); k < this.samples.length; k++) {
      const v = this.samples[k].values.get(key)?.[i];
      out.push(v === undefined || Number.isNaN(v) ? null : v);
    }
    while (out.length < HISTORY_POINTS) out.unshift(null);
    return out;
  }
}
