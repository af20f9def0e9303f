// One FastCGI connection to an application: request ids, record demultiplexing,
// STDIN with backpressure, the response head, the read timeout's clock. It knows
// nothing of pools or processes; its owner (FcgiTransport) decides what goes on it.
import net from 'node:net';
import { beginBackendTurn, endBackendTurn } from '../backendTurn.js';
import { coarseNow } from '../clock.js';
import { TransportError, connectErrorMessage, describeAddress, firstByteDeadline, type BackendAddress, type RequestControl, type ResponseHandler, type TransportRequest } from '../transport.js';
import { CgiHeadError, CgiHeadParser, parseCgiHead, type ParsedHead } from './cgiResponse.js';
import { CgiRequestError, type CgiParamsEncoder } from './cgiParams.js';
import { encodePairs } from './nameValue.js';
import { ProtocolStatus, RecordType, protocolStatusName, recordTypeName } from './protocol.js';
import { RecordDecoder, encodeRecord, framedLength, writeHeader, writeStream, type RecordSink } from './records.js';


const enum State { Active, Finished, Released }

/** How long a fresh connection waits after its first request before it is reused (see settle). */
const FIRST_SETTLE_MS = 10;
/**
 * A close by the app this soon after a connection's first END_REQUEST, before a second
 * one, says it ignores FCGI_KEEP_CONN — also when it came after FIRST_SETTLE_MS (an app
 * short of CPU closes late). Later, an idle close is a timeout or a restart.
 */
const CLOSED_AFTER_FIRST_MS = 1000;
/** Completions are counted over at least this long before the pace is updated. */
const PACE_WINDOW_MS = 100;
/** A gap this long between completions restarts the window (the gap is not the app's pace). */
const PACE_STALE_MS = 1000;
/** Bodies up to this size are framed by copying into one buffer; larger ones are written around (writev). */
const COPY_BELOW = 16 * 1024;
const PADDING = Buffer.alloc(8);
/** Response heads up to this size are remembered per connection, to skip parsing one that repeats. */
const MEMO_HEAD_MAX_BYTES = 1024;
/**
 * Connections with request heads held for this turn. A batch of responses read at once
 * releases a batch of slots, and the requests granted them mostly land on the same
 * connection: written once when the turn's synchronous work ends, one syscall (and one
 * wake-up of the app) instead of one each.
 */
const heldConnections: FcgiConnection[] = [];
function flushHeldConnections(): void {
  for (let i = 0; i < heldConnections.length; i++) heldConnections[i].flushHeld();
  heldConnections.length = 0;
}

/** FCGI_GET_VALUES for FCGI_MPXS_CONNS: any answer shows the application reads the connection. */
const PROBE = encodeRecord(RecordType.GetValues, 0, encodePairs(['FCGI_MPXS_CONNS', '']));

export interface ConnectionOwner {
  readonly address: BackendAddress;
  readonly connectTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly maxHeadBytes: number;
  /** On EAGAIN, connect() again with backoff until the connect timeout (instead of failing as nginx does). */
  readonly retryEagain: boolean;
  readonly encoder: CgiParamsEncoder;
  onConnectError(code: string): void;
  /** The connection may take a request it could not take before. */
  onUsable(conn: FcgiConnection): void;
  /** A probe connection was answered: the application serves it. */
  onServed(conn: FcgiConnection): void;
  /** The application answered FCGI_OVERLOADED on it: it took no request more there just now. */
  onOverloaded(conn: FcgiConnection): void;
  onClose(conn: FcgiConnection): void;
}

/** One request on a connection; the handler's RequestControl. */
export class FcgiRequest implements RequestControl {
  lastTick = 0;
  state = State.Active;
  headParser: CgiHeadParser | null = null;
  headSeen = false;
  stdinEnded: boolean;
  bodyBytesSent = 0;
  /** The response was given up (client abort, timeout): data is discarded, END_REQUEST awaited. */
  abandoned = false;
  /** When it was given up (coarse ms): the sweep's abort grace counts from here, whatever the app still sends. */
  abandonedAt = 0;
  anyResponseByte = false;
  /** BEGIN_REQUEST + PARAMS of a request with a body, written with the first body bytes. */
  pendingHead: Buffer | null = null;

  constructor(readonly connection: FcgiConnection, readonly id: number, readonly handler: ResponseHandler,
    readonly bodyLength: number) {
    this.stdinEnded = bodyLength === 0;
  }

  writeBody(chunk: Buffer): boolean {
    if (this.stdinEnded || this.state !== State.Active || chunk.length === 0) return true;
    this.bodyBytesSent += chunk.length;
    this.lastTick = coarseNow;
    const last = this.bodyLength >= 0 && this.bodyBytesSent >= this.bodyLength;
    if (last) this.stdinEnded = true;
    return this.connection.writeStdin(this, chunk, last);
  }

  endBody(): void {
    if (this.stdinEnded) return;
    this.stdinEnded = true;
    this.lastTick = coarseNow;
    if (this.state === State.Active) this.connection.writeStdin(this, null, true);
  }

  resume(): void {
    this.connection.resumeReading(this);
  }

  /**
   * The client went away: tell the application (FCGI_ABORT_REQUEST), drop what it
   * still sends, and keep the request until END_REQUEST so the slot stays honest.
   */
  abort(): void {
    if (this.state !== State.Active || this.abandoned) return;
    this.abandoned = true;
    this.abandonedAt = coarseNow;
    this.connection.sendAbort(this);
  }
}

export class FcgiConnection implements RecordSink {
  socket: net.Socket;
  private readonly decoder = new RecordDecoder(this);
  /** Index = request id. Ids are reused after END_REQUEST, lowest first. */
  private readonly requests: Array<FcgiRequest | undefined> = [undefined];
  /** Requests whose body write met a full socket buffer: told on 'drain'. */
  private drainWaiters: FcgiRequest[] = [];
  inflight = 0;
  connected = false;
  closed = false;
  /** Closed by this side (idle close, shutdown, timeout), not by the application. */
  closedByUs = false;
  /** The application half-closed the connection: nothing more may be written on it. */
  ended = false;
  /** Between the first END_REQUEST that left it idle and FIRST_SETTLE_MS later. */
  settling = false;
  /** It stayed open FIRST_SETTLE_MS after a completed request (or was opened keepsConnections): reusable at once, safe to pipeline on. */
  proven: boolean;
  /**
   * Another connection to this process answered a second request: the app honours
   * FCGI_KEEP_CONN for sure. Staying open FIRST_SETTLE_MS is no proof of that: an app
   * short of CPU may close later (then what was written on it goes again, see unread).
   */
  private readonly keepsConnections: boolean;
  /**
   * The application reads it: false for a probe until its FCGI_GET_VALUES is answered.
   * A connection the kernel queued but no one serves (a single-threaded app busy with a
   * kept connection, a thread pool with every thread taken) never gets a request.
   */
  served: boolean;
  /** The application closed it right after its first request, before answering another: it ignores FCGI_KEEP_CONN. */
  closedAfterFirst = false;
  /** Its process is being drained (shared socket): no new request; closed once idle. */
  retired = false;
  /**
   * A request ended (END_REQUEST) before its STDIN was written whole: the rest of it is
   * cut short, or still in our buffer behind an app that may never read it. Another
   * request would wait behind it, so none goes on; it is closed once idle.
   */
  spoiled = false;
  /** Requests completed on this connection. */
  completed = 0;
  /**
   * The app's recent pace on this connection, in ms per request: completions counted
   * over windows of at least PACE_WINDOW_MS of the coarse clock. Idle time inside a
   * window counts as service, so it errs towards slower: towards pipelining less.
   */
  paceMs = Infinity;
  private paceFrom = -1;
  private paceCount = 0;
  private lastEndAt = 0;
  lastError: TransportError | null = null;
  /** The last response head read whole from one record, and its bytes (an app answers alike): reused when they repeat. */
  private lastHeadBytes: Buffer | null = null;
  private lastHead: ParsedHead | null = null;
  /** The request whose client could not keep up; reading resumes when it drains or ends. */
  private pausedBy: FcgiRequest | null = null;
  /** Bytes written before connect() completed, kept to write again after an EAGAIN retry. */
  private preconnect: Buffer[] | null = [];
  /** Body-less request heads put on it this turn, not yet written (see heldConnections). */
  private readonly held: Buffer[] = [];
  private heldBytes = 0;
  private connectTimer: NodeJS.Timeout | null = null;
  private connectDeadline: number;
  private backoffMs = 1;

  constructor(private readonly owner: ConnectionOwner, keepsConnections: boolean, probe: boolean) {
    this.proven = keepsConnections;
    this.keepsConnections = keepsConnections;
    this.served = !probe;
    if (probe) this.preconnect!.push(PROBE);
    this.connectDeadline = Date.now() + owner.connectTimeoutMs;
    this.socket = this.attempt();
    this.connectTimer = setTimeout(this.onConnectTimeout, owner.connectTimeoutMs);
  }

  private attempt(): net.Socket {
    const a = this.owner.address;
    const socket = 'path' in a ? net.connect({ path: a.path }) : net.connect({ host: a.host, port: a.port, noDelay: true });
    socket.on('connect', this.onConnect);
    socket.on('data', this.onData);
    socket.on('drain', this.onDrain);
    socket.on('error', this.onError);
    socket.on('end', this.onEnd);
    socket.on('close', this.onSocketClose);
    return socket;
  }

  /** Whether every request's STDIN is complete, so another request may follow on the wire. */
  get stdinComplete(): boolean {
    for (let i = 1; i < this.requests.length; i++) {
      const r = this.requests[i];
      if (r && !r.stdinEnded) return false;
    }
    return true;
  }

  /**
   * Every request on it made progress within `ms` (sent, or data from the backend) and
   * reading is not paused for a slow client: only then is another written behind them.
   */
  moving(now: number, ms: number): boolean {
    if (this.pausedBy !== null) return false;
    for (let i = 1; i < this.requests.length; i++) {
      const r = this.requests[i];
      if (r && now - r.lastTick > ms) return false;
    }
    return true;
  }

  get anyAbandoned(): boolean {
    for (let i = 1; i < this.requests.length; i++) {
      const r = this.requests[i];
      if (r && r.abandoned) return true;
    }
    return false;
  }

  /** The socket's file descriptor (-1 before connect), to find which process serves it. */
  get fd(): number {
    return (this.socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
  }

  /** May take a new request now. */
  get usable(): boolean {
    return this.served && !this.closed && !this.ended && !this.settling && !this.retired && !this.spoiled;
  }

  /**
   * May take a new request now; a body-less one also while the connection still has to
   * prove it is kept: if the app closes it instead, that request was never read and
   * goes elsewhere (a refusal), while one with a body could not be replayed.
   */
  usableFor(bodyless: boolean): boolean {
    return this.served && !this.closed && !this.ended && !this.retired && !this.spoiled && (!this.settling || bodyless);
  }

  /**
   * Puts a request on this connection: BEGIN_REQUEST, PARAMS and, without a body, the
   * empty STDIN in one write; with a body they go out with its first bytes. Calls
   * handler.onStart, or onError + onRelease when the request cannot be encoded.
   */
  begin(req: TransportRequest, handler: ResponseHandler, keepConn: boolean): void {
    let id = 1;
    while (id < this.requests.length && this.requests[id] !== undefined) id++;
    let head: Buffer;
    try {
      head = this.owner.encoder.encode(req.head, req.bodyLength, id, keepConn);
    } catch (err) {
      if (!(err instanceof CgiRequestError)) throw err;
      handler.onError(new TransportError('request', err.message, { notStarted: true, status: err.status }));
      handler.onRelease();
      if (!keepConn && this.inflight === 0) this.destroy();
      return;
    }
    const request = new FcgiRequest(this, id, handler, req.bodyLength);
    // The sweep fails it when coarseNow - lastTick > read timeout: start its clock so that
    // its first byte is due at firstByteDeadline().
    request.lastTick = firstByteDeadline(req.receivedAt, coarseNow, this.owner.readTimeoutMs) - this.owner.readTimeoutMs;
    this.requests[id] = request;
    this.inflight++;
    if (req.bodyLength === 0) this.hold(head);
    else request.pendingHead = head;
    handler.onStart(request);
  }

  /** Written with the other heads put on this connection in the same turn. */
  private hold(buf: Buffer): void {
    if (this.preconnect !== null || this.closed) { this.write(buf); return; }
    if (this.held.length === 0 && heldConnections.push(this) === 1) process.nextTick(flushHeldConnections);
    this.held.push(buf);
    this.heldBytes += buf.length;
  }

  flushHeld(): void {
    const held = this.held;
    if (held.length === 0) return;
    const buf = held.length === 1 ? held[0] : Buffer.concat(held, this.heldBytes);
    held.length = 0;
    this.heldBytes = 0;
    if (!this.closed && !this.socket.destroyed) this.socket.write(buf);
  }

  write(buf: Buffer): boolean {
    if (this.held.length !== 0) this.flushHeld(); // in order: what was held goes first
    if (this.closed) return true;
    if (this.preconnect !== null) {
      this.preconnect.push(buf);
      return true;
    }
    return this.socket.write(buf);
  }

  /** STDIN records for `chunk` (null: none), the request's pending head before them, the end record after when `last`. */
  writeStdin(request: FcgiRequest, chunk: Buffer | null, last: boolean): boolean {
    const head = request.pendingHead;
    request.pendingHead = null;
    const len = chunk ? chunk.length : 0;
    const size = (head ? head.length : 0) + framedLength(len) + (last ? 8 : 0);
    let ok: boolean;
    if (size <= COPY_BELOW || this.preconnect !== null) {
      const buf = Buffer.allocUnsafe(size);
      let o = head ? head.copy(buf, 0) : 0;
      if (chunk) o = writeStream(buf, o, RecordType.Stdin, request.id, chunk);
      if (last) writeHeader(buf, o, RecordType.Stdin, request.id, 0, 0);
      ok = this.write(buf);
    } else {
      // Large: the body bytes are written where they are (writev), only the 8-byte headers are new.
      this.flushHeld();
      const socket = this.socket;
      socket.cork();
      if (head) socket.write(head);
      for (let start = 0; start < len; start += 65535) {
        const n = Math.min(65535, len - start);
        const pad = (8 - (n & 7)) & 7;
        const h = Buffer.allocUnsafe(8);
        writeHeader(h, 0, RecordType.Stdin, request.id, n, pad);
        socket.write(h);
        socket.write(start === 0 && n === len ? chunk! : chunk!.subarray(start, start + n));
        if (pad) socket.write(PADDING.subarray(0, pad));
      }
      if (last) socket.write(encodeRecord(RecordType.Stdin, request.id));
      socket.uncork();
      ok = !socket.writableNeedDrain;
    }
    if (!ok) this.drainWaiters.push(request);
    return ok;
  }

  sendAbort(request: FcgiRequest): void {
    if (request.pendingHead !== null) {
      // Never sent: nothing to abort at the application; the slot is free at once.
      request.pendingHead = null;
      this.requests[request.id] = undefined;
      this.inflight--;
      request.state = State.Released;
      request.handler.onRelease();
      if (this.inflight === 0) this.owner.onUsable(this);
      return;
    }
    this.write(encodeRecord(RecordType.AbortRequest, request.id));
    if (this.pausedBy === request) this.resumeReading();
  }

  pauseReading(by: FcgiRequest): void {
    if (this.pausedBy === null) { this.pausedBy = by; this.socket.pause(); }
  }

  /** With `by`, only when that request is the one that paused (multiplexed: another may have). */
  resumeReading(by?: FcgiRequest): void {
    if (this.pausedBy !== null && (by === undefined || by === this.pausedBy)) { this.pausedBy = null; this.socket.resume(); }
  }

  forEachRequest(fn: (r: FcgiRequest) => void): void {
    for (let i = 1; i < this.requests.length; i++) {
      const r = this.requests[i];
      if (r) fn(r);
    }
  }

  destroy(err?: TransportError): void {
    this.closedByUs = true;
    if (err && !this.lastError) this.lastError = err;
    this.socket.destroy();
  }

  // --- socket events (bound once per connection) ---

  private readonly onConnect = (): void => {
    this.connected = true;
    if (this.connectTimer) { clearTimeout(this.connectTimer); this.connectTimer = null; }
    const pending = this.preconnect!;
    this.preconnect = null;
    if (pending.length === 1) this.socket.write(pending[0]);
    else if (pending.length > 1) {
      this.socket.cork();
      for (const b of pending) this.socket.write(b);
      this.socket.uncork();
    }
  };

  private readonly onData = (chunk: Buffer): void => {
    if (!beginBackendTurn()) return this.decoder.push(chunk);
    try {
      this.decoder.push(chunk);
    } finally {
      // The requests this chunk's ends let in go to the backends before the responses to clients.
      flushHeldConnections();
      endBackendTurn();
    }
  };

  private readonly onDrain = (): void => {
    const waiters = this.drainWaiters;
    if (waiters.length === 0) return;
    this.drainWaiters = [];
    for (const r of waiters) if (r.state === State.Active) r.handler.onBodyDrain();
  };

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    if (!this.connected && !this.closedByUs) {
      const code = err.code ?? 'EIO';
      this.owner.onConnectError(code);
      if (code === 'EAGAIN' && this.owner.retryEagain && Date.now() + this.backoffMs < this.connectDeadline) {
        // The accept queue is full: it will have room once the app accepts. Back off and knock again.
        const old = this.socket;
        old.removeListener('close', this.onSocketClose);
        old.destroy();
        setTimeout(() => { if (!this.closed && !this.closedByUs) this.socket = this.attempt(); }, this.backoffMs);
        this.backoffMs = Math.min(this.backoffMs * 2, 50);
        return;
      }
      this.lastError = new TransportError('connect', connectErrorMessage(this.owner.address, err), { code, notStarted: true, cause: err });
      return;
    }
    if (!this.lastError) this.lastError = new TransportError('closed', `connection error: ${err.message}`, { code: err.code, cause: err });
  };

  private readonly onConnectTimeout = (): void => {
    this.connectTimer = null;
    if (this.connected || this.closed) return;
    this.owner.onConnectError('ETIMEDOUT');
    this.lastError = new TransportError('connect', `connect() to ${describeAddress(this.owner.address)} timed out after ${this.owner.connectTimeoutMs} ms`,
      { code: 'ETIMEDOUT', notStarted: true });
    this.closedByUs = true;
    this.socket.destroy();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
  };

  private readonly onSocketClose = (): void => {
    this.closed = true;
    if (this.connectTimer) { clearTimeout(this.connectTimer); this.connectTimer = null; }
    // An app that ignores FCGI_KEEP_CONN closes right after its first END_REQUEST, while we
    // wait to reuse the connection. A close at any other moment (a crash, a restart, a
    // recycled process) is not evidence of that.
    let unanswered = true;
    for (let i = 1; i < this.requests.length; i++) if (this.requests[i]?.anyResponseByte) unanswered = false;
    const code = this.lastError?.code;
    // ECONNRESET: it closed with our request unread; EPIPE: our write met the close.
    const unread = code === 'ECONNRESET' || code === 'EPIPE';
    this.closedAfterFirst = !this.keepsConnections && this.completed === 1 && !this.closedByUs && unanswered
      && coarseNow - this.lastEndAt < CLOSED_AFTER_FIRST_MS && (this.lastError === null || unread);
    this.settling = false;
    const cause = this.lastError;
    for (let i = 1; i < this.requests.length; i++) {
      const request = this.requests[i];
      if (!request) continue;
      this.requests[i] = undefined;
      const wasActive = request.state === State.Active && !request.abandoned;
      request.state = State.Released;
      if (wasActive) {
        let err: TransportError;
        if (cause && (cause.kind === 'connect' || cause.kind === 'protocol')) {
          // Which request a broken record belongs to is not known: one without a byte of its
          // answer yet may be an innocent neighbour on this connection, not started (an
          // idempotent one is retried, within --retries, as after a close before an answer).
          err = new TransportError(cause.kind, cause.message, { code: cause.code, notStarted: cause.kind === 'connect' || !request.anyResponseByte });
        } else {
          err = new TransportError('closed', request.anyResponseByte
            ? 'backend closed the connection in the middle of the response'
            : `backend closed the connection before answering${cause?.code ? ` (${cause.code})` : ''}`,
          { code: cause?.code, notStarted: !request.anyResponseByte });
          err.freshConnection = (this.completed === 0 || this.closedAfterFirst) && !request.anyResponseByte;
          err.unread = this.closedAfterFirst && unread && !request.anyResponseByte;
        }
        request.handler.onError(err);
      }
      request.handler.onRelease();
    }
    this.inflight = 0;
    this.drainWaiters = [];
    this.owner.onClose(this);
  };

  // --- RecordSink ---

  onRecord(type: number, requestId: number, content: Buffer): void {
    if (requestId === 0) {
      // Management records: the answer to a probe's GET_VALUES proves the app serves this connection.
      if (type === RecordType.GetValuesResult) {
        if (!this.served) {
          this.served = true;
          this.owner.onServed(this);
        }
        return;
      }
      if (type === RecordType.UnknownType) return;
      this.decoder.fail(`unexpected management record ${recordTypeName(type)} (request id 0)`);
      return;
    }
    const request = this.requests[requestId];
    if (request === undefined) {
      // A stream's end record sent after END_REQUEST (patched node-fastcgi does): harmless.
      if (content.length === 0 && (type === RecordType.Stdout || type === RecordType.Stderr)) return;
      this.decoder.fail(`${recordTypeName(type)} record for request id ${requestId}, which is not in flight on this connection`);
      return;
    }
    switch (type) {
      case RecordType.Stdout:
        // Only what the client gets is progress for the read timeout: STDERR (a log line)
        // is not, nor an empty record (a trickle of them held a slot for ever), nor a head's
        // pieces: it must be whole within the read timeout of its first byte (onStdout),
        // else one header line a read timeout held it for max-head-bytes times that. What an
        // aborted request still sends is discarded, any record of it showing the app still
        // writes for it (the sweep's abort grace, counted from the abort).
        if (request.abandoned) request.lastTick = coarseNow;
        else if (content.length > 0 && (request.headSeen || !request.anyResponseByte)) request.lastTick = coarseNow;
        if (content.length > 0) this.onStdout(request, content);
        return;
      case RecordType.Stderr:
        if (content.length > 0 && request.state === State.Active) request.handler.onStderr(content);
        return;
      case RecordType.EndRequest:
        request.lastTick = coarseNow;
        this.onEndRequest(request, content);
        return;
      default:
        this.decoder.fail(`unexpected ${recordTypeName(type)} record from the application for request id ${requestId}`);
    }
  }

  onProtocolError(reason: string): void {
    this.lastError = new TransportError('protocol', `backend sent invalid FastCGI: ${reason}`);
    this.closedByUs = true;
    this.socket.destroy();
  }

  private onStdout(request: FcgiRequest, content: Buffer): void {
    request.anyResponseByte = true;
    if (request.abandoned || request.state !== State.Active) return;
    if (!request.headSeen) {
      let parsed;
      try {
        const last = this.lastHeadBytes;
        if (request.headParser === null && last !== null && content.length >= last.length
          && content.compare(last, 0, last.length, 0, last.length) === 0) {
          // The same head bytes as the last response on this connection: the same head.
          parsed = this.lastHead!;
        } else if (request.headParser !== null) parsed = request.headParser.push(content);
        else {
          parsed = parseCgiHead(content, this.owner.maxHeadBytes);
          if (parsed === null) {
            request.headParser = new CgiHeadParser(this.owner.maxHeadBytes);
            request.headParser.push(content);
            return;
          }
          if (parsed.bodyOffset <= MEMO_HEAD_MAX_BYTES) {
            this.lastHeadBytes = Buffer.from(content.subarray(0, parsed.bodyOffset));
            this.lastHead = parsed;
          }
        }
      } catch (err) {
        if (err instanceof CgiHeadError) {
          this.failRequest(request, new TransportError('head', err.message));
          return;
        }
        throw err;
      }
      if (parsed === null) return;
      request.headParser = null;
      request.headSeen = true;
      request.lastTick = coarseNow;
      request.handler.onHead(parsed.head);
      if (request.abandoned || request.state !== State.Active || parsed.bodyOffset >= content.length) return;
      content = parsed.bodyOffset === 0 ? content : content.subarray(parsed.bodyOffset);
    }
    if (!request.handler.onBody(content)) this.pauseReading(request);
  }

  private onEndRequest(request: FcgiRequest, content: Buffer): void {
    if (content.length < 8) {
      this.decoder.fail(`END_REQUEST body of ${content.length} bytes (expected 8)`);
      return;
    }
    const protocolStatus = content[4];
    // The app answered before reading the whole body (as HTTP's keep-alive requires of a
    // kept connection, the body must have gone out whole): what was not written, or sits
    // in our buffer unread, would stand before the next request on this connection.
    if (!request.stdinEnded || (request.bodyLength !== 0 && this.socket.writableLength > 0)) this.spoiled = true;
    this.requests[request.id] = undefined;
    this.inflight--;
    this.completed++;
    const now = coarseNow;
    if (this.paceFrom < 0 || now - this.lastEndAt > PACE_STALE_MS) {
      this.paceFrom = now; // the first completion, or the first after a pause: a window starts
      this.paceCount = 0;
    } else {
      this.paceCount++;
      if (now - this.paceFrom >= PACE_WINDOW_MS) {
        this.paceMs = (now - this.paceFrom) / this.paceCount;
        this.paceFrom = now;
        this.paceCount = 0;
      }
    }
    this.lastEndAt = now;
    const wasActive = request.state === State.Active;
    request.state = State.Released;
    if (this.pausedBy === request) this.resumeReading(); // its client's drain no longer matters here
    if (this.inflight === 0 && !this.proven && !this.closed && !this.spoiled) {
      // A fresh connection is not reused until the app had a moment to show it closes
      // after END_REQUEST (it ignores FCGI_KEEP_CONN); one that stays open has proven it
      // keeps connections, and is reusable at once from then on.
      this.settling = true;
      setTimeout(this.settle, FIRST_SETTLE_MS);
    }
    if (protocolStatus === ProtocolStatus.Overloaded) this.owner.onOverloaded(this);
    if (wasActive && !request.abandoned) {
      if (protocolStatus === ProtocolStatus.RequestComplete) {
        if (!request.headSeen) {
          request.handler.onError(new TransportError('head', request.anyResponseByte
            ? 'backend ended the request inside the response head'
            : 'backend ended the request without sending a response', { notStarted: false }));
        } else {
          request.handler.onEnd();
        }
      } else {
        const kind = protocolStatus === ProtocolStatus.CantMpxConn ? 'cant-mpx'
          : protocolStatus === ProtocolStatus.Overloaded ? 'overloaded'
          : protocolStatus === ProtocolStatus.UnknownRole ? 'unknown-role' : 'protocol';
        request.handler.onError(new TransportError(kind, `backend ended the request with ${protocolStatusName(protocolStatus)}`,
          { notStarted: !request.anyResponseByte }));
      }
    }
    request.handler.onRelease();
    if (this.spoiled && this.inflight === 0 && !this.closed) this.destroy();
  }

  private readonly settle = (): void => {
    this.settling = false;
    if (this.closed || this.ended) return;
    this.proven = true;
    this.owner.onUsable(this);
  };

  /** The response cannot be used any more; the request stays until END_REQUEST or close. */
  failRequest(request: FcgiRequest, err: TransportError): void {
    if (request.state !== State.Active) return;
    request.state = State.Finished;
    request.abandoned = true;
    request.abandonedAt = coarseNow;
    request.handler.onError(err);
    // Tell the application to stop; a conforming one answers END_REQUEST and the connection lives on.
    this.sendAbort(request);
  }
}
