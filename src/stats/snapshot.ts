// The JSON shape of GET /stats (names kept stable: users script against them).
import type { Pool } from '../pool/pool.js';
import { acceptQueues } from '../native/sock.js';

export interface StatsSources {
  pools: Pool[];
  startedAt: number;
  acceptedConn(): number;
  children(): Array<{ id: string; pid: number | undefined }>;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export function statsSnapshot(src: StatsSources): Record<string, unknown> {
  let queues: Map<string, { queued: number; backlog: number }> | null = null;
  try {
    queues = new Map(acceptQueues().map((q) => [q.path, { queued: q.queued, backlog: q.backlog }]));
  } catch {
    queues = null; // sock_diag unavailable (a container without netlink): show no numbers rather than wrong ones
  }
  return {
    uptimeSec: Math.round((Date.now() - src.startedAt) / 1000),
    acceptedConn: src.acceptedConn(),
    children: src.children(),
    pools: src.pools.map((pool) => {
      const waits = pool.waitSamples.slice().sort((a, b) => a - b);
      return {
        name: pool.options.name,
        policy: pool.options.policy.name,
        overflow: pool.options.overflow,
        queue: {
          current: pool.queue.length,
          max: pool.queue.max,
          timeouts: pool.queue.timeouts,
          full: pool.queue.full,
          waitMs: { p50: percentile(waits, 50), p99: percentile(waits, 99) },
        },
        backends: pool.backends.map((b) => {
          const q = 'path' in b.address && queues ? queues.get(b.address.path) : undefined;
          return {
            id: b.id,
            address: b.addressText,
            pid: b.pid ?? null,
            state: b.state === 'ready' && b.inflight >= b.switches.slots ? 'busy' : b.state,
            slots: b.switches.slots,
            inflight: b.inflight,
            maxInflight: b.maxInflight,
            requests: b.counters.requests,
            responses: { ...b.counters.responses },
            connectErrors: { ...b.counters.connectErrors },
            failures: { ...b.counters.failures },
            retried: b.counters.retried,
            acceptQueue: q ? { current: q.queued, backlog: q.backlog } : null,
            restarts: b.restarts,
            multithreaded: b.switches.multithreaded,
            multiplexed: b.switches.multiplexed,
            switchesFrom: b.switches.source,
            pipelineDepth: b.client.options.pipelineDepth,
            connectionsOpened: b.client.connectionsOpened,
          };
        }),
      };
    }),
  };
}
