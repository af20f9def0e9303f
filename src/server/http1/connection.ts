// One client connection: reads and parses requests, hands out one exchange at a
// time (answers go in request order), delivers request bodies with backpressure,
// keeps or closes the connection after each response, and answers protocol errors
// itself. Every per-connection listener is made once here; nothing per request.
import type net from 'node:net';
import { holdClientWrite } from '../../backendTurn.js';
import { ChunkedDecoder } from './chunked.js';
import { BodyError, Http1Exchange, Phase } from './exchange.js';
import { HeadParser, NEED_MORE, REFUSED } from './head.js';
import type { Http1Handler, Http1Limits } from './server.js';
import { CONTINUE_100, refusalResponse } from './wire.js';

/** What the connections of one server share (the server holds it). */
export interface ServerState {
  readonly limits: Http1Limits;
  readonly handler: Http1Handler;
  /** stopAccepting() was called: every response closes its connection. */
  stopping: boolean;
  activeExchanges: number;
  readonly connections: Set<Http1Connection>;
  /** An exchange ended (normally or not). */
  exchangeEnded(): void;
  connectionClosed(conn: Http1Connection): void;
}

/** Bytes read ahead of the request being answered (pipelined requests) before reading stops. */
const READ_AHEAD_BYTES = 64 * 1024;
/** A request body left unread by a response is read and dropped up to this many bytes to keep the connection; more closes it. */
const DISCARD_MAX_BYTES = 1024 * 1024;
/** After a refusal (or a last response) the connection is read and dropped this long so the client sees the answer, not a reset. */
const LINGER_MS = 2000;
/** At a stop, a connection accepted but without a request yet gets this long to send one. */
const FRESH_GRACE_MS = 1000;
/** Up to this body size a head and body are copied into one buffer; above, written together with writev (cork). */
const COPY_MAX_BYTES = 16 * 1024;
const LF = 10;

const enum Body { None, Length, Chunked }
const enum Timer { None, Head, Idle, Body, Linger }

export class Http1Connection {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /** A TLS socket (the TLS listener hands its HTTP/1.1 connections to this layer). */
  readonly encrypted: boolean;
  /** Requests handed out on this connection. */
  requests = 0;

  /** @internal */ readonly socket: net.Socket;
  /** @internal */ destroyed = false;
  /** @internal Deadline (Date.now() ms) of the running timer; 0 = none. */
  deadline = 0;
  /** @internal Deadline of a write the client does not take; 0 = none. */
  sendDeadline = 0;

  private readonly state: ServerState;
  private readonly parser: HeadParser;
  private readonly decoder: ChunkedDecoder;
  /** Unparsed bytes from rpos on; null when none. */
  private rbuf: Buffer | null = null;
  private rpos = 0;
  /** Bytes of an incomplete head already parsed (the head is parsed again only when a line has ended since). */
  private scanned = 0;
  /** The request whose response has not ended; the next one waits. */
  private exchange: Http1Exchange | null = null;
  /** The body of the last request, still to read (by its sink, or to drop once its response ended). */
  private body = Body.None;
  private bodyLeft = 0;
  private bodyTotal = 0;
  private bodyPaused = false;
  private discarded = 0;
  /** No further request is read: a refusal or a last response went out. */
  private closing = false;
  /** A request body failed (too large, malformed chunks, timeout): the connection closes after its answer. */
  private bodyBroken = false;
  private inProcess = false;
  private timer = Timer.None;
  /** Up to this many bytes an incomplete head without a new line end is not parsed again. */
  private readonly skipLimit: number;

  /**
   * The read being handled is a view of the buffer all connections share (see Http1Server,
   * `sharedReads`): bytes kept past onShared() — unparsed rest, body pieces handed on — are copied first.
   */
  private inShared = false;

  constructor(state: ServerState, socket: net.Socket, sharedReads = false) {
    this.state = state;
    this.socket = socket;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    this.localAddress = socket.localAddress ?? '';
    this.localPort = socket.localPort ?? 0;
    this.encrypted = (socket as { encrypted?: boolean }).encrypted === true;
    const limits = state.limits;
    this.parser = new HeadParser(limits);
    this.decoder = new ChunkedDecoder(limits.maxHeaderBytes, limits.maxHeaderCount);
    this.skipLimit = Math.min(limits.maxUriBytes, limits.maxHeaderBytes);
    if (sharedReads) socket.resume(); // flowing, so that the end of input is still emitted as 'end'
    else socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('drain', this.onDrain);
    socket.on('error', onSocketError);
    socket.on('close', this.onClose);
    // From accept to the end of the first head (a connection that never sends is closed silently).
    this.setTimer(Timer.Head);
  }

  // ---- reading

  /** @internal A read into the shared buffer: `n` bytes at its start, valid only during this call. */
  onShared(buf: Buffer, n: number): void {
    this.inShared = true;
    try {
      this.onData(buf.subarray(0, n));
    } finally {
      this.inShared = false;
    }
    // What is left unparsed (a partial head, pipelined requests, a paused body) must survive the next read.
    const rest = this.rbuf;
    if (rest !== null && rest.buffer === buf.buffer) {
      this.rbuf = Buffer.from(rest.subarray(this.rpos));
      this.rpos = 0;
    }
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.closing) {
      // Lingering: drop what the client still sends, within a bound.
      this.discarded += chunk.length;
      if (this.discarded > DISCARD_MAX_BYTES) this.kill();
      return;
    }
    if (this.rbuf === null) {
      this.rbuf = chunk;
      this.rpos = 0;
    } else {
      this.rbuf = Buffer.concat([this.rbuf.subarray(this.rpos), chunk]);
      this.rpos = 0;
    }
    if (this.timer === Timer.Idle) this.setTimer(Timer.Head);
    else if (this.timer === Timer.Body) this.setTimer(Timer.Body);
    this.process();
  };

  /** Parses and delivers what is buffered, as far as the current exchange allows. Re-entrant calls return at once. */
  private process(): void {
    if (this.inProcess || this.destroyed) return;
    this.inProcess = true;
    try {
      while (!this.destroyed && !this.closing) {
        const buf = this.rbuf;
        if (buf === null) break;
        if (this.body !== Body.None) {
          const ex = this.exchange;
          if (ex !== null && (ex.sink === null || this.bodyPaused)) break;
          this.consumeBody(buf, ex);
        } else if (this.exchange !== null) break;
        // The client has not taken the last response yet: the next one waits for 'drain'
        // (as nginx does), else a client that pipelines and never reads grows our write buffer.
        else if (this.socket.writableNeedDrain) break;
        else if (!this.parseHead(buf)) break;
      }
    } catch (err) {
      // A bug of the layer: never a crash; the connection goes, the caller hears of it.
      this.internalError(err);
    } finally {
      this.inProcess = false;
    }
    this.updateReading();
  }

  /** true when a request was handed out (parse on), false when waiting for bytes or refused. */
  private parseHead(buf: Buffer): boolean {
    const start = this.rpos;
    // Parse again only when a line has ended since (or the limits may have been crossed).
    if (this.scanned > 0 && buf.length - start <= this.skipLimit && buf.indexOf(LF, start + this.scanned) === -1) {
      this.scanned = buf.length - start;
      return false;
    }
    const end = this.parser.parse(buf, start);
    if (end === NEED_MORE) {
      this.scanned = buf.length - start;
      return false;
    }
    if (end === REFUSED) {
      this.refuse(this.parser.errorStatus, this.parser.errorReason);
      return false;
    }
    this.scanned = 0;
    this.advance(buf, end);
    this.dispatch();
    return true;
  }

  private dispatch(): void {
    const head = this.parser;
    const ex = new Http1Exchange(this, head);
    this.requests++;
    this.exchange = ex;
    this.state.activeExchanges++;
    if (head.chunked) {
      this.body = Body.Chunked;
      this.decoder.reset();
    } else if (head.contentLength > 0) {
      this.body = Body.Length;
      this.bodyLeft = head.contentLength;
    } else this.body = Body.None;
    this.bodyTotal = 0;
    this.bodyPaused = false;
    this.setTimer(Timer.None);
    try {
      this.state.handler.onRequest(ex);
    } catch (err) {
      this.handlerFailed(ex, err);
    }
  }

  /** One step of body reading: one piece delivered (or dropped), or one run of chunked framing. */
  private consumeBody(buf: Buffer, ex: Http1Exchange | null): void {
    const pos = this.rpos;
    const end = buf.length;
    if (this.body === Body.Length) {
      const n = Math.min(this.bodyLeft, end - pos);
      this.bodyLeft -= n;
      this.advance(buf, pos + n);
      if (this.bodyLeft === 0) this.body = Body.None;
      if (ex === null) {
        this.discarded += n;
        if (this.body === Body.None) this.bodyDropped();
        return;
      }
      this.deliver(ex, pos === 0 && n === end ? buf : buf.subarray(pos, pos + n));
      if (this.body === Body.None && ex.sink !== null) {
        if (this.exchange === ex) this.bodyEnded(ex);
        else this.tellBodyEnd(ex); // the response ended inside onBodyData; the body is whole all the same
      }
      return;
    }
    const dec = this.decoder;
    if (dec.inData) {
      const n = Math.min(dec.remaining, end - pos);
      dec.consumed(n);
      this.advance(buf, pos + n);
      this.bodyTotal += n;
      if (ex === null) {
        this.discarded += n;
        if (this.discarded > DISCARD_MAX_BYTES) this.closeNow();
        return;
      }
      // (Over maxBodyBytes was refused at the chunk's size line.)
      this.deliver(ex, pos === 0 && n === end ? buf : buf.subarray(pos, pos + n));
      return;
    }
    const next = dec.parse(buf, pos, end);
    this.advance(buf, next);
    if (dec.failed) {
      if (ex === null) return this.closeNow();
      return this.bodyFailed(ex, 400, `malformed chunked body: ${dec.error}`);
    }
    if (dec.inData && ex !== null) {
      // Refused at the size line (as nginx does), not after waiting for data that would cross the limit anyway.
      const max = this.state.limits.maxBodyBytes;
      if (max > 0 && this.bodyTotal + dec.remaining > max) return this.bodyFailed(ex, 413, `request body larger than ${max} bytes`);
    }
    if (dec.done) {
      this.body = Body.None;
      if (ex === null) this.bodyDropped();
      else this.bodyEnded(ex);
    }
  }

  private advance(buf: Buffer, pos: number): void {
    if (pos >= buf.length) {
      this.rbuf = null;
      this.rpos = 0;
    } else this.rpos = pos;
  }

  private deliver(ex: Http1Exchange, chunk: Buffer): void {
    let more: boolean;
    if (this.inShared) chunk = Buffer.from(chunk); // the sink may keep it (a spool, a socket's write queue)
    try {
      more = ex.sink!.onBodyData(chunk);
    } catch (err) {
      return this.handlerFailed(ex, err);
    }
    if (more === false && this.exchange === ex && this.body !== Body.None) this.pause();
  }

  private bodyEnded(ex: Http1Exchange): void {
    this.setTimer(Timer.None);
    this.tellBodyEnd(ex);
  }

  private tellBodyEnd(ex: Http1Exchange): void {
    try {
      ex.sink!.onBodyEnd();
    } catch (err) {
      this.handlerFailed(ex, err);
    }
  }

  /** The unread body of an answered request is gone: on to the next request. */
  private bodyDropped(): void {
    this.betweenRequests();
  }

  /**
   * No request in progress: the head timer if bytes of the next one are here, else keep-alive;
   * none while our last response waits for a drain (the send timeout runs then: a client slow
   * to read is not idle, and its buffered answer must not be dropped by the keep-alive close).
   */
  private betweenRequests(): void {
    if (this.socket.writableNeedDrain) this.setTimer(Timer.None);
    else this.setTimer(this.rbuf !== null ? Timer.Head : Timer.Idle);
  }

  /** The body cannot complete: tell the sink, answer `status` if no response began, else cut. */
  private bodyFailed(ex: Http1Exchange, status: number, reason: string): void {
    this.body = Body.None;
    // Where the body ends is unknown now: no further request is read from this connection,
    // whoever answers this one (the sink, or the layer below with `status`).
    this.bodyBroken = true;
    const sink = ex.sink;
    if (sink !== null) {
      try {
        sink.onBodyError(new BodyError(status, reason));
      } catch (err) {
        this.reportHandlerError(err, ex);
      }
    }
    if (ex.phase === Phase.Finished || this.exchange !== ex) return;
    const untouched = ex.phase !== Phase.HeadWritten;
    this.exchangeGone(ex);
    if (untouched) this.refuse(status, reason);
    else this.kill();
  }

  // ---- body control (from the exchange)

  /** @internal */
  startBody(ex: Http1Exchange): void {
    if (this.exchange !== ex) return;
    if (this.body === Body.None) return this.bodyEnded(ex);
    if (ex.expectContinue && !ex.continueSent && (ex.phase === Phase.New || ex.phase === Phase.HeadPending)) {
      ex.continueSent = true;
      this.send(CONTINUE_100, null, null);
    }
    this.bodyPaused = false;
    this.setTimer(Timer.Body);
    this.process();
  }

  /** @internal */
  pauseBody(ex: Http1Exchange): void {
    if (this.exchange !== ex || this.body === Body.None || this.bodyPaused) return;
    this.pause();
    this.updateReading();
  }

  /** @internal */
  resumeBody(ex: Http1Exchange): void {
    if (this.exchange !== ex || !this.bodyPaused) return;
    this.bodyPaused = false;
    if (this.body !== Body.None && ex.sink !== null) this.setTimer(Timer.Body);
    this.process();
  }

  private pause(): void {
    this.bodyPaused = true;
    // The client is not slow when we do not read: no body timeout while paused.
    if (this.timer === Timer.Body) this.setTimer(Timer.None);
  }

  /** Reads from the socket only while someone will take the bytes (within READ_AHEAD_BYTES). */
  private updateReading(): void {
    if (this.destroyed) return;
    let want = true;
    if (!this.closing) {
      const ex = this.exchange;
      if (ex !== null) {
        const buffered = this.rbuf === null ? 0 : this.rbuf.length - this.rpos;
        want = this.body !== Body.None && ex.sink !== null ? !this.bodyPaused : buffered < READ_AHEAD_BYTES;
      } else if (this.body === Body.None) {
        // No next request is started while the last response waits for a drain (process()): nothing to read for.
        want = !this.socket.writableNeedDrain;
      }
    }
    const socket = this.socket;
    if (want) {
      if (socket.isPaused()) socket.resume();
    } else if (!socket.isPaused()) socket.pause();
  }

  // ---- writing (from the exchange)

  /**
   * Writes head + body + tail in one socket write: one buffer when the body is small,
   * one writev (cork) otherwise. Returns the socket's backpressure verdict.
   * @internal
   */
  send(head: string | null, body: Buffer | null, tail: string | null): boolean {
    const socket = this.socket;
    if (this.destroyed || !socket.writable) return true;
    holdClientWrite(socket);
    let ok: boolean;
    const bodyLength = body === null ? 0 : body.length;
    if (bodyLength === 0) {
      const text = head === null ? tail : tail === null ? head : head + tail;
      if (text === null || text.length === 0) return true;
      ok = socket.write(text, 'latin1');
    } else if (head === null && tail === null) {
      ok = socket.write(body!);
    } else if (bodyLength <= COPY_MAX_BYTES) {
      const headLength = head === null ? 0 : head.length;
      const tailLength = tail === null ? 0 : tail.length;
      const out = Buffer.allocUnsafe(headLength + bodyLength + tailLength);
      if (head !== null) out.latin1Write(head, 0, headLength);
      body!.copy(out, headLength);
      if (tail !== null) out.latin1Write(tail, headLength + bodyLength, tailLength);
      ok = socket.write(out);
    } else {
      socket.cork();
      if (head !== null) socket.write(head, 'latin1');
      ok = socket.write(body!);
      if (tail !== null) ok = socket.write(tail, 'latin1');
      socket.uncork();
    }
    if (!ok && this.sendDeadline === 0) this.sendDeadline = Date.now() + this.state.limits.sendTimeoutMs;
    return ok;
  }

  /**
   * Whether the response being headed must close the connection: the server is
   * stopping, the client was told nothing after Expect: 100-continue (so it may or
   * may not send the body), or a Content-Length body too large to drop is still unread.
   * @internal
   */
  mustCloseAfter(ex: Http1Exchange): boolean {
    if (this.state.stopping || this.closing || this.bodyBroken) return true;
    if (this.exchange !== ex || this.body === Body.None) return false;
    if (ex.expectContinue && !ex.continueSent) return true;
    // A chunked rest is dropped up to DISCARD_MAX_BYTES after the response, then the connection closes.
    return this.body === Body.Length && this.bodyLeft > DISCARD_MAX_BYTES;
  }

  /** The response ended well: keep the connection for the next request, or close it. @internal */
  responseEnded(ex: Http1Exchange): void {
    if (this.exchange !== ex) return;
    this.exchange = null;
    this.state.exchangeEnded();
    if (this.destroyed) return;
    if (ex.closeAfter || this.state.stopping || this.bodyBroken) return this.closeNow();
    if (this.body !== Body.None) {
      // Answered before its body was read: drop the rest (bounded) to keep the connection.
      if (this.body === Body.Length && this.bodyLeft > DISCARD_MAX_BYTES) return this.closeNow();
      if (ex.expectContinue && !ex.continueSent) return this.closeNow();
      this.discarded = 0;
      this.bodyPaused = false;
      this.setTimer(Timer.Body);
    } else this.betweenRequests();
    this.process();
  }

  /** The caller cut its response. @internal */
  cut(ex: Http1Exchange): void {
    if (this.exchange !== ex) return;
    this.exchangeGone(ex);
    // Where the framing shows the response is incomplete (a Content-Length not reached, no
    // last chunk), an orderly close lets the client read what came and see the cut; a
    // close-delimited body would look complete, so it gets a reset.
    if (ex.cutShowsInFraming) this.closeNow();
    else this.kill();
  }

  /** The caller used the exchange wrongly: as if its handler threw. @internal */
  misuse(ex: Http1Exchange, message: string): void {
    this.handlerFailed(ex, new Error(`Http1Exchange: ${message}`));
  }

  /** The handler threw (or misused the exchange): 500 + close if nothing was written, else cut. */
  private handlerFailed(ex: Http1Exchange, err: unknown): void {
    if (ex.phase !== Phase.Finished && this.exchange === ex) {
      const untouched = ex.phase !== Phase.HeadWritten;
      if (ex.sink !== null && this.body !== Body.None) {
        this.body = Body.None;
        try {
          ex.sink.onBodyError(new Error('the request handler failed'));
        } catch { /* already failing */ }
      }
      this.exchangeGone(ex);
      if (untouched) this.refuse(500, 'the request handler failed');
      else this.kill();
    }
    this.reportHandlerError(err, ex);
  }

  private reportHandlerError(err: unknown, ex: Http1Exchange): void {
    const onError = this.state.handler.onHandlerError;
    if (onError === undefined) return;
    try {
      onError.call(this.state.handler, err, ex);
    } catch { /* a failing error reporter must not take the server down */ }
  }

  private internalError(err: unknown): void {
    const ex = this.exchange;
    if (ex !== null && ex.phase !== Phase.Finished) {
      this.exchangeGone(ex);
      this.reportHandlerError(err, ex);
    }
    this.kill();
  }

  /** The current exchange ends without a normal response end. */
  private exchangeGone(ex: Http1Exchange): void {
    ex.phase = Phase.Finished;
    if (this.exchange === ex) {
      this.exchange = null;
      this.state.exchangeEnded();
    }
  }

  // ---- ending the connection

  /** The layer answers by itself (400/408/413/414/431/500/501/505...), then closes. */
  private refuse(status: number, reason: string): void {
    if (this.destroyed) return;
    const onRefused = this.state.handler.onRefused;
    if (onRefused !== undefined) {
      try {
        onRefused.call(this.state.handler, status, reason, this);
      } catch { /* logging must not break the answer */ }
    }
    if (!this.socket.writable) return this.kill();
    this.closing = true;
    this.body = Body.None;
    this.rbuf = null;
    this.discarded = 0;
    this.socket.end(refusalResponse(status, reason));
    this.setTimer(Timer.Linger);
    this.updateReading();
  }

  /** Close after what was written: FIN, then linger reading until the client closes. */
  private closeNow(): void {
    if (this.destroyed) return;
    this.closing = true;
    this.body = Body.None;
    this.rbuf = null;
    this.discarded = 0;
    this.socket.end();
    this.setTimer(Timer.Linger);
    this.updateReading();
  }

  /** Cut now, with a TCP reset where the socket is TCP. */
  private kill(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    try {
      this.socket.resetAndDestroy();
    } catch {
      this.socket.destroy();
    }
  }

  /**
   * Close an idle connection silently (stopAccepting). One that never sent a request
   * may have it on the way: it gets FRESH_GRACE_MS for it, then the head timer closes it.
   * @internal
   */
  closeIfIdle(): boolean {
    if (this.exchange !== null || this.rbuf !== null || this.body !== Body.None || this.closing) return false;
    if (this.requests === 0) {
      const deadline = Date.now() + FRESH_GRACE_MS;
      if (this.deadline === 0 || deadline < this.deadline) this.deadline = deadline;
      return false;
    }
    this.destroyed = true;
    this.socket.destroy();
    return true;
  }

  /** @internal */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.socket.destroy();
  }

  private readonly onEnd = (): void => {
    // The client will send nothing more: a request still being answered is abandoned
    // (as node:http and nginx treat it); otherwise node ends our side after what was written.
    if (this.exchange !== null) this.destroy();
  };

  private readonly onDrain = (): void => {
    this.sendDeadline = 0;
    const ex = this.exchange;
    if (ex === null) {
      // The client took the last response: the next pipelined request may start (process() waited for this).
      if (this.destroyed || this.closing) return;
      if (this.body === Body.None) this.betweenRequests();
      this.process();
      return;
    }
    if (ex.events === null) return;
    try {
      ex.events.onClientDrain();
    } catch (err) {
      this.handlerFailed(ex, err);
    }
  };

  private readonly onClose = (): void => {
    this.destroyed = true;
    this.deadline = 0;
    this.sendDeadline = 0;
    this.state.connectionClosed(this);
    const ex = this.exchange;
    if (ex === null || ex.phase === Phase.Finished) return;
    const bodyPending = this.body !== Body.None;
    this.body = Body.None;
    this.exchangeGone(ex);
    if (bodyPending && ex.sink !== null) {
      try {
        ex.sink.onBodyError(new Error('client closed the connection'));
      } catch (err) {
        this.reportHandlerError(err, ex);
      }
    }
    if (ex.events !== null) {
      try {
        ex.events.onClientClose();
      } catch (err) {
        this.reportHandlerError(err, ex);
      }
    }
  };

  // ---- timers (checked by the server's coarse sweep)

  private setTimer(kind: Timer): void {
    this.timer = kind;
    if (kind === Timer.None) {
      this.deadline = 0;
      return;
    }
    const limits = this.state.limits;
    const ms = kind === Timer.Head ? limits.headersTimeoutMs
      : kind === Timer.Idle ? limits.keepAliveTimeoutMs
        : kind === Timer.Body ? limits.bodyTimeoutMs
          : LINGER_MS;
    this.deadline = Date.now() + ms;
  }

  /** @internal Called by the sweep with the current time. */
  checkTimers(now: number): void {
    if (this.sendDeadline !== 0 && now >= this.sendDeadline) {
      // The client has not taken our bytes for sendTimeoutMs.
      this.sendDeadline = 0;
      return this.kill();
    }
    if (this.deadline === 0 || now < this.deadline) return;
    const kind = this.timer;
    this.setTimer(Timer.None);
    switch (kind) {
      case Timer.Head:
        if (this.rbuf !== null) this.refuse(408, `request head not complete within ${this.state.limits.headersTimeoutMs} ms`);
        else this.destroy();
        break;
      case Timer.Idle:
        this.destroy();
        break;
      case Timer.Body: {
        const ex = this.exchange;
        if (ex === null) this.destroy();
        else if (this.body !== Body.None) this.bodyFailed(ex, 408, `no request body bytes for ${this.state.limits.bodyTimeoutMs} ms`);
        break;
      }
      case Timer.Linger:
        this.destroy();
        break;
    }
  }
}

function onSocketError(): void {
  // ECONNRESET, EPIPE...: 'close' follows and says what the exchange needs to know.
}
