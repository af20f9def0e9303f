// The results of `upfront bench`: one JSON document per sweep, written by the
// sweep and read by the report. Plain data only, so it round-trips through JSON.

export interface CellMetrics {
  rps: number;                 // requests per second (all responses)
  requests: number;            // completed requests in the measured window
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  non2xx: number;
  socketErrors: number;
  eagain: number | null;       // EAGAIN count (nginx error log or upfront /stats); null = not measurable
  acceptQueueMax: number | null;
  frontQueueMax: number | null; // upfront's front queue; null for nginx
  cpuFrontSecPer1000: number;   // CPU seconds of the front per 1000 requests
  cpuBackendSecPer1000: number; // CPU seconds of all backend processes per 1000 requests
  memFrontMb: number;
  memBackendMb: number;         // sum of RSS of the backends
}

export interface Cell {
  front: 'upfront' | 'nginx';
  overflow: string | null;      // upfront's overflow mode (queue|nginx|...), null for nginx
  procs: number;
  switches: { multithreaded: boolean; multiplexed: boolean };
  repeats: CellMetrics[];
  median: CellMetrics | null;   // medians over repeats (null if the cell failed)
  min: CellMetrics | null;
  max: CellMetrics | null;
  error: string | null;         // e.g. "nginx is not installed: apt-get install nginx-light"
}

export interface BenchResults {
  command: string;
  startedAt: string;            // ISO date
  machine: { cores: number; kernel: string; node: string; nginx: string | null };
  settings: { path: string; concurrency: number; durationSec: number; warmupSec: number; repeat: number; load: string; backend: string };
  cells: Cell[];
  recommendation: { front: string; overflow: string | null; procs: number; rps: number; why: string } | null;
}

export interface Summary {
  median: CellMetrics | null;
  min: CellMetrics | null;
  max: CellMetrics | null;
}

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(values: number[]): number {
  if (values.length === 0) throw new RangeError('median of an empty list');
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

type Reducer = (values: number[]) => number;

function reduceNumber(values: number[], f: Reducer): number {
  return f(values);
}

/** A field that is null in any repeat stays null: it was not measurable. */
function reduceNullable(values: (number | null)[], f: Reducer): number | null {
  if (values.some((v) => v === null)) return null;
  return f(values as number[]);
}

function reduceAll(repeats: CellMetrics[], f: Reducer): CellMetrics {
  const num = (pick: (m: CellMetrics) => number): number => reduceNumber(repeats.map(pick), f);
  const opt = (pick: (m: CellMetrics) => number | null): number | null => reduceNullable(repeats.map(pick), f);
  return {
    rps: num((m) => m.rps),
    requests: num((m) => m.requests),
    latencyMs: {
      p50: num((m) => m.latencyMs.p50),
      p90: num((m) => m.latencyMs.p90),
      p99: num((m) => m.latencyMs.p99),
      max: num((m) => m.latencyMs.max),
    },
    non2xx: num((m) => m.non2xx),
    socketErrors: num((m) => m.socketErrors),
    eagain: opt((m) => m.eagain),
    acceptQueueMax: opt((m) => m.acceptQueueMax),
    frontQueueMax: opt((m) => m.frontQueueMax),
    cpuFrontSecPer1000: num((m) => m.cpuFrontSecPer1000),
    cpuBackendSecPer1000: num((m) => m.cpuBackendSecPer1000),
    memFrontMb: num((m) => m.memFrontMb),
    memBackendMb: num((m) => m.memBackendMb),
  };
}

/**
 * Per-field median, min and max over the repeats of one cell. Every field is
 * reduced on its own (the median rps and the median p99 may come from different
 * repeats). No repeats → all null.
 */
export function summarize(repeats: CellMetrics[]): Summary {
  if (repeats.length === 0) return { median: null, min: null, max: null };
  return {
    median: reduceAll(repeats, median),
    min: reduceAll(repeats, (v) => Math.min(...v)),
    max: reduceAll(repeats, (v) => Math.max(...v)),
  };
}
