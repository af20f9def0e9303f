// FastCGI as a transport: opens, keeps and reuses connections to one application
// address and puts each dispatched request on the wire at once — on an idle kept
// connection, a new one while under the backend's slots, multiplexed, or pipelined
// behind a body-less request. Never a connection beyond the slots: with a
// single-threaded app it would sit unserved in its accept queue. Enforces the read
// timeout. What the app taught us (it closes kept connections, refuses pipelined
// requests) goes into the backend's Capabilities.
import {
  TransportError, type BackendAddress, type Capabilities, type ResponseHandler, type Transport,
  type TransportEvents, type TransportFigures, type TransportRequest,
} from '../transport.js';
import type { CgiParamsEncoder } from './cgiParams.js';
import { coarseNow } from '../clock.js';
import { acceptQueueOf } from '../native/sock.js';
import { FcgiConnection, type ConnectionOwner, type FcgiRequest } from './connection.js';

export interface FcgiSettings {
  address: BackendAddress;
  readTimeoutMs: number;
  connectTimeoutMs: number;
  maxHeadBytes: number;
  /** On EAGAIN (the app's accept queue is full) connect() again with backoff until the connect timeout. */
  retryEagain: boolean;
  /** A new connection per request without FCGI_KEEP_CONN, whatever the capabilities (overflow nginx/retry, as nginx by default). */
  perRequestConnections: boolean;
  /** Shared by the backends of a pool: the CGI params of each request. */
  encoder: CgiParamsEncoder;
}

const MIN_SWEEP_MS = 20;
/** How long a probe connection may wait for the answer to its GET_VALUES before it counts as unserved. */
export const PROBE_MS = 500;
/**
 * A probe the app accepted (it left the kernel's accept queue) but has not answered may
 * be one a busy concurrent app gets to late: it waits this long before it counts.
 * Waiting costs nothing: no request is ever put on a probe.
 */
export const PROBE_ACCEPTED_MS = 5000;
/** At most this many probes at once (slow start: as many as there are served connections). */
const MAX_PROBES = 16;
/** A request silent longer than this is not pipelined behind (it may be stuck; the queue can send elsewhere). */
const PIPELINE_STALL_MS = 200;
/**
 * How much of the app's work may be written ahead of a request on one connection, by
 * its recent pace: a fast app gets its next requests queued in its socket (it reads
 * several per recv and never waits for the front between two), a slow one at most one
 * behind the current (a request pipelined behind a slow one waits while another
 * process may be free).
 */
const PIPELINE_AHEAD_MS = 2;

/** Requests allowed on connection `c` at once: 2 up to `max`, as many as PIPELINE_AHEAD_MS of its pace. */
function pipelineDepthOf(c: FcgiConnection, max: number): number {
  return Math.min(max, Math.max(2, 1 + Math.floor(PIPELINE_AHEAD_MS / c.paceMs)));
}
const PROBE_REFUSED_PAUSE_MS = 5000;
/**
 * How long a request given up (client gone, response failed) whose app still writes for it
 * may wait for END_REQUEST after FCGI_ABORT_REQUEST before its connection is closed (at most
 * the read timeout). An app that honours the abort answers at its next read, in
 * milliseconds, and keeps its connection; one that ignores it and keeps writing (an endless
 * event stream) would hold the slot for ever, while queued requests wait out --queue-timeout.
 * nginx closes the upstream connection at once on a client abort; this waits a little for
 * the clean end, then does the same: the app sees the close at its next write. Measured from
 * the abort, so an app still writing does not extend it. An app silent after the abort may
 * be busy with the request (a long render): its slot is held for the read timeout.
 */
const ABORT_GRACE_MS = 1000;

export class FcgiTransport implements Transport, ConnectionOwner {
  readonly protocol = 'fastcgi' as const;
  readonly needsBodyLength = true;
  private readonly connections: FcgiConnection[] = [];
  private sweepTimer: NodeJS.Timeout | null;
  private closing = false;
  /** The application is gone or restarting: keep no connection open to it. */
  private suspended = false;
  /**
   * A connection to this process answered a second request: the app honours
   * FCGI_KEEP_CONN, so new connections need not prove it again (no settle pause).
   */
  private keepConnProven = false;
  private probeTimer: NodeJS.Timeout | null = null;
  private probeStarted = 0;
  /** Probes opened at probeStarted: fewer of them still in the accept queue means the app took some. */
  private probesOpened = 0;
  /** What the last canTake() found. */
  private picked: FcgiConnection | null = null;
  /** When the app last closed a probe unanswered (a refusal): no new probe for PROBE_REFUSED_PAUSE_MS. */
  private probeRefusedAt = 0;
  readonly figures: TransportFigures = { connectionsOpened: 0, openConnections: 0 };

  constructor(private readonly settings: FcgiSettings, private readonly caps: Capabilities, private readonly events: TransportEvents) {
    const sweepMs = Math.max(MIN_SWEEP_MS, Math.min(1000, Math.floor(settings.readTimeoutMs / 8)));
    this.sweepTimer = setInterval(() => this.sweep(), sweepMs);
    this.sweepTimer.unref();
  }

  // ConnectionOwner
  get address(): BackendAddress { return this.settings.address; }
  get connectTimeoutMs(): number { return this.settings.connectTimeoutMs; }
  get readTimeoutMs(): number { return this.settings.readTimeoutMs; }
  get maxHeadBytes(): number { return this.settings.maxHeadBytes; }
  get retryEagain(): boolean { return this.settings.retryEagain; }
  get encoder(): CgiParamsEncoder { return this.settings.encoder; }

  private get keepConn(): boolean {
    return this.caps.keepConn && !this.settings.perRequestConnections;
  }

  /**
   * Slots are measured, not believed: a backend that answers GET_VALUES and claims more
   * than one connection gets new connections only as probes, each used once the app
   * answered its GET_VALUES on it (it reads that connection). Claims of 1000 from an app
   * that serves one connection at a time then cost nothing: no request ever waits in a
   * kernel accept queue behind a kept connection.
   */
  private get learning(): boolean {
    const caps = this.caps;
    return this.keepConn && !caps.multiplexed && caps.answersGetValues && caps.slotsClaimed > 1;
  }

  canTake(pipelinable: boolean): boolean {
    if (this.closing) return false;
    const caps = this.caps;
    if (!this.keepConn) return this.settings.perRequestConnections || this.connections.length < caps.slots;
    if (caps.multiplexed) {
      const c = this.connections.length > 0 ? this.connections[0] : null;
      return c === null || (c.usable && (c.proven || c.inflight === 0) && c.inflight < caps.slots);
    }
    const picked = this.pick(pipelinable);
    if (picked !== null) {
      this.picked = picked; // dispatch() usually follows at once: no second search
      return true;
    }
    // While learning, further connections come as probes; the first one to a process
    // needs no proof (if the app serves nothing, it serves nothing to anyone).
    return this.learning ? this.connections.length === 0 : this.connections.length < caps.slots;
  }

  /**
   * A request waits for room here. While learning, open probe connections (as many as
   * are served now, at least one, up to the claimed slots) when every served one is
   * busy. A probe left unanswered stays open as a standby: the app serves it when it
   * frees a connection (then slots grow again), and no further probe piles up in its
   * accept queue meanwhile.
   */
  prepare(): void {
    if (this.closing || this.suspended || !this.learning) return;
    if (this.probeRefusedAt !== 0 && Date.now() - this.probeRefusedAt < PROBE_REFUSED_PAUSE_MS) return;
    let served = 0;
    for (const c of this.connections) {
      if (!c.served) return; // a probe or a standby is out already
      served++;
    }
    const n = Math.min(this.caps.slotsClaimed - served, Math.max(1, served), MAX_PROBES);
    if (n <= 0) return;
    for (let i = 0; i < n; i++) this.open(true);
    this.probeStarted = Date.now();
    this.probesOpened = n;
    this.probeTimer = setTimeout(this.onProbeTimeout, PROBE_MS);
  }

  private open(probe: boolean): FcgiConnection {
    if (!this.keepConnProven) for (const c of this.connections) if (c.completed >= 2) this.keepConnProven = true;
    const conn = new FcgiConnection(this, this.keepConnProven, probe);
    this.connections.push(conn);
    this.figures.connectionsOpened++;
    this.figures.openConnections = this.connections.length;
    return conn;
  }

  onServed(): void {
    let served = 0;
    let unserved = 0;
    for (const c of this.connections) {
      if (c.served) served++;
      else unserved++;
    }
    if (unserved === 0 && this.probeTimer) { clearTimeout(this.probeTimer); this.probeTimer = null; }
    const caps = this.caps;
    if (caps.slotsLearned !== null && served > caps.slots) caps.learnSlots(served, `a standby connection was served: ${served} at once`);
    this.events.onDrain();
  }

  /**
   * The app refused a request there for want of a thread. On a shared socket the kernel
   * bound this connection to one child, which may still be full while another has room:
   * the next requests try the other connections first (idle ones are taken in order).
   */
  onOverloaded(conn: FcgiConnection): void {
    if (this.caps.multiplexed) return;
    const i = this.connections.indexOf(conn);
    if (i >= 0 && i < this.connections.length - 1) {
      this.connections.splice(i, 1);
      this.connections.push(conn);
    }
  }

  private readonly onProbeTimeout = (): void => {
    this.probeTimer = null;
    let served = 0;
    let unserved = 0;
    for (const c of this.connections) {
      if (c.served) served++;
      else unserved++;
    }
    // Nothing served at all is not capacity evidence (a stuck or starting app).
    if (unserved === 0 || served === 0 || served >= this.caps.slots) return;
    const waited = Date.now() - this.probeStarted;
    const address = this.settings.address;
    // The kernel tells whether the probes were accepted: all still in the listening socket's
    // accept queue, nobody took them (a serial app busy with a kept connection). If it took
    // some, it is accepting, only slowly (a thread per connection short of CPU): its answers
    // get the time an accepted probe gets.
    const queued = 'path' in address ? acceptQueueOf(address.path)?.queued ?? 0 : 0;
    if (queued < this.probesOpened && waited < PROBE_ACCEPTED_MS) {
      this.probeTimer = setTimeout(this.onProbeTimeout, Math.min(PROBE_MS, PROBE_ACCEPTED_MS - waited));
      return;
    }
    const where = queued > 0 ? `${queued} still in the kernel's accept queue` : `accepted, unanswered for ${waited} ms`;
    this.caps.learnSlots(served, `${unserved} new connection(s) got no answer to FCGI_GET_VALUES (${where}) `
      + `while ${served} were served: accepted and served ${served}, waiting ${unserved}; it claimed ${this.caps.slotsClaimed}`);
  };


  /** An existing connection that can take the request now, or null. */
  private pick(pipelinable: boolean): FcgiConnection | null {
    const conns = this.connections;
    const caps = this.caps;
    if (caps.multiplexed) {
      const c = conns.length > 0 ? conns[0] : null;
      return c !== null && c.usable && (c.proven || c.inflight === 0) && c.inflight < caps.slots ? c : null;
    }
    let served = 0;
    let unserved = false;
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i];
      if (!c.served) { unserved = true; continue; }
      served++;
      if (c.inflight === 0 && c.usableFor(pipelinable)) return c;
    }
    // Pipeline once no further connection can be had now: all slots open, or a probe out.
    if ((served < caps.slots && !unserved) || !pipelinable || caps.pipelineDepth < 2) return null;
    let best: FcgiConnection | null = null;
    const now = coarseNow;
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i];
      if (c.usable && c.proven && c.inflight < pipelineDepthOf(c, caps.pipelineDepth) && c.stdinComplete && !c.anyAbandoned && c.moving(now, PIPELINE_STALL_MS)
        && (best === null || c.inflight < best.inflight)) best = c;
    }
    return best;
  }

  dispatch(request: TransportRequest, handler: ResponseHandler): boolean {
    const keep = this.keepConn;
    let conn: FcgiConnection | null = null;
    if (keep) {
      const picked = this.picked;
      this.picked = null;
      // The connection canTake() found, if it is still idle; else search again.
      conn = picked !== null && picked.inflight === 0 && picked.usableFor(request.pipelinable) ? picked : this.pick(request.pipelinable);
    }
    if (conn === null) conn = this.open(false);
    conn.begin(request, handler, keep);
    return this.canTake(false);
  }

  // ConnectionOwner callbacks
  onConnectError(code: string): void {
    this.events.onConnectError(code);
  }

  onUsable(conn: FcgiConnection): void {
    // An idle kept connection to an app that is restarting would be the first the new
    // process accepts, and a single-threaded one would serve it until it closes.
    if (this.suspended || this.closing || !this.keepConn) {
      if (conn.inflight === 0) conn.destroy();
      return;
    }
    this.events.onDrain();
  }

  onClose(conn: FcgiConnection): void {
    if (!conn.served && !conn.closedByUs && !this.closing && !this.suspended) {
      // The app accepted a probe and closed it unanswered (flup at its thread limit does): it is full.
      this.probeRefusedAt = Date.now();
      let served = 0;
      for (const c of this.connections) if (c.served) served++;
      if (served > 0 && served < this.caps.slots) this.caps.learnSlots(served, `a new connection was closed unanswered while ${served} were served (a refusal); it claimed ${this.caps.slotsClaimed}`);
    }
    const i = this.connections.indexOf(conn);
    if (i >= 0) this.connections.splice(i, 1);
    this.figures.openConnections = this.connections.length;
    if (conn.closedAfterFirst && this.caps.keepConn && !this.closing && !this.suspended) {
      // The app closed a kept connection right after answering on it: it ignores
      // FCGI_KEEP_CONN (node-fastcgi 2.0.0 does). From now on a connection per request,
      // as nginx does by default, so no request is written on a connection about to close.
      this.caps.learn({ keepConn: false, multiplexed: false, pipelineDepth: 1 },
        'the application closed a kept-alive connection right after its first completed request (it ignores FCGI_KEEP_CONN); a new connection per request from now on');
    }
    if (!this.closing) this.events.onDrain();
  }

  /** The application refused a request written behind another (FCGI_CANT_MPX_CONN): one request per connection. */
  stopPipelining(why: string): void {
    this.caps.learn({ pipelineDepth: 1 }, `${why}; one request at a time on each connection from now on`);
  }

  close(force = false): void {
    this.closing = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    if (this.probeTimer) { clearTimeout(this.probeTimer); this.probeTimer = null; }
    for (const c of [...this.connections]) {
      if (force || c.inflight === 0) c.destroy();
    }
  }

  connectionFds(): number[] {
    const fds: number[] = [];
    for (const c of this.connections) if (c.connected && !c.closed) fds.push(c.fd);
    return fds;
  }

  retireConnections(fds: ReadonlySet<number>): number {
    let busy = 0;
    for (const c of [...this.connections]) {
      if (!c.retired) {
        if (!c.connected || !fds.has(c.fd)) continue;
        c.retired = true;
      }
      if (c.inflight === 0) c.destroy();
      else busy++;
    }
    return busy;
  }

  suspend(): void {
    this.suspended = true;
    this.keepConnProven = false; // a new process proves it again
    this.probeRefusedAt = 0;
    for (const c of [...this.connections]) c.destroy();
  }

  resume(): void {
    this.suspended = false;
  }

  /**
   * The read timeout runs between two reads from the backend, from the moment the
   * request body is sent (while it is sent, the same limit bounds each write). On a
   * connection that carries one request at a time (pipelined ones queue behind it), a
   * timeout means the app is stuck on that connection: it is closed and every request
   * on it gets its 504 now — one pipelined behind does not wait out another timeout, and
   * the slot is free for the queue. A multiplexed one is told FCGI_ABORT_REQUEST and the
   * connection goes on. A request given up that the app does not end (ABORT_GRACE_MS)
   * costs its connection, once no live request shares a multiplexed one.
   */
  private sweep(): void {
    const tick = coarseNow;
    const limit = this.settings.readTimeoutMs;
    const grace = Math.min(limit, ABORT_GRACE_MS);
    const multiplexed = this.caps.multiplexed;
    for (const conn of [...this.connections]) {
      if (conn.inflight === 0) continue;
      let live = 0;
      let expired: FcgiRequest | null = null;
      let ignored: FcgiRequest | null = null;
      let ignoredFor = 0;
      conn.forEachRequest((r: FcgiRequest) => {
        if (r.abandoned) {
          // Still writing for it after the grace: it sees the close at its next write (and
          // stops, as after nginx's close). Silent: it may be busy with it, so the slot is
          // held for a read timeout, as for a request not given up.
          if (r.lastTick > r.abandonedAt ? tick - r.abandonedAt > grace : tick - r.abandonedAt > limit) {
            ignored = r;
            ignoredFor = tick - r.abandonedAt;
          }
          return;
        }
        if (tick - r.lastTick <= limit) { live++; return; }
        expired = r;
      });
      if (expired === null) {
        // An abort the app did not end within the grace. Multiplexed, the connection is
        // closed once no live request shares it (closing would fail them); one request at a
        // time, the requests behind it wait for it anyway: they get an error that lets a
        // body-less one go elsewhere.
        if (ignored !== null && (live === 0 || !multiplexed)) this.closeIgnoredAbort(conn, ignored, ignoredFor);
        continue;
      }
      const timedOut = (r: FcgiRequest, behind: boolean) => new TransportError('timeout', !r.stdinEnded
        ? `backend took no request body bytes for ${limit} ms (send timeout)`
        : behind ? `backend did not answer the request ahead of this one for ${limit} ms (read timeout)`
        : r.anyResponseByte && !r.headSeen ? `backend did not finish its response head within ${limit} ms of its first byte (read timeout)`
        : `backend sent nothing for ${limit} ms (read timeout)`,
      { code: 'ETIMEDOUT', notStarted: !r.anyResponseByte && r.bodyBytesSent === 0 });
      if (multiplexed) {
        conn.forEachRequest((r) => { if (!r.abandoned && tick - r.lastTick > limit) conn.failRequest(r, timedOut(r, false)); });
        continue;
      }
      const first: FcgiRequest = expired;
      conn.forEachRequest((r) => { if (!r.abandoned) conn.failRequest(r, timedOut(r, r !== first && tick - r.lastTick <= limit)); });
      conn.destroy(new TransportError('timeout', 'read timeout'));
    }
  }

  /** The app did not end an aborted request `ms` after the abort: close its connection so the slot is free. */
  private closeIgnoredAbort(conn: FcgiConnection, r: FcgiRequest, ms: number): void {
    const what = `did not end request ${r.id} ${ms} ms after FCGI_ABORT_REQUEST `
      + `(it ignores aborts${r.lastTick > r.abandonedAt ? ' and kept writing for it' : ''}); its connection was closed to free the slot`;
    conn.forEachRequest((o) => {
      if (!o.abandoned) conn.failRequest(o, new TransportError('closed', 'the request ahead of it on the connection was aborted and the backend did not end it',
        { notStarted: !o.anyResponseByte && o.bodyBytesSent === 0 }));
    });
    conn.destroy(new TransportError('timeout', 'aborted request not ended'));
    this.events.onAbortIgnored?.(what);
  }
}
