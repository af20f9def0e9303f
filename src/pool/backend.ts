// One upstream: a spawned process (with its socket) or a remote address. Holds the
// slots, the transport client and the counters the stats read.
import { FcgiClient, describeAddress, type FcgiAddress } from '../fastcgi/client.js';
import type { HttpClient } from '../http/httpClient.js';
import { createHistogram } from '../stats/histogram.js';

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
  /** Time from getting the slot to the end of the response (µs). */
  readonly latency = createHistogram();
  /** The kernel's accept queue of its unix socket, as last sampled (null: not a unix socket we can see). */
  acceptQueue: { current: number; max: number; backlog: number } | null = null;
  /** Requests slower than the slow-request threshold. */
  slowRequests = 0;
  private idleWaiters: Array<() => void> = [];
  /** Why it is down after failing to run K times in a row (null otherwise). */
  downReason: { lastExit: string; stderrTail: string[] } | null = null;

  constructor(readonly id: string, readonly address: FcgiAddress, readonly client: FcgiClient | HttpClient,
    switches: BackendSwitches, index: number) {
    this.switches = switches;
    this.index = index;
    client.options.onConnectError = (code) => {
      this.counters.connectErrors[code] = (this.counters.connectErrors[code] ?? 0) + 1;
      // Linux answers EAGAIN exactly when the accept queue holds backlog+1: the peak
      // a periodic sample would mostly miss.
      if (code === 'EAGAIN' && this.acceptQueue && this.acceptQueue.max < this.acceptQueue.backlog + 1) {
        this.acceptQueue.max = this.acceptQueue.backlog + 1;
      }
    };
  }

  get addressText(): string {
    return describeAddress(this.address);
  }

  /** Resolves once no request is in flight here (for draining). */
  whenIdle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Called by the pool when the last request in flight here ends. */
  notifyIdle(): void {
    if (this.idleWaiters.length) for (const w of this.idleWaiters.splice(0)) w();
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

  /**
   * The application refused a request it was given (FCGI_CANT_MPX_CONN,
   * FCGI_OVERLOADED): give it less from now on instead of failing the same way
   * again. Returns what changed, for the log, or null.
   */
  adaptToRefusal(kind: 'cant-mpx' | 'overloaded'): string | null {
    const s = this.switches;
    if (kind === 'cant-mpx') {
      if (s.multiplexed && this.client.options.multiplexed) {
        this.applySwitches({ ...s, multiplexed: false, source: 'adapted: FCGI_CANT_MPX_CONN' });
        return 'it answered FCGI_CANT_MPX_CONN: one request per connection from now on';
      }
      if (this.client.options.pipelineDepth > 1) {
        this.client.stopPipelining('it answered FCGI_CANT_MPX_CONN to a request written behind another');
        return null; // stopPipelining logs through onAdapt
      }
      return null;
    }
    // FCGI_OVERLOADED: it took fewer than we gave it; the requests it did take are the limit.
    const slots = Math.max(1, this.inflight - 1);
    if (slots >= s.slots) return null;
    this.applySwitches({ ...s, slots, source: 'adapted: FCGI_OVERLOADED' });
    return `it answered FCGI_OVERLOADED with ${this.inflight} requests in flight: slots ${s.slots} → ${slots}`;
  }

  applySwitches(switches: BackendSwitches): void {
    this.switches = switches;
    const o = this.client.options;
    // A connection that carries one request (no FCGI_KEEP_CONN) has nothing to multiplex.
    o.multiplexed = switches.multiplexed && o.keepConn;
    o.maxConns = o.multiplexed ? 1 : switches.slots;
  }
}
