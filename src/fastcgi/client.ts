// A FastCGI client for one application address: opens, keeps and reuses
// connections, puts requests on them (multiplexed or one-per-connection with an
// optional pipeline), enforces the read timeout. The caller decides how many
// requests it may give it; this class decides where on the wire they go.
import net from 'node:net';
import { FcgiConnection, FcgiRequest, currentTick, type FcgiHandler } from './connection.js';
import { FcgiError } from './errors.js';

export type FcgiAddress = { path: string } | { host: string; port: number };

export interface FcgiClientOptions {
  address: FcgiAddress;
  /** Several requests in flight on one connection, distinct ids (FCGI_MPXS_CONNS). */
  multiplexed: boolean;
  /** FCGI_KEEP_CONN and reuse of connections. false: a new connection per request, as nginx by default. */
  keepConn: boolean;
  /** Connections this client may keep open: the application's concurrent connections (slots). */
  maxConns: number;
  /**
   * Requests written on one non-multiplexed connection before the previous answer
   * completed. 2 keeps a single-threaded application busy: its next request is
   * already in its socket when it finishes the current one.
   */
  pipelineDepth: number;
  readTimeoutMs: number;
  connectTimeoutMs: number;
  maxHeadBytes: number;
  /**
   * On EAGAIN (the app's accept queue is full) try connect() again with backoff
   * until connectTimeoutMs, instead of failing at once as nginx does.
   */
  retryEagain: boolean;
  /** Every failed connect() attempt, retried or not (for per-errno counters). */
  onConnectError?(code: string): void;
  /** Something learned about the application (e.g. it cannot take pipelined requests). */
  onAdapt?(what: 'no-pipeline' | 'closes-connections', why: string): void;
}

export interface FcgiRequestInit {
  /** Flat [name, value, ...] CGI params, latin1. */
  params: readonly string[];
  hasBody: boolean;
  /** The request may be written behind another one on a busy connection. */
  pipelinable: boolean;
}

/** Receives the request once it is on the wire (or the connect failure). */
export interface FcgiStartHandler extends FcgiHandler {
  onStart(request: FcgiRequest): void;
}

const MIN_SWEEP_MS = 20;

export class FcgiClient {
  private readonly connections = new Set<FcgiConnection>();
  private readonly waiting: Array<{ init: FcgiRequestInit; handler: FcgiStartHandler }> = [];
  private connecting = 0;
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Connections opened over the client's life (to count keep-alive reuse). */
  connectionsOpened = 0;
  closing = false;
  /** The application is gone or restarting: keep no connection open to it. */
  suspended = false;

  constructor(readonly options: FcgiClientOptions) {
    const sweepMs = Math.max(MIN_SWEEP_MS, Math.min(1000, Math.floor(options.readTimeoutMs / 4)));
    this.sweepTimer = setInterval(() => this.sweep(), sweepMs);
    this.sweepTimer.unref();
  }

  get openConnections(): number {
    return this.connections.size + this.connecting;
  }

  /**
   * Sends a request: on an idle kept connection, a new one while under maxConns,
   * pipelined behind another, or, when every allowed connection is busy or still
   * connecting, it waits here for one. Never a connection beyond maxConns: with a
   * single-threaded app that one would sit unserved in its accept queue.
   */
  dispatch(init: FcgiRequestInit, handler: FcgiStartHandler): void {
    const conn = this.pickConnection(init);
    if (conn) {
      handler.onStart(conn.begin(init.params, init.hasBody, handler, currentTick));
      return;
    }
    if (!this.options.keepConn || this.openConnections < this.options.maxConns || this.openConnections === 0) {
      this.openFor(init, handler);
      return;
    }
    this.waiting.push({ init, handler });
  }

  private openFor(init: FcgiRequestInit, handler: FcgiStartHandler): void {
    this.openConnection((err, fresh) => {
      if (err || !fresh) {
        handler.onError(err ?? new FcgiError('connect', 'connect failed', { notStarted: true }));
        handler.onRelease();
      } else {
        handler.onStart(fresh.begin(init.params, init.hasBody, handler, currentTick));
      }
      this.serveWaiting();
    });
  }

  /** Places waiting requests once a connection is up, idle, or gone. */
  private serveWaiting(): void {
    while (this.waiting.length > 0) {
      const w = this.waiting[0];
      const conn = this.pickConnection(w.init);
      if (conn) {
        this.waiting.shift();
        w.handler.onStart(conn.begin(w.init.params, w.init.hasBody, w.handler, currentTick));
        continue;
      }
      if (!this.options.keepConn || this.openConnections < this.options.maxConns || this.openConnections === 0) {
        this.waiting.shift();
        this.openFor(w.init, w.handler);
        continue;
      }
      return;
    }
  }

  private pickConnection(init: FcgiRequestInit): FcgiConnection | null {
    if (!this.options.keepConn) return null;
    let best: FcgiConnection | null = null;
    if (this.options.multiplexed) {
      for (const c of this.connections) {
        if (!c.usable || (c.inflight > 0 && !c.proven)) continue; // one request until it proved kept
        if (best === null || c.inflight < best.inflight) best = c;
      }
      // A further connection only while under maxConns and all are busy.
      if (best && best.inflight > 0 && this.openConnections < this.options.maxConns) return null;
      return best;
    }
    for (const c of this.connections) {
      if (c.usable && c.inflight === 0) return c;
    }
    if (this.openConnections < this.options.maxConns) return null;
    if (this.options.pipelineDepth > 1 && init.pipelinable) {
      for (const c of this.connections) {
        if (c.usable && c.proven && c.inflight < this.options.pipelineDepth && c.stdinComplete && !c.anyAbandoned
          && (best === null || c.inflight < best.inflight)) best = c;
      }
    }
    return best; // null: wait for a connection (dispatch decides)
  }

  private openConnection(cb: (err: FcgiError | null, conn?: FcgiConnection) => void): void {
    const opts = this.options;
    this.connecting++;
    const deadline = Date.now() + opts.connectTimeoutMs;
    let backoffMs = 1;
    const attempt = () => {
      const socket = 'path' in opts.address
        ? net.connect({ path: opts.address.path })
        : net.connect({ host: opts.address.host, port: opts.address.port, noDelay: true });
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        this.connecting--;
        socket.destroy();
        opts.onConnectError?.('ETIMEDOUT');
        cb(new FcgiError('connect', `connect() to ${describeAddress(opts.address)} timed out after ${opts.connectTimeoutMs} ms`,
          { code: 'ETIMEDOUT', notStarted: true }));
      }, Math.max(1, deadline - Date.now()));
      socket.once('error', (err: NodeJS.ErrnoException) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        const code = err.code ?? 'EIO';
        opts.onConnectError?.(code);
        if (code === 'EAGAIN' && opts.retryEagain && !this.closing && Date.now() + backoffMs < deadline) {
          // The accept queue is full: it will have room once the app accepts. Back off and knock again.
          setTimeout(attempt, backoffMs);
          backoffMs = Math.min(backoffMs * 2, 50);
          return;
        }
        this.connecting--;
        cb(new FcgiError('connect', connectErrorMessage(opts.address, err), { code, notStarted: true, cause: err }));
      });
      socket.once('connect', () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.connecting--;
        this.connectionsOpened++;
        const conn = new FcgiConnection(socket, {
          maxHeadBytes: opts.maxHeadBytes,
          keepConn: opts.keepConn,
          onClose: (c, hadRequests) => this.onConnectionClose(c, hadRequests),
          onIdle: (c) => {
            // An idle kept connection to an app that is restarting would be the first the new
            // process accepts, and a single-threaded one would serve it until it closes.
            if (this.suspended) { c.destroy(); return; }
            if (this.waiting.length) this.serveWaiting();
          },
        });
        this.connections.add(conn);
        cb(null, conn);
      });
    };
    attempt();
  }

  private onConnectionClose(conn: FcgiConnection, hadRequests: boolean): void {
    this.connections.delete(conn);
    // A kept connection the app closed after completing a request on it: it ignores
    // FCGI_KEEP_CONN (node-fastcgi 2.0.0 does). From now on a connection per request,
    // as nginx does by default, so no request is written on a connection about to close.
    if (this.options.keepConn && !this.closing && !conn.closedByUs && conn.completed > 0 && conn.lastError === null) {
      this.options.keepConn = false;
      this.options.multiplexed = false;
      this.options.pipelineDepth = 1;
      this.options.onAdapt?.('closes-connections', `the application closed a kept-alive connection after a completed request${hadRequests ? ', with requests still on it' : ''} (it ignores FCGI_KEEP_CONN); a new connection per request from now on`);
    }
    if (this.waiting.length) this.serveWaiting();
  }

  /** The application refused a pipelined request: one request per connection from now on. */
  stopPipelining(why: string): void {
    if (this.options.pipelineDepth > 1) {
      this.options.pipelineDepth = 1;
      this.options.onAdapt?.('no-pipeline', `${why}; one request at a time on each connection from now on`);
    }
  }

  /** Closes idle kept connections; with `force`, every connection. */
  close(force = false): void {
    this.closing = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    for (const c of this.connections) {
      if (force || c.inflight === 0) c.destroy();
    }
  }

  /**
   * The application behind this client is gone (restarting): destroy every
   * connection, fail requests waiting for one (as not started: they go elsewhere),
   * and keep none open until `resume()`.
   */
  suspend(): void {
    this.suspended = true;
    for (const c of this.connections) c.destroy();
    const waiting = this.waiting.splice(0);
    for (const w of waiting) {
      w.handler.onError(new FcgiError('closed', 'the backend went away before the request was sent', { notStarted: true }));
      w.handler.onRelease();
    }
  }

  resume(): void {
    this.suspended = false;
  }

  private sweep(): void {
    const tick = currentTick;
    const limit = this.options.readTimeoutMs;
    for (const conn of this.connections) {
      if (conn.inflight === 0) {
        if (this.closing) conn.destroy();
        continue;
      }
      let stuck = false;
      conn.forEachRequest((r) => {
        if (tick - r.lastTick <= limit) return;
        if (r.abandoned) {
          stuck = true; // no END_REQUEST even after the abort: give the connection up
          return;
        }
        r.lastTick = tick;
        conn.failRequest(r, new FcgiError('timeout',
          `backend sent nothing for ${this.options.readTimeoutMs} ms (read timeout)`, { code: 'ETIMEDOUT', notStarted: !r.anyResponseByte }));
      });
      if (stuck) conn.destroy(new FcgiError('timeout', 'backend did not end an aborted request'));
    }
  }
}

export function describeAddress(address: FcgiAddress): string {
  return 'path' in address ? `unix:${address.path}` : `${address.host}:${address.port}`;
}

const ERRNO: Record<string, number> = { EAGAIN: 11, ECONNREFUSED: 111, ENOENT: 2, EACCES: 13, ETIMEDOUT: 110, ECONNRESET: 104, ENOTSOCK: 88, EHOSTUNREACH: 113 };
const STRERROR: Record<string, string> = {
  EAGAIN: 'Resource temporarily unavailable', ECONNREFUSED: 'Connection refused', ENOENT: 'No such file or directory',
  EACCES: 'Permission denied', ETIMEDOUT: 'Connection timed out', ECONNRESET: 'Connection reset by peer',
};

/** nginx's wording, so users can grep for the line they know: `connect() to unix:PATH failed (11: Resource temporarily unavailable)`. */
export function connectErrorMessage(address: FcgiAddress, err: NodeJS.ErrnoException): string {
  const code = err.code ?? 'EIO';
  const num = ERRNO[code] ?? (typeof err.errno === 'number' ? Math.abs(err.errno) : 0);
  return `connect() to ${describeAddress(address)} failed (${num}: ${STRERROR[code] ?? err.message})`;
}
