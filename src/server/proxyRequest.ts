// One client request on its way through the front: waits for a slot, goes to a
// backend over FastCGI, streams both ways, retries where nothing was started,
// aborts when the client leaves. One object per request implements every callback,
// so the hot path allocates no closures.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { CgiHead } from '../fastcgi/cgiResponse.js';
import type { FcgiRequest } from '../fastcgi/connection.js';
import type { FcgiClient, FcgiStartHandler } from '../fastcgi/client.js';
import type { FcgiError } from '../fastcgi/errors.js';
import type { Backend } from '../pool/backend.js';
import type { Acquirer, AcquireRefusal, Pool } from '../pool/pool.js';
import type { Waiter } from '../pool/queue.js';
import { sendError } from './errorResponse.js';

export interface ProxyContext {
  pool: Pool;
  log: Logger;
  retries: number;
  queueRetryAfterSec: number;
  /** Add `Server-Timing: queue;dur=, connect;dur=, backend;dur=` to responses. */
  serverTiming: boolean;
  slowRequestMs: number;
  /** --protocol http: also send an RFC 7239 Forwarded header. */
  forwarded?: boolean;
  /** --kill-stuck: called when a request to this backend exceeded the read timeout. */
  onStuck?(backendId: string): void;
}

const REFUSAL_EXTRA_TRIES = 4;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

export class ProxyRequest implements Acquirer, FcgiStartHandler {
  private backend: Backend | null = null;
  private fcgi: FcgiRequest | null = null;
  private waiter: Waiter | null = null;
  private attempts = 0;
  private bodyTouched = false;
  private clientGone = false;
  private finished = false;
  private retryAfterRelease = false;
  private waitingDrain = false;
  private readonly pipelinable: boolean;
  // performance.now() marks: arrival, slot granted, request on the wire, response head.
  private readonly tArrive = performance.now();
  private tGranted = 0;
  private tStarted = 0;

  constructor(private readonly ctx: ProxyContext, private readonly req: IncomingMessage,
    private readonly res: ServerResponse, private readonly params: string[], private readonly hasBody: boolean,
    /** The body read whole beforehand (chunked uploads), else null: streamed from `req`. */
    private readonly spooled: Readable | null = null) {
    this.pipelinable = !hasBody;
    res.on('close', this.onClientClose);
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
      this.ctx.pool.release(backend);
      this.backend = null;
      return;
    }
    (backend.client as FcgiClient).dispatch({ params: this.params, hasBody: this.hasBody, pipelinable: this.pipelinable }, this);
  }

  onRefused(reason: AcquireRefusal, detail: string): void {
    this.waiter = null;
    this.spooled?.destroy();
    if (this.clientGone) return;
    this.finished = true;
    sendError(this.res, 503, detail, reason === 'shutdown' ? undefined : this.ctx.queueRetryAfterSec);
  }

  // --- FcgiStartHandler ---

  onStart(request: FcgiRequest): void {
    this.fcgi = request;
    this.tStarted = performance.now();
    if (this.clientGone) {
      request.abort();
      return;
    }
    if (this.hasBody) this.pipeBody(request);
  }

  onHead(head: CgiHead): void {
    const backend = this.backend!;
    const status = head.status;
    const counters = backend.counters.responses;
    if (status < 200) counters['1xx']++;
    else if (status < 300) counters['2xx']++;
    else if (status < 400) counters['3xx']++;
    else if (status < 500) counters['4xx']++;
    else counters['5xx']++;
    if (this.ctx.serverTiming) {
      const now = performance.now();
      head.headers.push('Server-Timing', `queue;dur=${(this.tGranted - this.tArrive).toFixed(2)}, connect;dur=${(this.tStarted - this.tGranted).toFixed(2)}, backend;dur=${(now - this.tStarted).toFixed(2)}`);
    }
    try {
      if (head.statusText) this.res.writeHead(status, head.statusText, head.headers);
      else this.res.writeHead(status, head.headers);
    } catch (err) {
      this.ctx.log.error({ backend: backend.id, pid: backend.pid, err: (err as Error).message }, 'backend sent a response head Node cannot write');
      this.fcgi?.abort();
      sendError(this.res, 502, 'the backend sent an invalid response head');
    }
  }

  onBody(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    if (!this.waitingDrain) {
      this.waitingDrain = true;
      this.res.once('drain', this.onClientDrain);
    }
    return false;
  }

  onEnd(): void {
    this.finished = true;
    this.res.end();
    const backend = this.backend!;
    const us = (performance.now() - this.tGranted) * 1000;
    backend.latency.recordValue(us < 1 ? 1 : us);
    if (us > this.ctx.slowRequestMs * 1000) backend.slowRequests++;
  }

  onError(err: FcgiError): void {
    const backend = this.backend!;
    // Connect errors are counted per attempt by the client (onConnectError), the rest here.
    if (err.kind !== 'connect') backend.counters.failures[err.kind] = (backend.counters.failures[err.kind] ?? 0) + 1;
    const log = this.ctx.log;
    if (err.kind === 'cant-mpx' || err.kind === 'overloaded') {
      const change = backend.adaptToRefusal(err.kind);
      if (change) log.warn({ backend: backend.id, pid: backend.pid, adapt: err.kind }, `backend ${backend.id}: ${change}`);
    }
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
      : this.res.headersSent ? 'while reading upstream' : 'while reading response header from upstream';
    const line = `${err.message} ${phase}, client: ${this.req.socket.remoteAddress ?? ''}, request: "${this.req.method} ${this.req.url} HTTP/${this.req.httpVersion}", upstream: "fastcgi://${backend.addressText}:"`;
    log.error({ backend: backend.id, pid: backend.pid, kind: err.kind, code: err.code }, line);
    if (this.res.headersSent) {
      this.res.destroy(); // the response is cut: the client must not take it for complete
      return;
    }
    if (err.kind === 'timeout') this.ctx.onStuck?.(backend.id);
    const status = err.kind === 'timeout' ? 504 : err.kind === 'overloaded' ? 503 : 502;
    sendError(this.res, status, clientReason(err), err.kind === 'overloaded' ? this.ctx.queueRetryAfterSec : undefined);
  }

  onStderr(chunk: Buffer): void {
    const backend = this.backend!;
    this.ctx.log.warn({ backend: backend.id, pid: backend.pid, stream: 'FCGI_STDERR' }, chunk.toString('utf8').trimEnd());
  }

  onRelease(): void {
    const backend = this.backend!;
    this.backend = null;
    this.fcgi = null;
    this.ctx.pool.release(backend);
    if (this.retryAfterRelease) {
      this.retryAfterRelease = false;
      if (!this.clientGone) this.start();
    }
  }

  private canRetry(err: FcgiError): boolean {
    // A refusal — a fresh connection closed unanswered (an app at its thread limit on a shared
    // socket, where the kernel picks the child) or FCGI_OVERLOADED — processed nothing:
    // a few more tries than --retries.
    const refusal = err.freshConnection || err.kind === 'overloaded';
    const budget = this.ctx.retries + (refusal ? REFUSAL_EXTRA_TRIES : 0);
    if (!err.notStarted || this.res.headersSent || this.attempts > budget) return false;
    if (this.bodyTouched) return false; // a body partly sent is never replayed
    // The backend refused outright: safe for any method. Otherwise only idempotent ones.
    if (err.kind === 'connect' || err.kind === 'cant-mpx' || err.kind === 'overloaded') return true;
    return err.kind === 'closed' && IDEMPOTENT.has(this.req.method || 'GET');
  }

  private pipeBody(request: FcgiRequest): void {
    const req: Readable = this.spooled ?? this.req;
    this.bodyTouched = true;
    const onData = (chunk: Buffer) => {
      if (!request.writeStdin(chunk)) {
        req.pause();
        request.onDrain(() => req.resume());
      }
    };
    req.on('data', onData);
    req.once('end', () => request.endStdin());
    if (req.readableEnded) request.endStdin();
  }

  private readonly onClientDrain = (): void => {
    this.waitingDrain = false;
    this.fcgi?.resume();
  };

  private readonly onClientClose = (): void => {
    if (this.res.writableFinished) return; // normal end
    this.clientGone = true;
    if (this.waiter) {
      this.ctx.pool.cancel(this.waiter);
      this.waiter = null;
      this.spooled?.destroy();
      return;
    }
    if (!this.fcgi && !this.backend) this.spooled?.destroy();
    if (this.fcgi && !this.finished) this.fcgi.abort();
    else if (this.fcgi && this.res.headersSent && !this.res.writableEnded) this.fcgi.abort();
  };
}

function clientReason(err: FcgiError): string {
  switch (err.kind) {
    case 'connect': return `could not connect to the backend (${err.code ?? 'error'})`;
    case 'closed': return 'the backend closed the connection before answering';
    case 'protocol': return 'the backend sent invalid FastCGI records';
    case 'head': return 'the backend sent an invalid or incomplete response head';
    case 'timeout': return 'the backend did not answer in time (read-timeout)';
    case 'cant-mpx': return 'the backend cannot take another request on this connection (FCGI_CANT_MPX_CONN)';
    case 'overloaded': return 'the backend is overloaded (FCGI_OVERLOADED)';
    case 'unknown-role': return 'the backend does not support the responder role (FCGI_UNKNOWN_ROLE)';
  }
}
