// One HTTP/1.1 connection to a backend, one request at a time (no pipelining): the
// request head written in one write (with the first body bytes when there is a body),
// the body with backpressure (Content-Length or chunked), the response decoded
// (ResponseDecoder) and handed on with backpressure, keep-alive or close, the read
// timeout's clock. It knows nothing of pools or slots; HttpTransport decides what goes on it.
import net from 'node:net';
import { beginBackendTurn, endBackendTurn } from '../backendTurn.js';
import { coarseNow } from '../clock.js';
import { peerInode } from '../native/sock.js';
import {
  TransportError, connectErrorMessage, describeAddress, firstByteDeadline, type BackendAddress, type RequestControl,
  type ResponseHandler, type ResponseHead, type TransportRequest,
} from '../transport.js';
import { RequestHeadError, encodeRequestHead } from './forwardHeaders.js';
import { ResponseDecoder, type ResponseSink } from './responseDecoder.js';

/** Bodies up to this size go out in one buffer with their head or chunk framing; larger ones are written around (writev). */
const COPY_BELOW = 16 * 1024;
const LAST_CHUNK = '0\r\n\r\n';
const CRLF = '\r\n';
/** How long a kept connection stays idle when the backend announced no Keep-Alive timeout (undici's default). */
export const IDLE_KEEP_MS = 4000;
/** Keep-Alive: timeout=N is honoured with this margin, so a request never races the backend's own close. */
const IDLE_MARGIN_MS = 1000;

export interface HttpConnectionOwner {
  readonly address: BackendAddress;
  readonly connectTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly maxHeadBytes: number;
  /** Also send an RFC 7239 Forwarded header. */
  readonly forwarded: boolean;
  /** The Host a request without one gets (the backend's address). */
  readonly defaultHost: string;
  onConnectError(code: string): void;
  /** The connection completed a request and may take another. */
  onIdle(conn: HttpConnection): void;
  /** The connection is closed or being closed: never use it again. Called once, after its request's handler heard why. */
  onGone(conn: HttpConnection): void;
  /** The backend broke the protocol outside any request's life (the connection was dropped). */
  onProtocolError(what: string): void;
  /** The backend is letting this connection go (it said close, or closed its end): its place frees now. */
  onBackendLetGo(conn: HttpConnection): void;
  /** A probe connection completed its connect(): it is in the app's accept queue, or accepted already. */
  onProbeConnected(conn: HttpConnection): void;
}

/** One request on a connection; the handler's RequestControl. */
export class HttpExchange implements RequestControl {
  /** The sweep fails it when coarseNow - lastTick > read timeout. */
  lastTick = 0;
  bodyEnded: boolean;
  bodySent = 0;
  /** The request head, until it goes out with the first body bytes (or the body's end). */
  pendingHead: string | null = null;
  /** The first byte of the final response head came (its clock started). */
  headStarted = false;

  constructor(readonly connection: HttpConnection, readonly handler: ResponseHandler,
    /** -1: chunked. */
    readonly bodyLength: number,
    /** "METHOD /target", for log lines. */
    readonly label: string) {
    this.bodyEnded = bodyLength === 0;
  }

  writeBody(chunk: Buffer): boolean {
    return this.connection.writeBody(this, chunk);
  }

  endBody(): void {
    this.connection.endBody(this);
  }

  resume(): void {
    this.connection.resumeReading(this);
  }

  /** The client left: HTTP has no abort record, so the connection is closed (unless nothing of the request was sent). */
  abort(): void {
    this.connection.abort(this);
  }
}

export class HttpConnection implements ResponseSink {
  readonly socket: net.Socket;
  exchange: HttpExchange | null = null;
  connected = false;
  /** Reported to the owner as gone: no request may be put on it. */
  gone = false;
  /** Closed by this side (idle, timeout, abort, shutdown), not by the backend. */
  closedByUs = false;
  /** The backend half-closed it: nothing more will come. */
  ended = false;
  /** A probe: opened to see whether the backend accepts another connection; takes no request until `served`. */
  readonly probe: boolean;
  /** May take requests: not a probe, or a probe the backend accepted (or that was handed a freed slot). */
  served: boolean;
  /** The backend closed this served connection and a probe took its place already (no hand-over when it goes). */
  replaced = false;
  /** Closed because its client left (HTTP has no abort record). */
  aborted = false;
  /** The backend ended it: it said close (or answered HTTP/1.0) after a response, or closed its end. */
  closedByBackend = false;
  readonly openedAt = Date.now();
  /** Requests completed on it. */
  completed = 0;
  /** When it last became idle (coarse ms). */
  idleSince = coarseNow;
  /** How long it may stay idle: the backend's Keep-Alive timeout less a margin, or IDLE_KEEP_MS. */
  idleTimeoutMs = IDLE_KEEP_MS;
  lastError: TransportError | null = null;
  /** The request whose response completed last (named when bytes come after it). */
  lastLabel = '';
  private readonly decoder: ResponseDecoder;
  /** This request was sent with keep-alive (not Connection: close). */
  private keepRequested = true;
  /** The handler could not take more: reading waits for resume(); `stash` holds what was read. */
  paused = false;
  private stash: Buffer | null = null;
  private stashPos = 0;
  /** The socket closed while `stash` waited for the handler: the close is judged once the stash is decoded. */
  private closedWhilePaused = false;
  private drainWaiting = false;
  private connectTimer: NodeJS.Timeout | null;
  private fd = -1;

  constructor(private readonly owner: HttpConnectionOwner, probe: boolean) {
    this.probe = probe;
    this.served = !probe;
    this.decoder = new ResponseDecoder(this, owner.maxHeadBytes);
    const a = owner.address;
    const socket = 'path' in a ? net.connect({ path: a.path }) : net.connect({ host: a.host, port: a.port, noDelay: true });
    socket.on('connect', this.onConnect);
    socket.on('data', this.onData);
    socket.on('drain', this.onDrain);
    socket.on('error', this.onError);
    socket.on('end', this.onEnd);
    socket.on('close', this.onSocketClose);
    this.socket = socket;
    this.connectTimer = setTimeout(this.onConnectTimeout, owner.connectTimeoutMs);
  }

  /** Free for a request now. */
  get idle(): boolean {
    return this.exchange === null && this.served && !this.gone && !this.ended;
  }

  /**
   * Whether the backend has accepted this unix-socket connection: while it waits in the
   * listening socket's accept queue its other end has no inode (sock_diag), nor once the
   * app closed it. null: cannot tell (not connected yet, gone, or TCP).
   */
  acceptedByApp(): boolean | null {
    if (!this.connected || this.gone || this.fd < 0) return null;
    // Closed at the app's end (EOF seen), or closing here: once node closes the socket its
    // fd number may belong to another socket already, whose answer would be taken for ours.
    if (this.ended || this.socket.destroyed) return false;
    return peerInode(this.fd) !== null;
  }

  /**
   * Puts a request on this connection: the head at once without a body, else with the
   * first body bytes. Calls handler.onStart, or onError + onRelease when the request
   * cannot be written as HTTP/1.1.
   */
  begin(req: TransportRequest, handler: ResponseHandler, keep: boolean): void {
    const head = req.head;
    let text: string;
    try {
      text = encodeRequestHead(head, req.bodyLength, this.owner.forwarded, this.owner.defaultHost, !keep);
    } catch (err) {
      if (!(err instanceof RequestHeadError)) throw err;
      handler.onError(new TransportError('request', err.message, { notStarted: true, status: 400 }));
      handler.onRelease();
      if (this.completed === 0) this.drop();
      else this.owner.onIdle(this);
      return;
    }
    const ex = new HttpExchange(this, handler, req.bodyLength, `${head.method} ${head.target}`);
    const readTimeout = this.owner.readTimeoutMs;
    ex.lastTick = firstByteDeadline(req.receivedAt, coarseNow, readTimeout) - readTimeout;
    this.exchange = ex;
    this.keepRequested = keep;
    this.decoder.begin(head.method === 'HEAD');
    if (req.bodyLength === 0) this.socket.write(text, 'latin1');
    else ex.pendingHead = text;
    handler.onStart(ex);
  }

  writeBody(ex: HttpExchange, chunk: Buffer): boolean {
    if (ex !== this.exchange || ex.bodyEnded || chunk.length === 0) return true;
    ex.bodySent += chunk.length;
    ex.lastTick = coarseNow;
    const head = ex.pendingHead;
    ex.pendingHead = null;
    const socket = this.socket;
    const len = chunk.length;
    if (ex.bodyLength < 0) {
      const prefix = head === null ? `${len.toString(16)}\r\n` : `${head}${len.toString(16)}\r\n`;
      if (len <= COPY_BELOW) {
        const buf = Buffer.allocUnsafe(prefix.length + len + 2);
        buf.latin1Write(prefix, 0);
        chunk.copy(buf, prefix.length);
        buf[prefix.length + len] = 13;
        buf[prefix.length + len + 1] = 10;
        socket.write(buf);
      } else {
        socket.cork();
        socket.write(prefix, 'latin1');
        socket.write(chunk);
        socket.write(CRLF, 'latin1');
        socket.uncork();
      }
    } else {
      if (ex.bodySent >= ex.bodyLength) ex.bodyEnded = true;
      if (head === null) socket.write(chunk);
      else if (len <= COPY_BELOW) {
        const buf = Buffer.allocUnsafe(head.length + len);
        buf.latin1Write(head, 0);
        chunk.copy(buf, head.length);
        socket.write(buf);
      } else {
        socket.cork();
        socket.write(head, 'latin1');
        socket.write(chunk);
        socket.uncork();
      }
    }
    if (!socket.writableNeedDrain) return true;
    this.drainWaiting = true;
    return false;
  }

  endBody(ex: HttpExchange): void {
    if (ex !== this.exchange || ex.bodyEnded) return;
    ex.bodyEnded = true;
    ex.lastTick = coarseNow;
    const head = ex.pendingHead;
    ex.pendingHead = null;
    if (ex.bodyLength < 0) this.socket.write(head === null ? LAST_CHUNK : head + LAST_CHUNK, 'latin1');
    else if (head !== null) this.socket.write(head, 'latin1');
  }

  resumeReading(ex: HttpExchange): void {
    if (ex !== this.exchange || !this.paused) return;
    this.paused = false;
    ex.lastTick = coarseNow;
    const stash = this.stash;
    if (stash !== null) {
      this.stash = null;
      this.feed(stash, this.stashPos);
    }
    if (this.closedWhilePaused && !this.paused && this.exchange === ex) {
      // The backend closed while these bytes waited, and they did not end the response: cut.
      this.closedWhilePaused = false;
      this.exchange = null;
      ex.handler.onError(this.closeError());
      ex.handler.onRelease();
      return;
    }
    if (!this.paused && !this.gone) this.socket.resume();
  }

  abort(ex: HttpExchange): void {
    if (ex !== this.exchange) return;
    this.exchange = null;
    if (ex.pendingHead !== null && !this.gone) {
      // Nothing of it went out: the connection is as clean as before.
      ex.handler.onRelease();
      this.owner.onIdle(this);
      return;
    }
    this.aborted = true;
    const retired = this.retire();
    ex.handler.onRelease();
    if (retired) this.owner.onGone(this);
  }

  /** Closes the connection and tells the owner at once (the socket's close comes later). */
  drop(err?: TransportError): void {
    if (err && this.lastError === null) this.lastError = err;
    if (this.retire()) this.owner.onGone(this);
  }

  /**
   * Closes the socket and marks the connection gone without telling the owner yet, so
   * a handler told of its request's end first cannot be handed this connection, and
   * the owner's onGone (which may hand a freed slot to another) follows its release.
   * Returns false when it was gone already.
   */
  private retire(): boolean {
    if (this.gone) return false;
    this.gone = true;
    this.closedByUs = true;
    if (this.connectTimer) { clearTimeout(this.connectTimer); this.connectTimer = null; }
    this.socket.destroy();
    return true;
  }

  /** The request failed on this connection (bad response, timeout): the handler hears it, the connection is dropped. */
  fail(err: TransportError): void {
    if (this.lastError === null) this.lastError = err;
    const ex = this.exchange;
    this.exchange = null;
    const retired = this.retire();
    if (ex !== null) {
      ex.handler.onError(err);
      ex.handler.onRelease();
    }
    if (retired) this.owner.onGone(this);
  }

  /** The read timeout passed for the request on it. */
  timeout(limitMs: number): void {
    const ex = this.exchange;
    if (ex === null) return;
    const decoder = this.decoder;
    this.fail(new TransportError('timeout', !ex.bodyEnded
      ? `backend took no request body bytes for ${limitMs} ms (send timeout)`
      : decoder.finalStarted && !decoder.headSeen
        ? `backend did not finish its response head in ${limitMs} ms (read timeout: a head is progress only once whole, the client gets nothing of it before)`
        : decoder.headSeen
          ? `backend sent no body bytes for ${limitMs} ms (read timeout; chunk framing, extensions and trailers are not progress)`
          : `backend sent nothing for ${limitMs} ms (read timeout)`,
    { code: 'ETIMEDOUT', notStarted: !decoder.anyByte && ex.bodySent === 0 }));
  }

  // --- the response ---

  /** Decodes what was read for the current request; bytes with no request to answer end the connection. */
  private feed(buf: Buffer, pos: number): void {
    const ex = this.exchange;
    if (ex === null) {
      if (pos < buf.length) this.unsolicited(buf, pos);
      return;
    }
    const decoder = this.decoder;
    const reached = decoder.push(buf, pos);
    if (this.exchange !== ex) return; // the handler gave the response up (abort) meanwhile
    if (decoder.complete) this.complete(ex, reached < buf.length);
    else if (decoder.failed) this.fail(new TransportError(decoder.errorKind, decoder.error));
    else if (reached < buf.length || this.paused) this.pause(buf, reached);
  }

  // ResponseSink
  onResponseHead(head: ResponseHead): boolean {
    const ex = this.exchange!;
    const announced = this.decoder.keepAliveTimeout;
    if (announced >= 0) this.idleTimeoutMs = announced <= 1 ? announced * 500 : announced * 1000 - IDLE_MARGIN_MS;
    ex.handler.onHead(head);
    return this.exchange === ex;
  }

  onResponseBody(chunk: Buffer): boolean {
    const ex = this.exchange!;
    const more = ex.handler.onBody(chunk);
    if (this.exchange !== ex) return false;
    if (!more) this.paused = true;
    return more;
  }

  private pause(buf: Buffer, pos: number): void {
    this.paused = true;
    if (pos < buf.length) {
      this.stash = buf;
      this.stashPos = pos;
    }
    this.socket.pause();
  }

  /**
   * The response is complete. The connection is kept when both sides said so, the
   * request body went out whole, and nothing followed the response (`extra`: bytes the
   * framing does not account for — a smuggled response, a body longer than declared).
   */
  private complete(ex: HttpExchange, extra: boolean): void {
    const keepAlive = this.decoder.keepAlive;
    const reusable = keepAlive && this.keepRequested && ex.bodyEnded && !extra && !this.ended && !this.gone;
    this.exchange = null;
    this.completed++;
    this.lastLabel = ex.label;
    this.paused = false;
    this.stash = null;
    let retired = false;
    if (!keepAlive && !this.closedByBackend) {
      this.closedByBackend = true;
      this.owner.onBackendLetGo(this);
    }
    if (!reusable) {
      if (extra && keepAlive) {
        this.owner.onProtocolError(`sent bytes after the complete response to "${ex.label}" (not HTTP the front asked for: a body longer than its framing, or a second response); that connection was dropped`);
      }
      retired = this.retire();
    } else {
      this.idleSince = coarseNow;
    }
    ex.handler.onEnd();
    ex.handler.onRelease();
    if (retired) this.owner.onGone(this);
    else if (reusable && !this.gone && this.exchange === null) this.owner.onIdle(this);
  }

  /** Bytes on a connection with no request: the backend sent what nobody asked for. */
  private unsolicited(buf: Buffer, pos: number): void {
    if (this.gone) return;
    // A 408 on an idle connection is how some servers say they close it (RFC 9110 §15.5.9): no fault.
    if (!(buf.length - pos >= 12 && buf.latin1Slice(pos, pos + 12).endsWith(' 408') && buf.latin1Slice(pos, pos + 7) === 'HTTP/1.')) {
      this.owner.onProtocolError(`sent ${buf.length - pos} bytes on an idle connection${this.lastLabel ? ` after the response to "${this.lastLabel}"` : ''}; that connection was dropped`);
    }
    this.drop();
  }

  // --- socket events (bound once per connection) ---

  private readonly onConnect = (): void => {
    this.connected = true;
    if (this.connectTimer) { clearTimeout(this.connectTimer); this.connectTimer = null; }
    const handle = (this.socket as unknown as { _handle?: { fd?: number } })._handle;
    if ('path' in this.owner.address && handle && typeof handle.fd === 'number') this.fd = handle.fd;
    if (this.probe && !this.served) this.owner.onProbeConnected(this);
  };

  private readonly onData = (chunk: Buffer): void => {
    const ex = this.exchange;
    const decoder = this.decoder;
    const headBefore = decoder.headSeen;
    const bodyBefore = decoder.bodyBytes;
    // The next request this response's end lets in is written at once; its client's bytes after it.
    if (!beginBackendTurn()) this.feed(chunk, 0);
    else {
      try {
        this.feed(chunk, 0);
      } finally {
        endBackendTurn();
      }
    }
    // Progress for the read timeout is what the client gets: a backend trickling
    // `102 Processing` would otherwise hold a client forever with nothing. Nor is a head
    // progress until it ends: it must be whole within the read timeout of its first
    // byte, else a head trickled a line per read timeout holds the client and the slot
    // for max-head-bytes times that. After the head, body bytes only: chunk extensions
    // and trailers (dropped here) trickled a byte at a time held them for hours.
    if (ex === null || this.exchange !== ex) return;
    if (decoder.headSeen) {
      if (!headBefore || decoder.bodyBytes !== bodyBefore) ex.lastTick = coarseNow;
    } else if (!ex.headStarted && decoder.finalStarted) {
      ex.headStarted = true;
      ex.lastTick = coarseNow;
    }
  };

  private readonly onDrain = (): void => {
    if (!this.drainWaiting) return;
    this.drainWaiting = false;
    const ex = this.exchange;
    if (ex !== null) ex.handler.onBodyDrain();
  };

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    if (!this.connected && !this.closedByUs) {
      const code = err.code ?? 'EIO';
      this.owner.onConnectError(code);
      this.lastError = new TransportError('connect', connectErrorMessage(this.owner.address, err), { code, notStarted: true, cause: err });
      return;
    }
    if (this.lastError === null) this.lastError = new TransportError('closed', `connection error: ${err.message}`, { code: err.code, cause: err });
  };

  private readonly onConnectTimeout = (): void => {
    this.connectTimer = null;
    if (this.connected || this.gone) return;
    this.owner.onConnectError('ETIMEDOUT');
    this.lastError = new TransportError('connect', `connect() to ${describeAddress(this.owner.address)} timed out after ${this.owner.connectTimeoutMs} ms`,
      { code: 'ETIMEDOUT', notStarted: true });
    this.socket.destroy();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    if (!this.closedByBackend && !this.gone) {
      this.closedByBackend = true;
      this.owner.onBackendLetGo(this);
    }
    const ex = this.exchange;
    // A close-delimited body ends here; anything else ended early (reported on close).
    if (ex !== null && this.lastError === null && this.decoder.eof()) this.complete(ex, false);
  };

  private readonly onSocketClose = (): void => {
    if (this.connectTimer) { clearTimeout(this.connectTimer); this.connectTimer = null; }
    const ex = this.exchange;
    const wasGone = this.gone;
    this.gone = true;
    if (ex !== null && this.paused && this.stash !== null && this.lastError === null) {
      // The backend closed after bytes read but held for a slow client (the socket reports
      // its end even while paused): the response may be whole in them, as when an app closes
      // right after it. They are decoded on resume and the close judged then; the backend's
      // place is free now.
      this.closedWhilePaused = true;
      if (!wasGone) this.owner.onGone(this);
      return;
    }
    this.exchange = null;
    if (ex === null) {
      if (!wasGone) this.owner.onGone(this);
      return;
    }
    ex.handler.onError(this.closeError());
    ex.handler.onRelease();
    if (!wasGone) this.owner.onGone(this);
  };

  /** Why the request in flight ends with the connection's close. */
  private closeError(): TransportError {
    const cause = this.lastError;
    const decoder = this.decoder;
    let err: TransportError;
    if (cause !== null && cause.kind === 'connect') {
      err = new TransportError('connect', cause.message, { code: cause.code, notStarted: true, cause });
    } else if (cause !== null && (cause.kind !== 'closed' || this.closedByUs)) {
      // Why this side closed it (a timeout, a bad response, the backend going away).
      err = new TransportError(cause.kind, cause.message, { code: cause.code, cause, notStarted: cause.kind === 'closed' && !decoder.anyByte });
    } else if (decoder.headSeen && decoder.lengthFramed) {
      err = new TransportError('length', `backend closed the connection after ${decoder.lengthReceived} of its declared ${decoder.declaredLength} bytes`, { code: cause?.code });
    } else if (decoder.headSeen) {
      err = new TransportError('closed', 'backend closed the connection in the middle of the response', { code: cause?.code });
    } else if (decoder.anyByte) {
      err = new TransportError('closed', 'backend closed the connection inside the response head', { code: cause?.code });
    } else {
      // Nothing came back: it did not start this request (a kept connection it closed as we
      // wrote, a process that went away); whether to send it again is the proxy's call.
      err = new TransportError('closed', `backend closed the connection before answering${cause?.code ? ` (${cause.code})` : ''}`,
        { code: cause?.code, notStarted: true });
      err.freshConnection = this.completed === 0;
    }
    return err;
  }
}
