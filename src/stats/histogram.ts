// Latency histograms (HDR: fixed memory, percentiles without keeping samples).
import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

/** Values in microseconds, 1 µs to 1 hour, 2 significant digits. */
export function createHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2, bitBucketSize: 32, autoResize: true });
}

/** p50/p90/p99 in milliseconds (0 when empty). */
export function percentilesMs(h: Histogram, ps: readonly number[] = [50, 90, 99]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of ps) out[`p${p}`] = h.totalCount === 0 ? 0 : Math.round(h.getValueAtPercentile(p) / 10) / 100;
  return out;
}
