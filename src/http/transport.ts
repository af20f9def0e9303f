// HTTP/1.1 to a backend on a unix socket or TCP, as a transport: undici's Pool with
// at most one kept-alive connection per slot, driven through dispatch(opts, handler)
// — no Promise, Readable or pipe per request. Bodies stream both ways with
// backpressure; undici's parser frames the response (a body is never longer than
// its Content-Length), and its errors become TransportErrors.
import { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { coarseNow } from '../clock.js';
import {
  TransportError, firstByteDeadline, type BackendAddress, type Capabilities, type RequestControl, type ResponseHandler,
  type Transport, type TransportErrorKind, type TransportEvents, type TransportFigures, type TransportRequest,
} from '../transport.js';
import { HOP_BY_HOP, forwardHeaders } from './forwardHeaders.js';

export interface HttpSettings {
  address: BackendAddress;
  readTimeoutMs: number;
  connectTimeoutMs: number;
  /** Also send an RFC 7239 Forwarded header. */
  forwarded: boolean;
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EAGAIN', 'EACCES', 'ENOTSOCK', 'EHOSTUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

function errorKind(code: string): TransportErrorKind {
  if (CONNECT_CODES.has(code)) return 'connect';
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT': case 'UND_ERR_BODY_TIMEOUT': return 'timeout';
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH': return 'length';
    case 'UND_ERR_INVALID_ARG': case 'UND_ERR_NOT_SUPPORTED': case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH': return 'request';
    case 'HPE_INVALID_CONSTANT': case 'HPE_INVALID_STATUS': case 'HPE_INVALID_HEADER_TOKEN': case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_CONTENT_LENGTH': case 'HPE_HEADER_OVERFLOW': case 'UND_ERR_HEADERS_OVERFLOW': return 'head';
    default: return code.startsWith('HPE_') ? 'protocol' : 'closed';
  }
}

/** One request through undici: its legacy handler (the interface undici drives natively) and our RequestControl. */
class HttpExchange implements Dispatcher.DispatchHandler, RequestControl {
  private abortFn: ((err?: Error) => void) | null = null;
  private resumeFn: (() => void) | null = null;
  private responded = false;
  private released = false;
  private aborted = false;
  body: Readable | null = null;
  private bodyWaiting = false;

  constructor(private readonly transport: HttpTransport, private readonly handler: ResponseHandler, hasBody: boolean,
    /** "METHOD /target", for log lines. */
    private readonly target: string) {
    if (hasBody) {
      this.body = new Readable({ read: () => { if (this.bodyWaiting) { this.bodyWaiting = false; this.handler.onBodyDrain(); } } });
    }
  }

  // RequestControl
  writeBody(chunk: Buffer): boolean {
    if (!this.body || this.aborted) return true;
    if (this.body.push(chunk)) return true;
    this.bodyWaiting = true;
    return false;
  }

  endBody(): void {
    this.body?.push(null);
  }

  resume(): void {
    const r = this.resumeFn;
    if (r) r();
  }

  abort(): void {
    if (this.aborted || this.released) return;
    this.aborted = true;
    if (this.abortFn) this.abortFn(new Error('the client went away'));
    this.body?.destroy();
  }

  // undici's handler
  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    if (this.aborted) abort(new Error('the client went away'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // an interim response (100 Continue): the final one follows
    this.resumeFn = resume;
    this.responded = true;
    if (this.aborted) return true;
    const headers: string[] = [];
    let contentLength = -1;
    let named: string | null = null;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i].latin1Slice(0, rawHeaders[i].length);
      const lower = name.toLowerCase();
      if (lower === 'connection') named = (named ? named + ',' : '') + rawHeaders[i + 1].latin1Slice(0, rawHeaders[i + 1].length).toLowerCase();
    }
    const connectionNamed = named ? new Set(named.split(',').map((s) => s.trim())) : null;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i].latin1Slice(0, rawHeaders[i].length);
      const value = rawHeaders[i + 1].latin1Slice(0, rawHeaders[i + 1].length);
      const lower = name.toLowerCase();
      if (lower === 'content-length') { contentLength = Number(value); continue; }
      if (HOP_BY_HOP.has(lower) || (connectionNamed !== null && connectionNamed.has(lower))) continue;
      headers.push(name, value);
    }
    this.handler.onHead({ status: statusCode, reason: statusText || null, headers, contentLength });
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.aborted) return true;
    return this.handler.onBody(chunk);
  }

  onComplete(): void {
    this.transport.lastCompleted = this.target;
    if (!this.aborted) this.handler.onEnd();
    this.release();
  }

  onError(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    if (this.transport.dispatching === this) this.transport.refusedInDispatch = true;
    if (!this.aborted) {
      const kind = errorKind(code);
      if (kind === 'connect') this.transport.events.onConnectError(code === 'UND_ERR_CONNECT_TIMEOUT' ? 'ETIMEDOUT' : code);
      this.handler.onError(new TransportError(kind, `${err.message} (${code})`, {
        code, cause: err, notStarted: !this.responded && (kind === 'connect' || kind === 'closed' || kind === 'request'),
        status: kind === 'request' ? 400 : undefined,
      }));
    }
    this.body?.destroy();
    this.release();
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.transport.released();
    this.handler.onRelease();
  }
}

export class HttpTransport implements Transport {
  readonly protocol = 'http' as const;
  readonly needsBodyLength = false;
  private pool: Pool | null = null;
  private poolConns = 0;
  private inflight = 0;
  private closing = false;
  readonly figures: TransportFigures = { connectionsOpened: 0, openConnections: 0 };

  constructor(private readonly settings: HttpSettings, private readonly caps: Capabilities, readonly events: TransportEvents) {}

  /** The undici pool, (re)created when the slot count changed or after a suspend. */
  private get undici(): Pool {
    const slots = this.caps.slots;
    if (this.pool && this.poolConns === slots) return this.pool;
    if (this.pool) void this.pool.close().catch(() => {});
    const a = this.settings.address;
    const origin = 'path' in a ? 'http://localhost' : `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
    const pool = new Pool(origin, {
      connections: slots,
      pipelining: 1,
      headersTimeout: this.settings.readTimeoutMs,
      bodyTimeout: this.settings.readTimeoutMs,
      keepAliveTimeout: 30_000,
      connect: { timeout: this.settings.connectTimeoutMs, ...('path' in a ? { socketPath: a.path } : {}) },
    });
    pool.on('connect', () => { this.figures.connectionsOpened++; this.figures.openConnections++; });
    pool.on('disconnect', (_origin: unknown, _targets: unknown, err: Error & { code?: string }) => {
      this.figures.openConnections = Math.max(0, this.figures.openConnections - 1);
      // Bytes after a complete response (a body longer than its Content-Length, a smuggled
      // response): undici framed the response right and dropped the connection; say so.
      const code = err?.code ?? '';
      if (code.startsWith('HPE_') || code === 'UND_ERR_RESPONSE' || /bad response|does not match/i.test(err?.message ?? '')) {
        this.events.onProtocolError(`sent bytes that are not HTTP after the response to "${this.lastCompleted}" (${err.message}${code ? `, ${code}` : ''}); that connection was dropped`);
      }
    });
    this.pool = pool;
    this.poolConns = slots;
    return pool;
  }

  /** undici opens connections itself, up to the slots. */
  prepare(): void {}

  canTake(): boolean {
    return !this.closing && this.inflight < this.caps.slots;
  }

  dispatch(request: TransportRequest, handler: ResponseHandler): boolean {
    const head = request.head;
    const exchange = new HttpExchange(this, handler, request.bodyLength !== 0, `${head.method} ${head.target}`);
    this.inflight++;
    handler.onStart(exchange);
    this.dispatching = exchange;
    this.undici.dispatch({
      path: head.target,
      method: head.method as Dispatcher.HttpMethod,
      headers: forwardHeaders(head, request.bodyLength, this.settings.forwarded),
      body: exchange.body,
      headersTimeout: firstByteDeadline(request.receivedAt, coarseNow, this.settings.readTimeoutMs) - coarseNow,
    }, exchange);
    this.dispatching = null;
    if (this.refusedInDispatch) {
      // undici refused the request while placing it; a refusal there has been seen to
      // leave a connection marked busy for good: start a fresh pool rather than leak slots.
      this.refusedInDispatch = false;
      this.close();
      this.closing = false;
    }
    return this.canTake();
  }

  /** The request being dispatched (a refusal during dispatch() itself shows here). */
  dispatching: HttpExchange | null = null;
  refusedInDispatch = false;

  released(): void {
    this.inflight--;
  }

  /** The request whose response completed last (named when bytes after a response drop a connection). */
  lastCompleted = '';

  suspend(): void {
    if (this.pool) void this.pool.destroy().catch(() => {});
    this.pool = null;
    this.figures.openConnections = 0;
  }

  /** Nothing to do: after suspend() the pool is created afresh by the next dispatch. */
  resume(): void {}

  close(force = false): void {
    this.closing = true;
    if (!this.pool) return;
    const p = this.pool;
    this.pool = null;
    void (force ? p.destroy() : p.close()).catch(() => {});
  }
}
