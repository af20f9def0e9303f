// The results of `upfront bench`: one JSON document per sweep, written by the
// sweep and read by the report. Plain data only, so it round-trips through JSON.

/** The fronts a sweep can compare: upfront and the fronts people run today (over FastCGI or as HTTP reverse proxies). */
export const PEER_FRONTS = ['nginx', 'h2o', 'haproxy', 'lighttpd', 'caddy'] as const;
export type PeerFrontName = (typeof PEER_FRONTS)[number];
export type FrontName = 'upfront' | PeerFrontName;
export const ALL_FRONTS: readonly FrontName[] = ['upfront', ...PEER_FRONTS];

/**
 * How the fronts talk to the backends: FastCGI (the peers over spawn-fcgi) or
 * HTTP/1.1 over one unix socket per process (the app binds UPFRONT_SOCKET).
 */
export const PROTOCOLS = ['fastcgi', 'http'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/**
 * Requests the load tool counted as failed, by kind. A figure counts only if
 * every request is counted: a cell with any failure is marked in every table.
 */
export interface Failures {
  connect: number;
  read: number;
  write: number;
  timeout: number;
  /** Responses with a failing status (wrk: ≥ 400; autocannon: not 2xx; siege: 4xx, as transactions that were not successful). */
  non2xx: number;
  /** Failures the tool does not split by kind (autocannon's socket errors other than timeouts; siege's failed transactions: socket errors and 5xx together). */
  other: number;
  total: number;
}

export function noFailures(): Failures {
  return { connect: 0, read: 0, write: 0, timeout: 0, non2xx: 0, other: 0, total: 0 };
}

export function withTotal(f: Omit<Failures, 'total'>): Failures {
  return { ...f, total: f.connect + f.read + f.write + f.timeout + f.non2xx + f.other };
}

export interface CellMetrics {
  rps: number;                 // the load tool's rate (wrk, autocannon: all responses; siege: its transaction rate)
  requests: number;            // responses the load tool counted in the measured window
  /** null: the load tool does not give it (siege has no percentiles). */
  latencyMs: { p50: number | null; p90: number | null; p99: number | null; max: number | null };
  failures: Failures;
  eagain: number | null;       // connect() failures on the backend socket the front logged (or upfront's /stats); null = not measurable
  acceptQueueMax: number | null;
  frontQueueMax: number | null; // upfront's front queue; null for the other fronts
  cpuFrontSecPer1000: number;   // CPU seconds of the front (every process and thread of it) per 1000 requests
  cpuBackendSecPer1000: number; // CPU seconds of all backend processes per 1000 requests
  /**
   * CPU seconds the whole machine was busy per 1000 requests — the front, the backends, the
   * load tool, the kernel's threads, anything else — and the share of its CPU time that was
   * busy (%). What is left after the front and the backends is mostly the load tool. Null
   * where /proc/stat is unreadable, and in results written before 2026-12-02.
   */
  cpuMachineSecPer1000?: number | null;
  machineBusyPct?: number | null;
  /**
   * CPU seconds of the load side per 1000 requests: the load tool (wrk and siege as child
   * processes, counted once they exit; autocannon in this process) and the bench process
   * driving it. Null in results written before 2026-12-02 (later).
   */
  cpuLoadSecPer1000?: number | null;
  memFrontMb: number;
  memBackendMb: number;         // sum of RSS of the backends
}

export interface Cell {
  front: FrontName;
  /** Absent in results written before HTTP cells existed: fastcgi. */
  protocol?: Protocol;
  overflow: string | null;      // upfront's overflow mode (queue|nginx|...), null for the other fronts
  procs: number;
  switches: { multithreaded: boolean; multiplexed: boolean };
  /** In a sweep of auto beside hand-set switches, an auto cell (what the backend answers, and what upfront learns): `switches` is what it chose. */
  switchesAuto?: boolean;
  repeats: CellMetrics[];
  /** When each run of the cell started (ISO dates): the runs of a process count's cells take turns. */
  runsAt?: string[];
  median: CellMetrics | null;   // medians over repeats (null if the cell failed)
  min: CellMetrics | null;
  max: CellMetrics | null;
  error: string | null;         // why the cell has no figure, e.g. "no successful request: ... (backend stderr: ...)"
  /** What happened on the way that a reader should know (a load tool killed, a run not counted). */
  notes?: string[];
}

export interface BenchResults {
  command: string;
  startedAt: string;            // ISO date
  /** Versions of what ran: a front's key is null when it is not installed. */
  machine: {
    cores: number; kernel: string; node: string; nginx: string | null;
    h2o?: string | null; haproxy?: string | null; lighttpd?: string | null; caddy?: string | null;
    spawnFcgi?: string | null; loadTool?: string | null;
    /** The backend's Python (`python3 --version`), when the backend runs on one. */
    python?: string | null;
  };
  /** backlog: what the bench gave the backend sockets (FastCGI only: an HTTP app binds its own socket and sets its own). */
  settings: { path: string; concurrency: number; durationSec: number; warmupSec: number; repeat: number; load: string; backend: string; backlog?: number; fronts?: FrontName[]; protocol?: Protocol };
  /** Fronts asked for but not run (not installed, or not at some process counts), with the reason. */
  skipped?: Array<{ front: FrontName; reason: string }>;
  cells: Cell[];
  recommendation: { front: string; protocol?: Protocol; overflow: string | null; procs: number; rps: number; why: string } | null;
}

export interface Summary {
  median: CellMetrics | null;
  min: CellMetrics | null;
  max: CellMetrics | null;
}

/** Successful responses of a run: what the tool counted minus failing statuses. */
export function successfulRequests(m: CellMetrics): number {
  return Math.max(0, m.requests - m.failures.non2xx);
}

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(values: number[]): number {
  if (values.length === 0) throw new RangeError('median of an empty list');
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

type Reducer = (values: number[]) => number;

/** A field that is null in any repeat stays null: it was not measurable. */
function reduceNullable(values: (number | null)[], f: Reducer): number | null {
  if (values.some((v) => v === null)) return null;
  return f(values as number[]);
}

function reduceAll(repeats: CellMetrics[], f: Reducer): CellMetrics {
  const num = (pick: (m: CellMetrics) => number): number => f(repeats.map(pick));
  const opt = (pick: (m: CellMetrics) => number | null): number | null => reduceNullable(repeats.map(pick), f);
  const failure = (k: keyof Failures): number => num((m) => m.failures[k]);
  return {
    rps: num((m) => m.rps),
    requests: num((m) => m.requests),
    latencyMs: {
      p50: opt((m) => m.latencyMs.p50),
      p90: opt((m) => m.latencyMs.p90),
      p99: opt((m) => m.latencyMs.p99),
      max: opt((m) => m.latencyMs.max),
    },
    failures: {
      connect: failure('connect'), read: failure('read'), write: failure('write'), timeout: failure('timeout'),
      non2xx: failure('non2xx'), other: failure('other'), total: failure('total'),
    },
    eagain: opt((m) => m.eagain),
    acceptQueueMax: opt((m) => m.acceptQueueMax),
    frontQueueMax: opt((m) => m.frontQueueMax),
    cpuFrontSecPer1000: num((m) => m.cpuFrontSecPer1000),
    cpuBackendSecPer1000: num((m) => m.cpuBackendSecPer1000),
    cpuMachineSecPer1000: opt((m) => m.cpuMachineSecPer1000 ?? null),
    machineBusyPct: opt((m) => m.machineBusyPct ?? null),
    cpuLoadSecPer1000: opt((m) => m.cpuLoadSecPer1000 ?? null),
    memFrontMb: num((m) => m.memFrontMb),
    memBackendMb: num((m) => m.memBackendMb),
  };
}

/**
 * Per-field median, min and max over the repeats of one cell. Every field is
 * reduced on its own (the median rps and the median p99 may come from different
 * repeats). No repeats → all null. Failures are the exception that matters: a
 * cell is marked when any repeat failed a request (see `failuresOfCell`).
 */
export function summarize(repeats: CellMetrics[]): Summary {
  if (repeats.length === 0) return { median: null, min: null, max: null };
  return {
    median: reduceAll(repeats, median),
    min: reduceAll(repeats, (v) => Math.min(...v)),
    max: reduceAll(repeats, (v) => Math.max(...v)),
  };
}

/** Failed requests summed over every repeat of a cell (the median may hide a repeat that failed). */
export function failuresOfCell(c: Cell): number {
  return c.repeats.reduce((a, m) => a + m.failures.total, 0);
}
