// The figures of GET /stats, /metrics and /status, from one snapshot so the three agree.
// Names follow HAProxy's and php-fpm's where users know them.
import type { Pool } from '../pool/pool.js';
import type { AcceptQueueSampler } from './acceptQueueSampler.js';
import { percentilesMs } from './histogram.js';

export interface StatsSources {
  pools: Pool[];
  startedAt: number;
  acceptedConn(): number;
  children(): Array<{ id: string; pid: number | undefined; backend?: string; state?: string; restarts?: number }>;
  supervisorCounters?(): { recycles: number; reloads: number; scaleChanges: number } | null;
  sampler: AcceptQueueSampler | null;
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
  /** Set when it failed to run `down-after-failures` times in a row. */
  down: { lastExit: string; stderrTail: string[] } | null;
}

export interface PoolStats {
  name: string;
  policy: string;
  overflow: string;
  queue: { current: number; max: number; size: number; timeouts: number; full: number; waitMs: Record<string, number> };
  slotsExhausted: number;
  activeBackends: number;
  maxActiveBackends: number;
  backends: BackendStats[];
}

export interface Stats {
  uptimeSec: number;
  startTime: number;
  acceptedConn: number;
  listenQueue: { current: number; max: number };
  /** One row per spawned process: in shared-socket mode several serve one backend. */
  children: Array<{ id: string; pid: number | null; backend: string; state: string; restarts: number }>;
  processes: { recycles: number; reloads: number; scaleChanges: number };
  pools: PoolStats[];
}

export function statsSnapshot(src: StatsSources): Stats {
  src.sampler?.sample(); // fresh kernel numbers for this read
  return {
    uptimeSec: Math.floor((Date.now() - src.startedAt) / 1000),
    startTime: Math.floor(src.startedAt / 1000),
    acceptedConn: src.acceptedConn(),
    listenQueue: { current: src.sampler?.totalCurrent ?? 0, max: src.sampler?.totalMax ?? 0 },
    children: src.children().map((c) => ({ id: c.id, pid: c.pid ?? null, backend: c.backend ?? c.id, state: c.state ?? 'ready', restarts: c.restarts ?? 0 })),
    processes: src.supervisorCounters?.() ?? { recycles: 0, reloads: 0, scaleChanges: 0 },
    pools: src.pools.map((pool): PoolStats => ({
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
      },
      slotsExhausted: pool.slotsExhausted,
      activeBackends: pool.activeBackends,
      maxActiveBackends: pool.maxActiveBackends,
      backends: pool.backends.map((b): BackendStats => ({
        id: b.id,
        address: b.addressText,
        pid: b.pid ?? null,
        state: b.state === 'ready' && b.inflight >= b.slots ? 'busy' : b.state,
        slots: b.slots,
        slotsClaimed: b.caps.slotsClaimed,
        slotsLearned: b.caps.slotsLearned,
        inflight: b.inflight,
        maxInflight: b.maxInflight,
        requests: b.counters.requests,
        responses: { ...b.counters.responses },
        connectErrors: { ...b.counters.connectErrors },
        failures: { ...b.counters.failures },
        retried: b.counters.retried,
        acceptQueue: b.acceptQueue ? { ...b.acceptQueue } : null,
        restarts: b.restarts,
        multithreaded: b.caps.multithreaded,
        multiplexed: b.caps.multiplexed,
        switchesFrom: b.caps.source,
        pipelineDepth: b.caps.pipelineDepth,
        connectionsOpened: b.transport.figures.connectionsOpened,
        slowRequests: b.slowRequests,
        latencyMs: percentilesMs(b.latency, [50, 90, 99]),
        down: b.downReason,
      })),
    })),
  };
}
