// One client request on its way through the front, whatever the backend protocol:
// waits for a slot, is dispatched to the backend's transport, streams both ways with
// backpressure, retries where nothing was started, aborts when the client leaves.
// One object per request implements every callback (pool, transport, client, body),
// so the hot path allocates no closures.
import type { Logger } from 'pino';
import type { Backend } from '../pool/backend.js';
import type { Acquirer, AcquireRefusal, Pool } from '../pool/pool.js';
import type { Waiter } from '../pool/queue.js';
import type {
  RequestControl, RequestHead, ResponseHandler, ResponseHead, TransportError, TransportRequest,
} from '../transport.js';
import { sendError } from './errorResponse.js';
import type { BodySink, BodySource, ClientEvents, ClientExchange } from './exchange.js';

export interface ProxyContext {
  pool: Pool;
  log: Logger;
  retries: number;
  queueRetryAfterSec: number;
  /** Add `Server-Timing: queue;dur=, connect;dur=, backend;dur=` to responses. */
  serverTiming: boolean;
  slowRequestMs: number;
  /** --kill-stuck: called when a request to this backend exceeded the read timeout. */
  onStuck?(backendId: string): void;
}

const REFUSAL_EXTRA_TRIES = 4;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

export class ProxyRequest implements Acquirer, TransportRequest, ResponseHandler, BodySink, ClientEvents {
  readonly head: RequestHead;
  readonly pipelinable: boolean;
  private backend: Backend | null = null;
  private control: RequestControl | null = null;
  private waiter: Waiter | null = null;
  private attempts = 0;
  private bodyTouched = false;
  private clientGone = false;
  private finished = false;
  private retryAfterRelease = false;
  /** The body length the backend declared, and what it sent of it. */
  private declared = -1;
  private bodyBytes = 0;
  // performance.now() marks: slot granted, and (Server-Timing only) arrival and on the wire.
  private tGranted = 0;
  private readonly tArrive: number;
  private tStarted = 0;

  constructor(private readonly ctx: ProxyContext, private readonly exchange: ClientExchange,
    /** Bytes of body that will be sent (-1: unknown, streamed chunked). */
    readonly bodyLength: number,
    /** Where the body comes from: the client, or a spool that read it first. */
    private readonly body: BodySource) {
    this.head = exchange;
    this.pipelinable = bodyLength === 0;
    this.tArrive = ctx.serverTiming ? performance.now() : 0;
    exchange.setClientEvents(this);
  }

  start(): void {
    this.attempts++;
    this.waiter = this.ctx.pool.acquire(this.pipelinable, this);
  }

  // --- Acquirer ---

  onBackend(backend: Backend): void {
    this.waiter = null;
    this.backend = backend;
    this.tGranted = performance.now();
    if (this.clientGone) {
      this.backend = null;
      this.ctx.pool.release(backend);
      return;
    }
    backend.transport.dispatch(this, this);
  }

  onRefused(reason: AcquireRefusal, detail: string): void {
    this.waiter = null;
    if (this.clientGone) return;
    this.finished = true;
    sendError(this.exchange, 503, detail, reason === 'shutdown' ? undefined : this.ctx.queueRetryAfterSec);
  }

  // --- ResponseHandler (from the transport) ---

  onStart(control: RequestControl): void {
    this.control = control;
    if (this.ctx.serverTiming) this.tStarted = performance.now();
    if (this.clientGone) {
      control.abort();
      return;
    }
    if (this.bodyLength !== 0) {
      this.bodyTouched = true;
      this.body.readBody(this);
    }
  }

  onBodyDrain(): void {
    this.body.resumeBody();
  }

  onHead(head: ResponseHead): void {
    const backend = this.backend!;
    const status = head.status;
    const counters = backend.counters.responses;
    if (status < 300) counters[status < 200 ? '1xx' : '2xx']++;
    else if (status < 400) counters['3xx']++;
    else if (status < 500) counters['4xx']++;
    else counters['5xx']++;
    if (this.ctx.serverTiming) {
      const now = performance.now();
      head.headers.push('Server-Timing', `queue;dur=${(this.tGranted - this.tArrive).toFixed(2)}, connect;dur=${(this.tStarted - this.tGranted).toFixed(2)}, backend;dur=${(now - this.tStarted).toFixed(2)}`);
    }
    this.declared = head.contentLength;
    this.exchange.writeHead(status, head.reason, head.headers, head.contentLength);
  }

  onBody(chunk: Buffer): boolean {
    if (this.declared >= 0 && this.bodyBytes + chunk.length > this.declared) this.overLength(chunk.length);
    this.bodyBytes += chunk.length;
    return this.exchange.write(chunk);
  }

  /** The backend sent more than its Content-Length: the client gets exactly the declared bytes, then a close. */
  private overLength(chunkLength: number): void {
    if (this.bodyBytes > this.declared) return; // reported already
    const backend = this.backend!;
    backend.counters.failures.length = (backend.counters.failures.length ?? 0) + 1;
    this.ctx.log.error({ backend: backend.id, pid: backend.pid, declared: this.declared, sent: this.bodyBytes + chunkLength },
      `backend sent more than its Content-Length of ${this.declared} bytes; the client gets the declared bytes and a closed connection, request: "${this.head.method} ${this.head.target}"`);
    this.control?.abort();
  }

  onEnd(): void {
    this.finished = true;
    if (this.declared >= 0 && this.bodyBytes < this.declared && this.head.method !== 'HEAD') {
      const backend = this.backend!;
      backend.counters.failures.length = (backend.counters.failures.length ?? 0) + 1;
      this.ctx.log.error({ backend: backend.id, pid: backend.pid, declared: this.declared, sent: this.bodyBytes },
        `backend ended the response after ${this.bodyBytes} of its declared ${this.declared} bytes; the client sees a cut response, request: "${this.head.method} ${this.head.target}"`);
    }
    this.exchange.end();
    const backend = this.backend!;
    const us = (performance.now() - this.tGranted) * 1000;
    backend.latency.recordValue(us < 1 ? 1 : us);
    if (us > this.ctx.slowRequestMs * 1000) backend.slowRequests++;
  }

  onError(err: TransportError): void {
    const backend = this.backend!;
    const log = this.ctx.log;
    if (err.kind === 'request') {
      // Not the backend's fault: the request cannot be expressed to it (a path CGI cannot map).
      this.finished = true;
      if (!this.clientGone) sendError(this.exchange, err.status ?? 400, err.message);
      return;
    }
    // Connect errors are counted per attempt by the transport (onConnectError), the rest here.
    if (err.kind !== 'connect') backend.counters.failures[err.kind] = (backend.counters.failures[err.kind] ?? 0) + 1;
    if (err.kind === 'cant-mpx' || err.kind === 'overloaded') backend.adaptToRefusal(err.kind);
    if (this.clientGone) return;
    if (this.canRetry(err)) {
      backend.counters.retried++;
      log.warn({ backend: backend.id, pid: backend.pid, kind: err.kind, code: err.code, attempt: this.attempts }, `${err.message}; retrying the request elsewhere`);
      this.retryAfterRelease = true;
      return;
    }
    this.finished = true;
    // nginx's error-log wording, so the lines users grep for behind nginx match here too.
    const phase = err.kind === 'connect' ? 'while connecting to upstream'
      : this.exchange.headersSent ? 'while reading upstream' : 'while reading response header from upstream';
    const scheme = backend.transport.protocol === 'fastcgi' ? 'fastcgi' : 'http';
    const h = this.head;
    log.error({ backend: backend.id, pid: backend.pid, kind: err.kind, code: err.code },
      `${err.message} ${phase}, client: ${h.connection.remoteAddress}, request: "${h.method} ${h.target} HTTP/1.${h.versionMinor}", upstream: "${scheme}://${backend.addressText}"`);
    if (this.exchange.headersSent) {
      this.exchange.destroy(); // the response is cut: the client must not take it for complete
      return;
    }
    if (err.kind === 'timeout') this.ctx.onStuck?.(backend.id);
    const status = err.kind === 'timeout' ? 504 : err.kind === 'overloaded' ? 503 : 502;
    sendError(this.exchange, status, clientReason(err), err.kind === 'overloaded' ? this.ctx.queueRetryAfterSec : undefined);
  }

  onStderr(chunk: Buffer): void {
    const backend = this.backend!;
    this.ctx.log.warn({ backend: backend.id, pid: backend.pid, stream: 'FCGI_STDERR' }, chunk.toString('utf8').trimEnd());
  }

  onRelease(): void {
    const backend = this.backend!;
    this.backend = null;
    this.control = null;
    this.ctx.pool.release(backend);
    if (this.retryAfterRelease) {
      this.retryAfterRelease = false;
      if (!this.clientGone) this.start();
    }
  }

  private canRetry(err: TransportError): boolean {
    // A refusal — a fresh connection closed unanswered (an app at its thread limit on a shared
    // socket, where the kernel picks the child) or FCGI_OVERLOADED — processed nothing:
    // a few more tries than --retries.
    const refusal = err.freshConnection || err.kind === 'overloaded';
    const budget = this.ctx.retries + (refusal ? REFUSAL_EXTRA_TRIES : 0);
    if (!err.notStarted || this.exchange.headersSent || this.attempts > budget) return false;
    if (this.bodyTouched) return false; // a body partly sent is never replayed
    // The backend refused outright: safe for any method. Otherwise only idempotent ones.
    if (err.kind === 'connect' || err.kind === 'cant-mpx' || err.kind === 'overloaded') return true;
    return err.kind === 'closed' && IDEMPOTENT.has(this.head.method);
  }

  // --- BodySink (request body from the client or the spool, to the transport) ---

  onBodyData(chunk: Buffer): boolean {
    const control = this.control;
    return control === null || control.writeBody(chunk);
  }

  onBodyEnd(): void {
    this.control?.endBody();
  }

  onBodyError(err: Error): void {
    // The client left or stalled mid-body: the backend must not wait for the rest.
    if (!this.clientGone) this.ctx.log.warn({ backend: this.backend?.id }, `request body failed: ${err.message}, request: "${this.head.method} ${this.head.target}"`);
    this.onClientClose();
  }

  // --- ClientEvents ---

  onClientDrain(): void {
    this.control?.resume();
  }

  onClientClose(): void {
    if (this.clientGone) return;
    this.clientGone = true;
    if (this.waiter) {
      this.ctx.pool.cancel(this.waiter);
      this.waiter = null;
      return;
    }
    if (this.control !== null && !this.finished) this.control.abort();
  }
}

function clientReason(err: TransportError): string {
  switch (err.kind) {
    case 'connect': return `could not connect to the backend (${err.code ?? 'error'})`;
    case 'closed': return 'the backend closed the connection before answering';
    case 'protocol': return 'the backend sent an invalid response';
    case 'head': return 'the backend sent an invalid or incomplete response head';
    case 'length': return 'the backend sent a body that does not match its Content-Length';
    case 'timeout': return 'the backend did not answer in time (read-timeout)';
    case 'cant-mpx': return 'the backend cannot take another request on this connection (FCGI_CANT_MPX_CONN)';
    case 'overloaded': return 'the backend is overloaded (FCGI_OVERLOADED)';
    case 'unknown-role': return 'the backend does not support the responder role (FCGI_UNKNOWN_ROLE)';
    case 'request': return err.message;
  }
}
