// The figures of GET /stats, /metrics and /status, from one snapshot so the three agree.
// Names follow HAProxy's and php-fpm's where users know them.
import type { Pool } from '../pool/pool.js';
import type { AcceptQueueSampler } from './acceptQueueSampler.js';
import { zeroCauses, type CauseCounts, type FrontResponses } from './frontResponses.js';
import { percentilesMs, secondsHistogram, type SecondsHistogram } from './histogram.js';
import type { BackendWindow, FrontWindow, PoolWindow, StatsHistory, WindowName } from './history.js';
import type { InService, RequestFigures } from './inService.js';
import type { ProcessFigures, ProcessSampler } from './processSampler.js';

export interface StatsSources {
  pools: Pool[];
  startedAt: number;
  acceptedConn(): number;
  children(): Array<{ id: string; pid: number | undefined; backend?: string; state?: string; restarts?: number; cpu?: number | null }>;
  supervisorCounters?(): { recycles: number; reloads: number; scaleChanges: number } | null;
  sampler: AcceptQueueSampler | null;
  /** Responses the front wrote itself, per cause. */
  frontResponses?: FrontResponses | null;
  /** The request each backend serves now. */
  inService?: InService | null;
  /** Window figures (10 s, 1 min) and the per-second history. */
  history?: StatsHistory | null;
  /** RSS, CPU and start time of the front and of every child. */
  processes?: ProcessSampler | null;
  /** php-fpm's word: static, or dynamic (--procs MIN:MAX). */
  processManager?: 'static' | 'dynamic';
}

export interface ProcessStats extends ProcessFigures {
  uptimeSec: number;
}

export interface BackendStats {
  id: string;
  address: string;
  pid: number | null;
  state: string;
  slots: number;
  /** What the backend said (GET_VALUES) or the flags gave. */
  slotsClaimed: number;
  /** What it was seen to serve at once when a further connection went unserved; null: not measured. */
  slotsLearned: number | null;
  inflight: number;
  /** Of the requests in flight, those written behind another on a connection (pipelined), beyond the slots. */
  pipelined: number;
  maxInflight: number;
  requests: number;
  responses: Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>;
  connectErrors: Record<string, number>;
  failures: Record<string, number>;
  retried: number;
  acceptQueue: { current: number; max: number; backlog: number } | null;
  restarts: number;
  multithreaded: boolean;
  multiplexed: boolean;
  switchesFrom: string;
  pipelineDepth: number;
  connectionsOpened: number;
  slowRequests: number;
  latencyMs: Record<string, number>;
  /** Time from slot to end of response, as Prometheus buckets (seconds). */
  latencySeconds: SecondsHistogram;
  /** Its process: RSS, CPU, start (null: not spawned by upfront, or gone). */
  process: ProcessStats | null;
  /** The oldest request it serves now (php-fpm's request method / URI / duration), null when idle. */
  current: RequestFigures | null;
  /** The last request it finished. */
  last: RequestFigures | null;
  rates: Record<WindowName, BackendWindow> | null;
  /** With ?history: the accept queue's most in each of the last 60 s, oldest first. */
  acceptQueueHistory?: Array<number | null>;
  /** Set when it failed to run `down-after-failures` times in a row. */
  down: { lastExit: string; stderrTail: string[] } | null;
  /** Active health checks of an upstream (null: not checked). */
  health: { status: 'up' | 'down'; checks: number; failures: number; consecutiveFailed: number; lastError: string | null; lastCheck: string | null } | null;
}

export interface PoolStats {
  name: string;
  policy: string;
  overflow: string;
  queue: {
    current: number; max: number; size: number; timeouts: number; full: number;
    waitMs: Record<string, number>;
    /** Time spent in the front queue by requests that got a slot, as Prometheus buckets (seconds). */
    waitSeconds: SecondsHistogram;
  };
  slotsExhausted: number;
  activeBackends: number;
  maxActiveBackends: number;
  rates: Record<WindowName, PoolWindow> | null;
  /** With ?history: the front queue's most in each of the last 60 s, oldest first. */
  queueHistory?: Array<number | null>;
  backends: BackendStats[];
}

export interface Stats {
  uptimeSec: number;
  startTime: number;
  /** When the window figures and the process figures were sampled (ms since the epoch). */
  sampledAt: number;
  acceptedConn: number;
  /**
   * Every request waiting for a backend to take it: the front queues plus the
   * backends' kernel accept queues (php-fpm's "listen queue"); `len` is what they
   * hold at most (queue-size plus the backlogs); `max` the most seen at a sample.
   */
  listenQueue: { current: number; max: number; len: number; frontQueue: number; acceptQueues: number };
  /** Responses the front wrote itself, per cause (not counted in any backend's responses). */
  frontResponses: CauseCounts;
  rates: Record<WindowName, FrontWindow> | null;
  processManager: string;
  /** The front's own process. */
  front: ProcessStats | null;
  /** One row per spawned process: in shared-socket mode several serve one backend. */
  /** cpu: the CPU the process is bound to (--cpu-affinity auto), or null. */
  children: Array<{ id: string; pid: number | null; backend: string; state: string; restarts: number; cpu: number | null }>;
  processes: { recycles: number; reloads: number; scaleChanges: number };
  pools: PoolStats[];
}

export interface SnapshotOptions {
  /** Add the per-second series the dashboard draws. */
  history?: boolean;
}

function withUptime(p: ProcessFigures | null, nowSec: number): ProcessStats | null {
  return p ? { ...p, uptimeSec: Math.max(0, Math.floor(nowSec - p.startTime)) } : null;
}

export function statsSnapshot(src: StatsSources, opts: SnapshotOptions = {}): Stats {
  src.sampler?.sample(); // fresh kernel numbers for this read
  const now = Date.now();
  const nowSec = now / 1000;
  const sampler = src.sampler;
  const history = src.history ?? null;
  const procs = src.processes ?? null;
  const live = src.inService ?? null;
  const tNow = performance.now();
  let backlogs = 0;
  let queueSizes = 0;
  const pools = src.pools.map((pool): PoolStats => {
    queueSizes += pool.options.queueSize;
    const stats: PoolStats = {
      name: pool.options.name,
      policy: pool.options.policy.name,
      overflow: pool.options.overflow,
      queue: {
        current: pool.queue.length,
        max: pool.queue.max,
        size: pool.options.queueSize,
        timeouts: pool.queue.timeouts,
        full: pool.queue.full,
        waitMs: percentilesMs(pool.queueWait, [50, 99]),
        waitSeconds: secondsHistogram(pool.queueWait),
      },
      slotsExhausted: pool.slotsExhausted,
      activeBackends: pool.activeBackends,
      maxActiveBackends: pool.maxActiveBackends,
      rates: history?.pool(pool) ?? null,
      backends: pool.backends.map((b): BackendStats => {
        const aq = sampler?.of(b) ?? null;
        if (aq) backlogs += aq.backlog;
        const bs: BackendStats = {
          id: b.id,
          address: b.addressText,
          pid: b.pid ?? null,
          state: b.state === 'ready' && b.inflight >= b.slots ? 'busy' : b.state,
          slots: b.slots,
          slotsClaimed: b.caps.slotsClaimed,
          slotsLearned: b.caps.slotsLearned,
          inflight: b.inflight,
          pipelined: b.caps.pipelineDepth > 1 ? Math.max(0, b.inflight - b.slots) : 0,
          maxInflight: b.maxInflight,
          requests: b.counters.requests,
          responses: { ...b.counters.responses },
          connectErrors: { ...b.counters.connectErrors },
          failures: { ...b.counters.failures },
          retried: b.counters.retried,
          acceptQueue: aq,
          restarts: b.restarts,
          multithreaded: b.caps.multithreaded,
          multiplexed: b.caps.multiplexed,
          switchesFrom: b.caps.source,
          pipelineDepth: b.caps.pipelineDepth,
          connectionsOpened: b.transport.figures.connectionsOpened,
          slowRequests: b.slowRequests,
          latencyMs: percentilesMs(b.latency, [50, 90, 99]),
          latencySeconds: secondsHistogram(b.latency),
          process: withUptime(procs?.of(b.pid) ?? null, nowSec),
          current: live?.current(b, tNow) ?? null,
          last: live?.last(b) ?? null,
          rates: history?.backend(b) ?? null,
          down: b.downReason,
          health: b.health === null ? null : {
            status: b.health.status, checks: b.health.checks, failures: b.health.failures,
            consecutiveFailed: b.health.consecutiveFailed, lastError: b.health.lastError, lastCheck: b.health.lastCheck,
          },
        };
        if (opts.history && history) bs.acceptQueueHistory = history.acceptQueueHistory(b);
        return bs;
      }),
    };
    if (opts.history && history) stats.queueHistory = history.queueHistory(pool);
    return stats;
  });
  return {
    uptimeSec: Math.floor((now - src.startedAt) / 1000),
    startTime: Math.floor(src.startedAt / 1000),
    sampledAt: history?.sampledAt ?? 0,
    acceptedConn: src.acceptedConn(),
    listenQueue: {
      current: sampler?.listenQueue ?? 0,
      max: sampler?.listenQueueMax ?? 0,
      len: queueSizes + backlogs,
      frontQueue: sampler?.frontQueued ?? 0,
      acceptQueues: sampler?.acceptQueued ?? 0,
    },
    frontResponses: src.frontResponses ? { ...src.frontResponses.counts } : zeroCauses(),
    rates: history?.front() ?? null,
    processManager: src.processManager ?? 'static',
    front: withUptime(procs?.of(process.pid) ?? null, nowSec),
    children: src.children().map((c) => ({ id: c.id, pid: c.pid ?? null, backend: c.backend ?? c.id, state: c.state ?? 'ready', restarts: c.restarts ?? 0, cpu: c.cpu ?? null })),
    processes: src.supervisorCounters?.() ?? { recycles: 0, reloads: 0, scaleChanges: 0 },
    pools,
  };
}
