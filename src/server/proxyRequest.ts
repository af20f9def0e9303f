// One client request on its way through the front, whatever the backend protocol:
// waits for a slot, is dispatched to the backend's transport, streams both ways with
// backpressure, retries where nothing was started, aborts when the client leaves.
// One object per request implements every callback (pool, transport, client, body),
// so the hot path allocates no closures.
import type { Logger } from 'pino';
import { coarseNow } from '../clock.js';
import type { FrontResponses } from '../stats/frontResponses.js';
import type { InService } from '../stats/inService.js';
import { logSlowRequest } from '../stats/slowRequests.js';
import type { Backend } from '../pool/backend.js';
import type { Acquirer, AcquireRefusal, Pool } from '../pool/pool.js';
import type { Waiter } from '../pool/queue.js';
import type {
  RequestControl, RequestHead, ResponseHandler, ResponseHead, TransportError, TransportRequest,
} from '../transport.js';
import { sendError } from './errorResponse.js';
import { headerListBytes, type BodySink, type BodySource, type ClientEvents, type ClientExchange } from './exchange.js';
import type { FileHandoff, InternalLocations } from './static/internalLocations.js';
import { ResponseBuffer, type BufferCounters } from './responseBuffer.js';

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
  /** Take a response from the backend when the client reads slowly (memory, then a temp file); null: pause the backend. */
  responseBuffering: { memoryBytes: number; fileBytes: number; counters: BufferCounters } | null;
  /** Stats: the responses the front writes itself, per cause. */
  frontResponses?: FrontResponses;
  /** Stats: the request each backend serves now. */
  inService?: InService;
  /** --internal-location: X-Accel-Redirect / X-Sendfile responses are answered with the file they name. */
  internal?: InternalLocations | null;
}

const REFUSAL_EXTRA_TRIES = 4;
/** FCGI_STDERR logged per record, and per request in all (nginx cuts its log lines at ~2 KB). */
const STDERR_RECORD_MAX_BYTES = 2048;
const STDERR_REQUEST_MAX_BYTES = 16 * 1024;
/** A body of unknown length up to this size is sent whole with a Content-Length when it ends within one read. */
const HOLD_MAX_BYTES = 64 * 1024;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

export class ProxyRequest implements Acquirer, TransportRequest, ResponseHandler, BodySink, ClientEvents {
  readonly head: RequestHead;
  readonly pipelinable: boolean;
  readonly receivedAt = coarseNow;
  private backend: Backend | null = null;
  private control: RequestControl | null = null;
  private waiter: Waiter | null = null;
  private attempts = 0;
  private bodyTouched = false;
  private clientGone = false;
  private finished = false;
  private retryAfterRelease = false;
  /** The response head, until the body starts (or the response ends). */
  private response: ResponseHead | null = null;
  /** The body length the backend declared (-1: none), and what it sent of it. */
  private declared = -1;
  private bodyBytes = 0;
  /** Body of unknown length held to send it whole (see hold()). */
  private held: Buffer[] | null = null;
  private heldBytes = 0;
  /** What the client has not taken yet while the backend goes on (a slow reader). */
  private buffer: ResponseBuffer | null = null;
  /** The backend ended; the client still has buffered bytes to take. */
  private endWhenDrained = false;
  /** The buffer is full: reading from the backend waits for the client. */
  private backendPaused = false;
  /** The file a backend named with X-Accel-Redirect / X-Sendfile, sent once its response ends. */
  private handoff: FileHandoff | null = null;
  /** FCGI_STDERR bytes the backend sent for this request (what is logged is bounded). */
  private stderrBytes = 0;
  /** The backend of the last attempt (kept after the release, for the access log). */
  servedBy: Backend | null = null;
  // performance.now() marks: slot granted (read by the access log), and (Server-Timing only) arrival and on the wire.
  tGranted = 0;
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
    this.servedBy = backend;
    this.tGranted = performance.now();
    if (this.clientGone) {
      this.backend = null;
      this.ctx.pool.release(backend);
      return;
    }
    this.ctx.inService?.begin(backend, this, this.tGranted);
    backend.transport.dispatch(this, this);
  }

  onRefused(reason: AcquireRefusal, detail: string): void {
    this.waiter = null;
    if (this.clientGone) return;
    this.finished = true;
    this.ctx.frontResponses?.refused(reason);
    if (reason === 'no-backend') logRefusal(this.ctx.log, detail);
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
    const maxHead = this.exchange.maxResponseHeadBytes;
    if (maxHead !== undefined) {
      const size = headerListBytes(head.headers);
      if (size > maxHead) return this.headTooBig(backend, size, maxHead);
    }
    const status = head.status;
    const counters = backend.counters.responses;
    if (status < 300) counters[status < 200 ? '1xx' : '2xx']++;
    else if (status < 400) counters['3xx']++;
    else if (status < 500) counters['4xx']++;
    else counters['5xx']++;
    if (this.ctx.internal != null) {
      const handoff = this.ctx.internal.handoffOf(head);
      if (handoff !== null) {
        // The app authorised a file: its body is dropped (finished), the file goes out at onEnd.
        this.handoff = handoff;
        this.finished = true;
        return;
      }
    }
    if (this.ctx.serverTiming) {
      const now = performance.now();
      // A copy: a head may be shared by responses that arrived with the same bytes (see FcgiConnection).
      head = { ...head, headers: [...head.headers, 'Server-Timing', `queue;dur=${(this.tGranted - this.tArrive).toFixed(2)}, connect;dur=${(this.tStarted - this.tGranted).toFixed(2)}, backend;dur=${(now - this.tStarted).toFixed(2)}`] };
    }
    // Held until the body starts (or ends): head and body leave in one write, and a body
    // that contradicts the head can still get a 502 instead of a cut response.
    this.response = head;
    this.declared = head.contentLength;
  }

  onBody(chunk: Buffer): boolean {
    if (this.finished) return true; // cut short already (over its Content-Length)
    const declared = this.declared;
    if (declared >= 0 && this.bodyBytes + chunk.length > declared) return this.overLength(chunk);
    this.bodyBytes += chunk.length;
    const head = this.response;
    if (head !== null) {
      if (declared < 0) return this.hold(chunk);
      this.response = null;
      this.exchange.writeHead(head.status, head.reason, head.headers, declared);
    }
    return this.toClient(chunk);
  }

  /** Writes to the client; when it pushes back, keeps taking from the backend into the buffer (if enabled). */
  private toClient(chunk: Buffer): boolean {
    const buffer = this.buffer;
    if (buffer !== null) {
      if (buffer.push(chunk)) return true;
      this.backendPaused = true;
      return false;
    }
    if (this.exchange.write(chunk)) return true;
    const rb = this.ctx.responseBuffering;
    if (rb === null) return false;
    this.buffer = new ResponseBuffer(rb.memoryBytes, rb.fileBytes, rb.counters);
    return true;
  }

  /**
   * A body of unknown length: kept until the response ends within this read (then it
   * goes out whole, with a Content-Length, in one write) or grows past HOLD_MAX_BYTES
   * or the read ends (then chunked).
   */
  private hold(chunk: Buffer): boolean {
    if (this.held === null) {
      this.held = [chunk];
      this.heldBytes = chunk.length;
      queueMicrotask(() => this.flushHeld());
    } else {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
    }
    if (this.heldBytes > HOLD_MAX_BYTES) this.flushHeld();
    return true;
  }

  private flushHeld(): void {
    const head = this.response;
    const held = this.held;
    if (head === null || held === null || this.finished) return;
    this.response = null;
    this.held = null;
    this.exchange.writeHead(head.status, head.reason, head.headers, -1);
    for (const c of held) this.toClient(c);
  }

  /**
   * A head bigger than the client takes (an HTTP/2 client's SETTINGS_MAX_HEADER_LIST_SIZE):
   * sent, it would cost the client its whole session. 502, as nginx answers a head over
   * its buffer ("upstream sent too big header"); the backend's request is aborted.
   */
  private headTooBig(backend: Backend, size: number, maxHead: number): void {
    backend.counters.failures.head = (backend.counters.failures.head ?? 0) + 1;
    const h = this.head;
    this.ctx.log.error({ backend: backend.id, pid: backend.pid, size, max: maxHead },
      `upstream sent too big header (${size} bytes, this client takes ${maxHead}) while reading response header from upstream, request: "${h.method} ${h.target}", backend ${backend.id}; `
      + 'the app should send less in its header fields (large cookies, debug headers)');
    this.control?.abort();
    this.finished = true;
    this.ctx.frontResponses?.backendFailed();
    sendError(this.exchange, 502, 'the backend sent a response head too big for this client');
  }

  /** The backend sends more than its Content-Length: the client gets exactly the declared bytes (or a 502 when nothing went out yet). */
  private overLength(chunk: Buffer): boolean {
    const backend = this.backend!;
    const declared = this.declared;
    backend.counters.failures.length = (backend.counters.failures.length ?? 0) + 1;
    this.ctx.log.error({ backend: backend.id, pid: backend.pid, declared, sent: this.bodyBytes + chunk.length },
      `backend sent more than its Content-Length of ${declared} bytes; the excess is dropped, request: "${this.head.method} ${this.head.target}"`);
    this.control?.abort();
    this.finished = true;
    const head = this.response;
    if (head !== null && this.bodyBytes === 0 && declared > 0) {
      this.response = null;
      sendError(this.exchange, 502, 'the backend sent a body longer than its Content-Length');
      return true;
    }
    const room = declared - this.bodyBytes;
    this.bodyBytes = declared;
    if (head !== null) {
      this.response = null;
      this.exchange.writeHead(head.status, head.reason, head.headers, declared);
    }
    if (room > 0) this.toClient(chunk.subarray(0, room));
    this.endClient(); // exactly the declared length: a well-framed response, the rest never sent
    return true;
  }

  /** Ends the client's response, once it has taken what is buffered. */
  private endClient(): void {
    if (this.buffer !== null && !this.buffer.empty) {
      this.endWhenDrained = true;
      return;
    }
    this.dropBuffer();
    this.exchange.end();
  }

  private dropBuffer(): void {
    if (this.buffer !== null) {
      this.buffer.release();
      this.buffer = null;
    }
  }

  onEnd(): void {
    if (this.finished) {
      if (this.handoff !== null && !this.clientGone) this.ctx.internal!.serve(this.exchange, this.handoff, this.backend!.id);
      this.handoff = null;
      return;
    }
    this.finished = true;
    const backend = this.backend!;
    const declared = this.declared;
    const head = this.response;
    const bodyless = this.head.method === 'HEAD' || (head !== null && (head.status === 204 || head.status === 304));
    if (declared > 0 && this.bodyBytes < declared && !bodyless) {
      backend.counters.failures.length = (backend.counters.failures.length ?? 0) + 1;
      this.ctx.log.error({ backend: backend.id, pid: backend.pid, declared, sent: this.bodyBytes },
        `backend ended the response after ${this.bodyBytes} of its declared ${declared} bytes, request: "${this.head.method} ${this.head.target}"`);
      if (head !== null) {
        this.response = null;
        sendError(this.exchange, 502, 'the backend sent a body shorter than its Content-Length');
      } else {
        this.dropBuffer();
        this.exchange.destroy(); // the client must see the cut, never a short body on a kept connection
      }
    } else if (head !== null) {
      this.response = null;
      const held = this.held;
      this.held = null;
      if (held === null) {
        // No body: the head alone (HEAD keeps the Content-Length the backend declared).
        this.exchange.writeHead(head.status, head.reason, head.headers, declared >= 0 ? declared : 0);
        this.exchange.end();
      } else {
        this.exchange.respond(head.status, head.reason, head.headers, held.length === 1 ? held[0] : Buffer.concat(held, this.heldBytes));
      }
    } else {
      this.endClient();
    }
    const us = (performance.now() - this.tGranted) * 1000;
    backend.latency.recordValue(us < 1 ? 1 : us);
    if (us > this.ctx.slowRequestMs * 1000) { backend.slowRequests++; logSlowRequest(this.ctx.log, this.head, backend, this.tArrive || this.receivedAt - performance.timeOrigin, this.tGranted, this.tStarted, us); }
  }

  onError(err: TransportError): void {
    const backend = this.backend!;
    const log = this.ctx.log;
    if (err.kind === 'request') {
      // Not the backend's fault: the request cannot be expressed to it (a path CGI cannot map).
      this.finished = true;
      if (!this.clientGone) this.ctx.frontResponses?.rejected(err.status ?? 400);
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
    this.response = null;
    this.held = null;
    const phase = err.kind === 'connect' ? 'while connecting to upstream'
      : this.exchange.headersSent ? 'while reading upstream' : 'while reading response header from upstream';
    const scheme = backend.transport.protocol === 'fastcgi' ? 'fastcgi' : 'http';
    const h = this.head;
    log.error({ backend: backend.id, pid: backend.pid, kind: err.kind, code: err.code },
      `${err.message} ${phase}, client: ${h.connection.remoteAddress}, request: "${h.method} ${h.target} HTTP/1.${h.versionMinor}", upstream: "${scheme}://${backend.addressText}"`);
    if (this.exchange.headersSent) {
      this.dropBuffer();
      this.exchange.destroy(); // the response is cut: the client must not take it for complete
      return;
    }
    if (err.kind === 'timeout') this.ctx.onStuck?.(backend.id);
    const status = err.kind === 'timeout' ? 504 : err.kind === 'overloaded' ? 503 : 502;
    this.ctx.frontResponses?.backendFailed();
    sendError(this.exchange, status, clientReason(err), err.kind === 'overloaded' ? this.ctx.queueRetryAfterSec : undefined);
  }

  onStderr(chunk: Buffer): void {
    // Bounded, as nginx's error log line is: an app writing megabytes to stderr (in one
    // record or many) must not flood the log or the front's memory.
    const before = this.stderrBytes;
    this.stderrBytes += chunk.length;
    if (before >= STDERR_REQUEST_MAX_BYTES) return;
    const backend = this.backend!;
    let text = chunk.toString('utf8', 0, Math.min(chunk.length, STDERR_RECORD_MAX_BYTES)).trimEnd();
    if (chunk.length > STDERR_RECORD_MAX_BYTES) text += ` [${chunk.length - STDERR_RECORD_MAX_BYTES} more bytes of this record not logged]`;
    if (this.stderrBytes >= STDERR_REQUEST_MAX_BYTES) text += ` [further FCGI_STDERR of this request not logged: over ${STDERR_REQUEST_MAX_BYTES / 1024} KiB]`;
    this.ctx.log.warn({ backend: backend.id, pid: backend.pid, stream: 'FCGI_STDERR' }, text);
  }

  onRelease(): void {
    const backend = this.backend!;
    this.ctx.inService?.end(backend, this);
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
    // The backend refused outright, or never read the request: safe for any method. Otherwise only idempotent ones.
    const refused = err.kind === 'connect' || err.kind === 'cant-mpx' || err.kind === 'overloaded' || err.unread;
    if (!refused && !((err.kind === 'closed' || err.kind === 'protocol') && IDEMPOTENT.has(this.head.method))) return false;
    if (!this.bodyTouched) return true;
    // A body sent (even partly) goes again only unread and from the start (a buffered one).
    if (!err.unread || !this.body.rewind?.()) return false;
    this.bodyTouched = false;
    return true;
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
    const buffer = this.buffer;
    if (buffer === null) {
      this.control?.resume();
      return;
    }
    if (!buffer.drainTo(this.exchange)) return; // more on the next drain
    this.dropBuffer();
    if (this.endWhenDrained) {
      this.endWhenDrained = false;
      this.exchange.end();
    } else if (this.backendPaused) {
      this.backendPaused = false;
      this.control?.resume();
    }
  }

  onClientClose(): void {
    this.dropBuffer();
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

let lastRefusalLog = 0;
let refusalsSince = 0;

/** One warning a second at most: a dead pool under load must not flood the log. */
function logRefusal(log: Logger, detail: string): void {
  refusalsSince++;
  const now = Date.now();
  if (now - lastRefusalLog < 1000) return;
  log.error({ refused: refusalsSince }, `503 for ${refusalsSince} request(s): ${detail}`);
  lastRefusalLog = now;
  refusalsSince = 0;
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
