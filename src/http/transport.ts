// HTTP/1.1 to a backend on a unix socket or TCP, as a transport, on node:net: opens,
// keeps and reuses connections, one request at a time on each (no pipelining), and
// puts each dispatched request on the wire at once — on an idle kept connection, or a
// new one while under the backend's slots. Enforces the read timeout with one coarse
// sweep. What the backend taught us goes into its Capabilities.
//
// Slots are measured, not believed, on unix sockets: HTTP has no GET_VALUES, so the
// kernel tells. Connections beyond the first open as probes and take a request only
// once the app accepted them (they left the listening socket's accept queue), or when
// a served connection went away and the oldest probe is next in that queue anyway.
// A probe accepted while the served ones are open is growth. Probes that stay in the
// queue while the served ones are busy — one for 500 ms, or seen there again and
// again over 500 ms without growth — are evidence: slots = the most accepted at once.
// gunicorn's sync worker (one connection at a time, closed after each response) thus
// gets 1 slot and never a request behind an unaccepted connection; a Node or Tornado
// process accepts every probe at once and keeps its slots.
import { coarseNow } from '../clock.js';
import { IDLE_KEEP_MS, HttpConnection, type HttpConnectionOwner } from './connection.js';
import {
  TransportError, type BackendAddress, type Capabilities, type ResponseHandler, type Transport, type TransportEvents,
  type TransportFigures, type TransportRequest,
} from '../transport.js';

export interface HttpSettings {
  address: BackendAddress;
  readTimeoutMs: number;
  connectTimeoutMs: number;
  /** Also send an RFC 7239 Forwarded header. */
  forwarded: boolean;
  /** The largest response head taken (status line and fields). */
  maxHeadBytes: number;
}

const MIN_SWEEP_MS = 20;
const MAX_SWEEP_MS = 250;
/** A probe that waited this long in the accept queue while others were served is evidence (as FastCGI's PROBE_MS). */
export const PROBE_MS = 500;
/**
 * Times within PROBE_MS a probe was seen still queued while every served connection was
 * busy (or one was let go): evidence for apps that close each connection after one
 * response, where no probe stays queued for PROBE_MS.
 */
const MIN_WAITED = 10;
/** How often the kernel is asked whether probes were accepted while learning, and afterwards (standbys). */
const PROBE_POLL_MS = 10;
const STANDBY_POLL_MS = 50;
/** At most this many probes at once (slow start: as many as there are served connections). */
const MAX_PROBES = 16;
/** After a probe failed to connect or was closed unused by the app: no new probe for this long. */
const PROBE_REFUSED_PAUSE_MS = 1000;
/** A connection that never completed a request (an accepted probe nobody needed) is closed after this long idle. */
const UNUSED_IDLE_MS = 1000;

/** What one learning episode saw: from its first probe (or the last growth) on. */
interface Episode {
  startedAt: number;
  /** The most connections the app had accepted at once. */
  maxServed: number;
  /** Times a probe was seen still in the accept queue while the served connections were busy, or as one was let go. */
  waited: number;
}

export class HttpTransport implements Transport, HttpConnectionOwner {
  readonly protocol = 'http' as const;
  readonly needsBodyLength = false;
  /** In the order opened: the kernel's accept queue is FIFO, so the first unserved one is the next the app accepts. */
  private readonly connections: HttpConnection[] = [];
  private sweepTimer: NodeJS.Timeout | null;
  private closing = false;
  private suspended = false;
  private episode: Episode | null = null;
  private episodeTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private probeRefusedAt = 0;
  readonly figures: TransportFigures = { connectionsOpened: 0, openConnections: 0 };
  readonly defaultHost: string;

  constructor(private readonly settings: HttpSettings, private readonly caps: Capabilities, private readonly events: TransportEvents) {
    const a = settings.address;
    this.defaultHost = 'path' in a ? 'localhost' : a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
    const sweepMs = Math.max(MIN_SWEEP_MS, Math.min(MAX_SWEEP_MS, Math.floor(settings.readTimeoutMs / 8)));
    this.sweepTimer = setInterval(this.sweep, sweepMs);
    this.sweepTimer.unref();
  }

  // HttpConnectionOwner
  get address(): BackendAddress { return this.settings.address; }
  get connectTimeoutMs(): number { return this.settings.connectTimeoutMs; }
  get readTimeoutMs(): number { return this.settings.readTimeoutMs; }
  get maxHeadBytes(): number { return this.settings.maxHeadBytes; }
  get forwarded(): boolean { return this.settings.forwarded; }

  /** Probes only where the kernel can tell whether the app accepted them (unix sockets); TCP trusts the flags. */
  private get learning(): boolean {
    return 'path' in this.settings.address && this.caps.slotsClaimed > 1;
  }

  private pick(): HttpConnection | null {
    const conns = this.connections;
    for (let i = 0; i < conns.length; i++) if (conns[i].idle) return conns[i];
    return null;
  }

  canTake(): boolean {
    if (this.closing) return false;
    if (this.pick() !== null) return true;
    // While learning, further connections come as probes; the first one to a process
    // needs no proof (if the app serves nothing, it serves nothing to anyone).
    return this.learning ? this.connections.length === 0 : this.connections.length < this.caps.slots;
  }

  dispatch(request: TransportRequest, handler: ResponseHandler): boolean {
    let conn = this.pick();
    if (conn === null) conn = this.open(false);
    conn.begin(request, handler, this.caps.keepConn);
    return this.canTake();
  }

  private open(probe: boolean): HttpConnection {
    const conn = new HttpConnection(this, probe);
    this.connections.push(conn);
    this.figures.connectionsOpened++;
    this.figures.openConnections = this.connections.length;
    return conn;
  }

  /**
   * A request waits for room here. While learning, open probe connections (as many as
   * are served now, at least one, up to the claimed slots) when every served one is
   * busy; none while a probe or standby is out already.
   */
  prepare(): void {
    if (this.closing || this.suspended || !this.learning) return;
    if (this.probeRefusedAt !== 0 && Date.now() - this.probeRefusedAt < PROBE_REFUSED_PAUSE_MS) return;
    let served = 0;
    for (const c of this.connections) {
      if (!c.served) return;
      served++;
    }
    const n = Math.min(this.caps.slotsClaimed - served, Math.max(1, served), MAX_PROBES);
    if (n <= 0) return;
    for (let i = 0; i < n; i++) this.open(true);
    if (this.episode === null && served < this.caps.slots) {
      this.episode = { startedAt: Date.now(), maxServed: served, waited: 0 };
      this.episodeTimer = setTimeout(this.onEpisodeTimeout, PROBE_MS);
      this.episodeTimer.unref();
    }
    this.schedulePoll();
  }

  private schedulePoll(): void {
    if (this.pollTimer !== null) return;
    this.pollTimer = setTimeout(this.onPollTimer, this.episode !== null ? PROBE_POLL_MS : STANDBY_POLL_MS);
    this.pollTimer.unref();
  }

  // Asked after the I/O of the loop turn (setImmediate): a close the app made before
  // accepting a probe is then seen first, and is not taken for one more served at once.
  private readonly onPollTimer = (): void => {
    setImmediate(this.poll);
  };

  private readonly poll = (): void => {
    this.pollTimer = null;
    if (this.closing || this.suspended) return;
    if (this.checkProbes(null)) this.events.onDrain();
    for (const c of this.connections) {
      if (!c.served) {
        this.schedulePoll();
        return;
      }
    }
  };

  /**
   * Asks the kernel whether the app accepted any probe; each accepted one becomes served.
   * One accepted while as many others as ever were open at the app is growth (the
   * app serves more at once than seen so far); one accepted after a served one closed
   * at the app took that one's place (which then needs no hand-over). Returns whether
   * a probe became served.
   */
  private checkProbes(leaving: HttpConnection | null): boolean {
    let any = false;
    /** The first probe accepted now took the place of the connection leaving. */
    let leavingTaken = leaving === null;
    for (const probe of this.connections) {
      if (probe.served || probe === leaving || probe.acceptedByApp() !== true) continue;
      probe.served = true;
      probe.idleSince = coarseNow;
      any = true;
      // Served connections still open at the app, asked after the probe: one the app
      // closed before it accepted the probe reads as closed now.
      let open = 0;
      let closedAtApp: HttpConnection | null = null;
      for (const c of this.connections) {
        if (c === probe || c === leaving || !c.served || c.gone) continue;
        const alive = c.acceptedByApp();
        if (alive === true) open++;
        else if (alive === false && closedAtApp === null && !c.replaced) closedAtApp = c;
      }
      if (!leavingTaken) leavingTaken = true;
      else if (closedAtApp !== null) closedAtApp.replaced = true; // its close is not handed over again
      const atOnce = open + 1;
      const e = this.episode;
      if (e !== null && atOnce > e.maxServed) {
        e.maxServed = atOnce;
        e.startedAt = Date.now();
        e.waited = 0;
        if (this.episodeTimer) clearTimeout(this.episodeTimer);
        this.episodeTimer = setTimeout(this.onEpisodeTimeout, PROBE_MS);
        this.episodeTimer.unref();
      }
      const caps = this.caps;
      if (caps.slotsLearned !== null && atOnce > caps.slots) {
        caps.learnSlots(atOnce, `a standby connection was accepted while ${open} were served: ${atOnce} at once`);
      }
    }
    return any;
  }

  private readonly onEpisodeTimeout = (): void => {
    this.episodeTimer = null;
    const e = this.episode;
    if (e === null || this.closing || this.suspended) {
      this.episode = null;
      return;
    }
    this.checkProbes(null);
    let queued = 0;
    let oldest = 0;
    const now = Date.now();
    for (const c of this.connections) {
      if (c.served || c.acceptedByApp() !== false) continue;
      queued++;
      oldest = Math.max(oldest, now - c.openedAt);
    }
    const caps = this.caps;
    if (e.maxServed > 0 && e.maxServed < caps.slots && (oldest >= PROBE_MS || e.waited >= MIN_WAITED)) {
      this.episode = null;
      const where = oldest >= PROBE_MS
        ? `a new connection stayed in the kernel's accept queue for ${oldest} ms`
        : `new connections were seen ${e.waited} times in the kernel's accept queue while the served ones were busy, over ${now - e.startedAt} ms`;
      caps.learnSlots(e.maxServed, `${where} while at most ${e.maxServed} were accepted at once; it claimed ${caps.slotsClaimed}`);
      return;
    }
    if (queued > 0 || e.waited > 0) {
      this.episodeTimer = setTimeout(this.onEpisodeTimeout, PROBE_MS / 5);
      this.episodeTimer.unref();
      return;
    }
    this.episode = null;
  };

  /** A connection went away: its slot is free again. While learning, the oldest probe is handed the slot of a served one. */
  onGone(conn: HttpConnection): void {
    const i = this.connections.indexOf(conn);
    if (i < 0) return;
    this.connections.splice(i, 1);
    this.figures.openConnections = this.connections.length;
    if (this.closing) return;
    if (this.learning && !this.suspended) {
      if (conn.served) this.handOver(conn);
      else if (!conn.closedByUs || !conn.connected) {
        // A probe the app closed unused, or that could not connect: it takes no more now.
        this.probeRefusedAt = Date.now();
        if (conn.connected && conn.lastError === null) {
          let served = 0;
          for (const c of this.connections) if (c.served) served++;
          if (served > 0 && served < this.caps.slots) this.caps.learnSlots(served, `a new connection was closed unused while ${served} were served (a refusal); it claimed ${this.caps.slotsClaimed}`);
        }
      }
    }
    if (!conn.aborted) this.events.onDrain();
    else if (!this.drainPending) {
      // Clients tend to leave together (a load tool stopping, a proxy restarting): the
      // closes still pending in this turn of the loop are seen before the freed place is
      // given to a waiting request, which would otherwise be written for a client that
      // is gone too, only to be aborted in turn (and served by the app all the same).
      this.drainPending = true;
      setImmediate(this.drainLater);
    }
  }

  private drainPending = false;

  private readonly drainLater = (): void => {
    this.drainPending = false;
    if (!this.closing) this.events.onDrain();
  };

  /**
   * A served connection went away: the app frees its place. A probe it accepted already
   * took it; otherwise the oldest probe is next in the app's accept queue (FIFO) and
   * takes it now, so a request put on it waits behind no other connection of ours.
   */
  private handOver(gone: HttpConnection): void {
    if (gone.replaced) return;
    if (this.checkProbes(gone)) return;
    for (const c of this.connections) {
      if (c.served || c.gone) continue;
      c.served = true;
      c.idleSince = coarseNow;
      return;
    }
  }

  /**
   * A served connection's end, as soon as the backend shows it (its response said close,
   * or it closed): the oldest probe still in the accept queue now waited for it — the
   * app took no further connection while this one was served. Asked before the response
   * goes on to the client, so the app has rarely accepted the probe yet when it serves
   * one connection at a time; a concurrent app accepted it long before.
   */
  onBackendLetGo(conn: HttpConnection): void {
    const e = this.episode;
    if (e === null || !conn.served) return;
    for (const c of this.connections) {
      if (c.served || c.gone) continue;
      if (c.acceptedByApp() === false) e.waited++;
      return;
    }
  }

  /** Probes to look at once the loop has turned (the app had its chance to accept them). */
  private toSample: HttpConnection[] = [];

  onProbeConnected(conn: HttpConnection): void {
    if (this.episode === null) return;
    if (this.toSample.length === 0) setImmediate(this.sample);
    this.toSample.push(conn);
  }

  /**
   * A probe one turn of the loop after it connected, while every served connection is
   * busy: an app that takes connections as they come has accepted it (beside the others:
   * growth); one that serves a connection at a time has not — it waited.
   */
  private readonly sample = (): void => {
    const probes = this.toSample;
    this.toSample = [];
    const e = this.episode;
    if (e === null || this.closing || this.suspended) return;
    let busy = true;
    for (const c of this.connections) if (c.served && !c.gone && c.exchange === null) busy = false;
    let accepted = false;
    for (const p of probes) {
      if (p.served || p.gone) continue;
      const state = p.acceptedByApp();
      if (state === true) accepted = true;
      else if (state === false && busy) e.waited++;
    }
    if (accepted && this.checkProbes(null)) this.events.onDrain();
  };

  onIdle(conn: HttpConnection): void {
    if (this.suspended || this.closing) {
      conn.drop();
      return;
    }
    this.events.onDrain();
  }

  onConnectError(code: string): void {
    this.events.onConnectError(code);
  }

  onProtocolError(what: string): void {
    this.events.onProtocolError(what);
  }

  close(force = false): void {
    this.closing = true;
    this.stopTimers();
    for (const c of [...this.connections]) {
      if (c.exchange === null) c.drop();
      else if (force) c.drop(new TransportError('closed', 'the front is stopping: it closed its connections to the backend'));
    }
  }

  suspend(): void {
    this.suspended = true;
    this.probeRefusedAt = 0;
    this.episode = null;
    if (this.episodeTimer) { clearTimeout(this.episodeTimer); this.episodeTimer = null; }
    // Requests in flight hear of it from their connection's close, as from a process that died.
    for (const c of [...this.connections]) c.drop(new TransportError('closed', 'the backend went away (the front closed its connections)'));
  }

  resume(): void {
    this.suspended = false;
  }

  private stopTimers(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    if (this.episodeTimer) { clearTimeout(this.episodeTimer); this.episodeTimer = null; }
    if (this.pollTimer) { clearTimeout(this.pollTimer); this.pollTimer = null; }
    this.episode = null;
  }

  /**
   * The read timeout runs between two reads from the backend, from the moment the
   * request went out (while its body is sent, the same limit bounds each write), not
   * while reading waits for a slow client. Idle kept connections close before the
   * backend's own keep-alive timeout would race a new request.
   */
  private readonly sweep = (): void => {
    const tick = coarseNow;
    const limit = this.settings.readTimeoutMs;
    for (const conn of [...this.connections]) {
      const ex = conn.exchange;
      if (ex !== null) {
        if (!conn.paused && tick - ex.lastTick > limit) conn.timeout(limit);
        continue;
      }
      if (!conn.served) continue;
      const idleFor = tick - conn.idleSince;
      if (idleFor > (conn.completed === 0 ? UNUSED_IDLE_MS : Math.min(conn.idleTimeoutMs, IDLE_KEEP_MS * 15))) conn.drop();
    }
  };
}
