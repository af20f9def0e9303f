// Latency histograms (HDR: fixed memory, percentiles without keeping samples), the
// same figures over a sliding window, and Prometheus buckets read from them.
import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

/** What the windows read: HDR's counts by index (every histogram built here is one). */
type Counts = hdr.JsHistogram;

/** Values in microseconds, 1 µs to 1 hour, 2 significant digits. */
export function createHistogram(): Histogram {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2, bitBucketSize: 32, autoResize: true });
  withFastIndex(h as unknown as Counts);
  return h;
}

type Indexed = { countsArrayIndex(value: number): number; subBucketHalfCountMagnitude: number; subBucketHalfCount: number; unitMagnitude: number };

/**
 * hdr-histogram-js finds a value's counts index with Math.log2 and two Math.pow per
 * record (two records per request here). For values below 2^32 the same index comes
 * from a count of leading zeros and shifts; larger ones take the library's own path.
 * (test/stats-units.test.ts holds it equal to the library on many values.)
 */
export function withFastIndex(c: Counts): void {
  const h = c as unknown as Indexed;
  const original = h.countsArrayIndex;
  const half = h.subBucketHalfCountMagnitude;
  const halfCount = h.subBucketHalfCount;
  const unit = h.unitMagnitude;
  h.countsArrayIndex = function countsArrayIndex(this: Indexed, value: number): number {
    if (!(value >= 0 && value < 4294967296)) return original.call(this, value);
    const v = value >>> 0;
    const bucketIndex = Math.max(31 - Math.clz32(v) - half - unit, 0);
    return ((bucketIndex + 1) << half) + (v >>> (bucketIndex + unit)) - halfCount;
  };
}

function roundMs(us: number): number {
  return Math.round(us / 10) / 100;
}

/** p50/p90/p99 in milliseconds (0 when empty). */
export function percentilesMs(h: Histogram, ps: readonly number[] = [50, 90, 99]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of ps) out[`p${p}`] = h.totalCount === 0 ? 0 : roundMs(h.getValueAtPercentile(p));
  return out;
}

/** Upper bounds (seconds) of the Prometheus buckets every duration histogram uses; +Inf is added. */
export const SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

export interface SecondsHistogram {
  count: number;
  /** Sum of the values in seconds (each value taken as the middle of its HDR bin, as HDR's mean does). */
  sum: number;
  /** Cumulative counts per upper bound, in increasing order as Prometheus wants them: [le (seconds, as text), values ≤ it]; "+Inf" last. */
  buckets: Array<[string, number]>;
}

/** A µs histogram as Prometheus buckets in seconds: `_bucket`, `_sum`, `_count` from one pass over its counts. */
export function secondsHistogram(h: Histogram): SecondsHistogram {
  const c = h as unknown as Counts;
  const perBucket = new Array<number>(SECONDS_BUCKETS.length + 1).fill(0);
  let sumUs = 0;
  let count = 0;
  if (h.totalCount > 0) {
    for (let i = 0; i < c.countsArrayLength; i++) {
      const n = c.getCountAtIndex(i);
      if (n === 0) continue;
      const v = c.medianEquivalentValue(c.valueFromIndex(i));
      sumUs += v * n;
      count += n;
      let b = 0;
      while (b < SECONDS_BUCKETS.length && v > SECONDS_BUCKETS[b] * 1e6) b++;
      perBucket[b] += n;
    }
  }
  const buckets: Array<[string, number]> = [];
  let acc = 0;
  SECONDS_BUCKETS.forEach((le, i) => { acc += perBucket[i]; buckets.push([String(le), acc]); });
  buckets.push(['+Inf', count]);
  return { count, sum: Math.round(sumUs) / 1e6, buckets };
}

/** A value's unit in the last place, as HDR uses it to round a percentile's count. */
function ulp(x: number): number {
  return x === 0 ? Number.MIN_VALUE : 2 ** (Math.floor(Math.log2(Math.abs(x))) - 52);
}

/**
 * The same histogram over the last N seconds: tick() once a second stores what
 * was recorded since the tick before (sparse: index → count), and percentiles(N)
 * merges the last N of those. Percentiles follow HDR's own rule, so a window that
 * covers everything gives the lifetime figures.
 */
export class HistogramWindow {
  private prev = new Float64Array(0);
  private prevTotal = 0;
  /** Per tick, oldest first: indices and counts recorded in that second. */
  private readonly ticks: Array<{ idx: Uint32Array; cnt: Float64Array }> = [];
  private scratch = new Float64Array(0);

  constructor(private readonly source: Histogram, private readonly depth = 60) {}

  tick(): void {
    const c = this.source as unknown as Counts;
    const len = c.countsArrayLength;
    if (this.prev.length < len) {
      const grown = new Float64Array(len);
      grown.set(this.prev);
      this.prev = grown;
    }
    const idx: number[] = [];
    const cnt: number[] = [];
    if (c.totalCount !== this.prevTotal) {
      for (let i = 0; i < len; i++) {
        const n = c.getCountAtIndex(i);
        const d = n - this.prev[i];
        if (d !== 0) {
          idx.push(i);
          cnt.push(d);
          this.prev[i] = n;
        }
      }
      this.prevTotal = c.totalCount;
    }
    this.ticks.push({ idx: Uint32Array.from(idx), cnt: Float64Array.from(cnt) });
    if (this.ticks.length > this.depth) this.ticks.shift();
  }

  /** Values recorded over the last `ticks` ticks. */
  count(ticks: number): number {
    let n = 0;
    for (let t = Math.max(0, this.ticks.length - ticks); t < this.ticks.length; t++) for (const v of this.ticks[t].cnt) n += v;
    return n;
  }

  /** Percentiles in ms of what was recorded over the last `ticks` ticks (0 when nothing was). */
  percentilesMs(ticks: number, ps: readonly number[]): Record<string, number> {
    const c = this.source as unknown as Counts;
    if (this.scratch.length < this.prev.length) this.scratch = new Float64Array(this.prev.length);
    const s = this.scratch;
    s.fill(0);
    let total = 0;
    let hi = 0;
    for (let t = Math.max(0, this.ticks.length - ticks); t < this.ticks.length; t++) {
      const { idx, cnt } = this.ticks[t];
      for (let k = 0; k < idx.length; k++) {
        s[idx[k]] += cnt[k];
        total += cnt[k];
        if (idx[k] >= hi) hi = idx[k] + 1;
      }
    }
    const out: Record<string, number> = {};
    for (const p of ps) {
      if (total <= 0) { out[`p${p}`] = 0; continue; }
      const fp = (Math.min(p, 100) / 100) * total;
      const target = Math.max(Math.ceil(fp - ulp(fp)), 1);
      let acc = 0;
      let value = 0;
      for (let i = 0; i < hi; i++) {
        acc += s[i];
        if (acc >= target) { value = c.highestEquivalentValue(c.valueFromIndex(i)); break; }
      }
      out[`p${p}`] = roundMs(value);
    }
    return out;
  }
}
