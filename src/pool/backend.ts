// One upstream: a spawned process (with its socket) or a remote address. Holds the
// slots, the transport client and the counters the stats read.
import { FcgiClient, describeAddress, type FcgiAddress } from '../fastcgi/client.js';

export type BackendState = 'starting' | 'ready' | 'busy' | 'down' | 'restarting' | 'draining';

export interface BackendSwitches {
  multithreaded: boolean;
  multiplexed: boolean;
  /** Concurrent requests the application takes (1 when not multithreaded). */
  slots: number;
  /** Where the decision came from: 'flag', 'GET_VALUES', 'fallback (no GET_VALUES answer)'. */
  source: string;
}

export interface BackendCounters {
  requests: number;
  responses: { '1xx': number; '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  connectErrors: Record<string, number>;
  /** Failures after the connection was made: closed, protocol, timeout, overloaded... */
  failures: Record<string, number>;
  retried: number;
}

export class Backend {
  state: BackendState = 'starting';
  pid: number | undefined;
  inflight = 0;
  maxInflight = 0;
  restarts = 0;
  switches: BackendSwitches;
  readonly counters: BackendCounters = {
    requests: 0,
    responses: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
    connectErrors: {},
    failures: {},
    retried: 0,
  };
  /** For random tie-breaking without allocation. */
  readonly index: number;

  constructor(readonly id: string, readonly address: FcgiAddress, readonly client: FcgiClient,
    switches: BackendSwitches, index: number) {
    this.switches = switches;
    this.index = index;
  }

  get addressText(): string {
    return describeAddress(this.address);
  }

  get accepting(): boolean {
    return this.state === 'ready' || this.state === 'busy';
  }

  /**
   * Requests this backend may hold. Not multiplexed: one per slot, plus a pipelined
   * one behind each (body-less requests only, see FcgiClient.pipelineDepth).
   */
  capacityFor(pipelinable: boolean): number {
    const s = this.switches.slots;
    if (this.switches.multiplexed || !pipelinable) return s;
    return s * this.client.options.pipelineDepth;
  }

  hasRoom(pipelinable: boolean): boolean {
    if (!this.accepting) return false;
    if (this.inflight < this.switches.slots) return true;
    return pipelinable && this.inflight < this.capacityFor(true);
  }

  applySwitches(switches: BackendSwitches): void {
    this.switches = switches;
    const o = this.client.options;
    o.multiplexed = switches.multiplexed;
    o.maxConns = switches.multiplexed ? 1 : switches.slots;
  }
}
