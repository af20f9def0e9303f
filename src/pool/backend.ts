// One upstream: a spawned process (with its socket) or a remote address. Holds its
// transport, what it can do (Capabilities: said, then learned), and the counters the
// stats read.
import { Capabilities, describeAddress, type BackendAddress, type CapabilityValues, type Transport, type TransportEvents } from '../transport.js';
import type { Logger } from 'pino';
import { createHistogram } from '../stats/histogram.js';

export type BackendState = 'starting' | 'ready' | 'down' | 'restarting' | 'draining';

/** What the switches decide (flags, GET_VALUES): the part of the capabilities a backend says. */
export interface BackendSwitches {
  multithreaded: boolean;
  multiplexed: boolean;
  /** Concurrent requests the application takes (1 when not multithreaded). */
  slots: number;
  /** Where the decision came from: 'flags', 'GET_VALUES', 'fallback (no GET_VALUES answer)'. */
  source: string;
  /** It answered FCGI_GET_VALUES: a new connection can be checked for service with it. */
  answersGetValues: boolean;
}

/** How connections are used, from the settings: the part of the capabilities the front decides. */
export interface ConnectionUse {
  keepConn: boolean;
  pipelineDepth: number;
}

export interface BackendCounters {
  requests: number;
  responses: { '1xx': number; '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  connectErrors: Record<string, number>;
  /** Failures after the connection was made: closed, protocol, timeout, overloaded... */
  failures: Record<string, number>;
  retried: number;
}

/** Active health checks' view of an upstream (pool/healthChecks.ts); null when not checked. */
export interface BackendHealth {
  status: 'up' | 'down';
  checks: number;
  failures: number;
  consecutiveOk: number;
  consecutiveFailed: number;
  lastError: string | null;
  /** ISO time of the last check. */
  lastCheck: string | null;
  /** When the status last changed (Date.now()). */
  since: number;
}

export class Backend implements TransportEvents {
  state: BackendState = 'starting';
  pid: number | undefined;
  inflight = 0;
  maxInflight = 0;
  restarts = 0;
  readonly caps: Capabilities;
  readonly transport: Transport;
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
  /** Requests slower than the slow-request threshold. */
  slowRequests = 0;
  private idleWaiters: Array<() => void> = [];
  /** Why it is down after failing to run K times in a row (null otherwise). */
  downReason: { lastExit: string; stderrTail: string[] } | null = null;
  /**
   * Why it cannot serve and is not about to (a crash loop, a process that never got
   * ready, an upstream nobody answers on); null while it is ready or merely restarting
   * after running well. A pool with no ready backend and only such ones fails fast.
   */
  unavailable: string | null = null;
  /** Active health checks (--health-check-interval, upstreams only); null: not checked. */
  health: BackendHealth | null = null;
  /** Set by the pool: room appeared without a release (a connection became usable). */
  onRoom: (() => void) | null = null;
  /** Set by the wiring: where a backend's own failures are told (with its id and pid). */
  log: Logger | null = null;

  constructor(readonly id: string, readonly address: BackendAddress, switches: BackendSwitches,
    private readonly use: ConnectionUse, index: number,
    makeTransport: (caps: Capabilities, events: TransportEvents) => Transport) {
    this.index = index;
    this.caps = new Capabilities({ ...switches, ...use });
    this.transport = makeTransport(this.caps, this);
  }

  get addressText(): string {
    return describeAddress(this.address);
  }

  get slots(): number {
    return this.caps.slots;
  }

  // --- TransportEvents ---

  onDrain(): void {
    if (this.onRoom !== null && this.accepting) this.onRoom();
  }

  onConnectError(code: string): void {
    // The accept-queue sampler reads the EAGAIN count as its evidence of a full queue.
    this.counters.connectErrors[code] = (this.counters.connectErrors[code] ?? 0) + 1;
  }

  onProtocolError(what: string): void {
    this.counters.failures.protocol = (this.counters.failures.protocol ?? 0) + 1;
    this.log?.error({ backend: this.id, pid: this.pid }, `backend ${this.id} ${what}`);
  }

  onAbortIgnored(what: string): void {
    // Counted and told: an operator should know the app keeps working for clients that left.
    this.counters.failures['abort-ignored'] = (this.counters.failures['abort-ignored'] ?? 0) + 1;
    this.log?.warn({ backend: this.id, pid: this.pid }, `backend ${this.id} ${what}`);
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
    return this.state === 'ready';
  }

  /** Whether a request can be sent here now: the transport has a place for it. */
  hasRoom(pipelinable: boolean): boolean {
    return this.state === 'ready' && this.transport.canTake(pipelinable);
  }

  /**
   * The application refused a request it was given (FCGI_CANT_MPX_CONN,
   * FCGI_OVERLOADED): give it less from now on instead of failing the same way
   * again. The change is reported through caps.onChange.
   */
  adaptToRefusal(kind: 'cant-mpx' | 'overloaded'): void {
    const caps = this.caps;
    if (kind === 'cant-mpx') {
      if (caps.multiplexed) caps.learn({ multiplexed: false }, 'it answered FCGI_CANT_MPX_CONN: one request per connection from now on');
      else caps.learn({ pipelineDepth: 1 }, 'it answered FCGI_CANT_MPX_CONN to a request written behind another: one request at a time on each connection from now on');
      return;
    }
    // FCGI_OVERLOADED: it took fewer than we gave it; the requests it did take are the limit.
    const slots = Math.max(1, this.inflight - 1);
    if (slots < caps.slots) caps.learn({ slots }, `it answered FCGI_OVERLOADED with ${this.inflight} requests in flight`);
  }

  /** What the backend says (flags, GET_VALUES) for a fresh process: learned refusals are forgotten. */
  applySwitches(switches: BackendSwitches): void {
    const values: CapabilityValues = { ...switches, ...this.use };
    this.caps.reset(values);
  }
}
