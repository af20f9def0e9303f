// A lean, strict HTTP/1.1 server on node:net: the public listener's protocol layer.
// It parses requests, frames responses and enforces limits and timeouts; what to
// answer is the handler's business. See exchange.ts for one request's API.
import net from 'node:net';
import util from 'node:util';
import { Http1Connection, type ServerState } from './connection.js';
import type { Http1Exchange } from './exchange.js';

export interface Http1Limits {
  /** Request-target longer than this → 414 URI Too Long. */
  maxUriBytes: number;
  /** The whole head (request line + header fields) larger than this → 431. */
  maxHeaderBytes: number;
  /** More header fields than this → 431. */
  maxHeaderCount: number;
  /**
   * From accept (first request) or from the first byte of a request (later ones) to
   * the end of its head → 408 + close. A fresh connection that never sent a byte is
   * closed silently instead (a browser's preconnect is not an error).
   */
  headersTimeoutMs: number;
  /** Between two reads while a request body is wanted (readBody() called, not paused) → 408 if no response began, else cut. */
  bodyTimeoutMs: number;
  /** A kept connection with no byte of a next request for this long is closed silently. */
  keepAliveTimeoutMs: number;
  /** 0 = unlimited. Content-Length above → 413 at once, body not read; a chunk size that would cross it → 413 (or a cut) at its size line, close. */
  maxBodyBytes: number;
  /** A response write the client does not take for this long (socket buffer full, no drain) → cut. nginx's send_timeout. */
  sendTimeoutMs: number;
}

export const DEFAULT_HTTP1_LIMITS: Readonly<Http1Limits> = Object.freeze({
  maxUriBytes: 8192,
  maxHeaderBytes: 16384,
  maxHeaderCount: 100,
  headersTimeoutMs: 60_000,
  bodyTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5000,
  maxBodyBytes: 0,
  sendTimeoutMs: 60_000,
});

export interface Http1Handler {
  /** A request head was parsed. The next request on this connection is not handed out before this one's response has ended (answers in order). */
  onRequest(exchange: Http1Exchange): void;
  /** The layer answered by itself (400/408/413/414/417/431/500/501/505): for logs and counters. */
  onRefused?(status: number, reason: string, conn: Http1Connection): void;
  /** onRequest (or a body/client callback) threw, or the exchange was misused: the layer answered 500, or cut the response if it had begun. */
  onHandlerError?(err: unknown, exchange: Http1Exchange): void;
}

export class Http1Server {
  /** listen()/close()/address() on it (src/listen.ts). */
  readonly net: net.Server;
  /** Connections accepted since start. */
  acceptedConn = 0;
  private readonly state: ServerState;
  private sweep: NodeJS.Timeout | null = null;
  private readonly sweepMs: number;
  private idleWaiters: Array<() => void> = [];
  /** destroyAll() was called: connections still arriving are cut. */
  private cut = false;

  constructor(limits: Partial<Http1Limits>, handler: Http1Handler) {
    const full: Http1Limits = { ...DEFAULT_HTTP1_LIMITS, ...limits };
    for (const [key, value] of Object.entries(full)) {
      if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`Http1Limits.${key} must be a non-negative integer, got ${value}`);
    }
    const state: ServerState = {
      limits: full,
      handler,
      stopping: false,
      activeExchanges: 0,
      connections: new Set(),
      exchangeEnded: () => {
        state.activeExchanges--;
        if (state.activeExchanges === 0 && this.idleWaiters.length > 0 && this.idle()) for (const resolve of this.idleWaiters.splice(0)) resolve();
      },
      connectionClosed: (conn) => {
        state.connections.delete(conn);
        if (this.idleWaiters.length > 0 && this.idle()) for (const resolve of this.idleWaiters.splice(0)) resolve();
        if (state.connections.size === 0 && this.sweep !== null) {
          clearInterval(this.sweep);
          this.sweep = null;
        }
      },
    };
    this.state = state;
    // One coarse timer per server: a tenth of the shortest timeout, within 10..500 ms.
    const shortest = Math.min(full.headersTimeoutMs, full.bodyTimeoutMs, full.keepAliveTimeoutMs, full.sendTimeoutMs);
    this.sweepMs = Math.max(10, Math.min(500, Math.floor(shortest / 10)));
    this.net = net.createServer({ noDelay: true, allowHalfOpen: false }, this.onConnection);
    this.net.on('listening', this.takeAccepts);
  }

  /**
   * Accepted sockets read into one buffer shared by all connections (net's onread) instead
   * of a new buffer and a stream push per read: 13.2 → 10.7 µs of CPU per request on that
   * path (bench/shared-reads.sh). The connection copies what outlives a read. net.Server's own
   * accept handler is replaced for that: Node gives no other way to pass onread to an
   * accepted socket. Sockets handed in otherwise (TLS) read as streams.
   */
  private readonly takeAccepts = (): void => {
    const handle = (this.net as unknown as { _handle?: { onconnection?: unknown } | null })._handle;
    if (handle == null || typeof handle.onconnection !== 'function') return;
    handle.onconnection = (status: number, clientHandle: object | undefined): void => {
      if (status < 0 || clientHandle === undefined) {
        // libuv already closed what it could not accept (out of fds: its reserve-fd trick). net
        // would emit 'error', which kills a process that has no listener: a client must not.
        if (this.net.listenerCount('error') > 0) {
          const code = status < 0 ? util.getSystemErrorName(status) : 'EIO';
          this.net.emit('error', Object.assign(new Error(`accept() failed: ${code}`), { errno: status, code, syscall: 'accept' }));
        }
        return;
      }
      let conn: Http1Connection | null = null;
      const socket = new net.Socket({
        handle: clientHandle, readable: true, writable: true, allowHalfOpen: false,
        onread: { buffer: sharedReadBuffer(), callback: (n: number, buf: Uint8Array) => { conn?.onShared(buf as Buffer, n); } },
      } as net.SocketConstructorOpts);
      socket.setNoDelay(true);
      conn = this.accept(socket, true);
    };
  };

  /** Requests whose response has not ended. */
  get activeExchanges(): number { return this.state.activeExchanges; }
  /** Open connections. */
  get connections(): number { return this.state.connections.size; }
  get limits(): Readonly<Http1Limits> { return this.state.limits; }

  private readonly onConnection = (socket: net.Socket): void => {
    this.accept(socket, false);
  };

  private accept(socket: net.Socket, sharedReads: boolean): Http1Connection | null {
    this.acceptedConn++;
    if (this.cut) {
      socket.destroy();
      return null;
    }
    const conn = new Http1Connection(this.state, socket, sharedReads);
    this.state.connections.add(conn);
    // Accepted as the listener closed: its request is served (with Connection: close) if it comes soon.
    if (this.state.stopping) conn.closeIfIdle();
    if (this.sweep === null) {
      this.sweep = setInterval(this.onSweep, this.sweepMs);
      this.sweep.unref();
    }
    return conn;
  }

  private readonly onSweep = (): void => {
    const now = Date.now();
    for (const conn of this.state.connections) conn.checkTimers(now);
  };

  /**
   * Closes the listener; idle kept connections close now; busy ones get
   * `Connection: close` on their current response and close after it. A connection
   * that has not sent its first request yet gets a short grace for it: it was
   * accepted, so a client is waiting (with an inherited socket, nothing else is lost).
   */
  stopAccepting(): void {
    this.state.stopping = true;
    if (this.net.listening) this.net.close();
    for (const conn of this.state.connections) conn.closeIfIdle();
  }

  /** Resolves when no response is in progress (and, once stopping, no new connection is waiting for its first request). */
  whenIdle(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private idle(): boolean {
    if (this.state.activeExchanges > 0) return false;
    if (this.state.stopping) for (const conn of this.state.connections) if (conn.requests === 0 && !conn.destroyed) return false;
    return true;
  }

  /** Cuts every connection and closes the listener. */
  destroyAll(): void {
    this.cut = true;
    this.state.stopping = true;
    if (this.net.listening) this.net.close();
    for (const conn of this.state.connections) conn.destroy();
  }
}

let shared: Buffer | null = null;
/** One read buffer for every accepted socket: reads are handled one at a time, and nothing keeps a view of it past its callback. */
function sharedReadBuffer(): Buffer {
  shared ??= Buffer.allocUnsafeSlow(64 * 1024);
  return shared;
}

export type { Http1Connection } from './connection.js';
export { BodyError, Http1Exchange, type BodySink, type ClientEvents } from './exchange.js';
