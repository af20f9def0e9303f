// One FastCGI connection to an application: request ids, record demultiplexing,
// STDIN backpressure, GET_VALUES. It knows nothing of pools or processes.
import type { Socket } from 'node:net';
import { CgiHeadError, CgiHeadParser, type CgiHead } from './cgiResponse.js';
import { FcgiError } from './errors.js';
import { decodePairs, encodePairs, encodeRequestHead } from './nameValue.js';
import { FCGI_KEEP_CONN, ProtocolStatus, RecordType, Role, protocolStatusName, recordTypeName } from './protocol.js';
import { encodeRecord, encodeStream, RecordDecoder, type RecordSink } from './records.js';

/** What a caller hears about one request (the shape of undici's dispatch handlers). */
export interface FcgiHandler {
  onHead(head: CgiHead): void;
  /** Return false to pause reading from the backend until `request.resume()`. */
  onBody(chunk: Buffer): boolean;
  onEnd(appStatus: number): void;
  /** At most one of onEnd / onError is called. */
  onError(err: FcgiError): void;
  onStderr(chunk: Buffer): void;
  /** The request no longer occupies the application (END_REQUEST or the connection is gone). Always called once, last. */
  onRelease(): void;
}

export interface ConnectionOptions {
  maxHeadBytes: number;
  keepConn: boolean;
  /** Called when the connection is closed or destroyed, for the owner's bookkeeping. */
  onClose?(conn: FcgiConnection, hadRequests: boolean): void;
  /** Called when a request leaves the connection (owner may hand it a new one). */
  onIdle?(conn: FcgiConnection): void;
}

const enum State { Active, Finished, Released }

/** How long a connection waits after its first request before it is reused (see settle). */
const FIRST_SETTLE_MS = 10;

export class FcgiRequest {
  lastTick = 0;
  state = State.Active;
  headParser: CgiHeadParser | null;
  headSeen = false;
  stdinEnded: boolean;
  bodyBytesSent = 0;
  /** The response was given up (client abort, timeout): data is discarded, END_REQUEST awaited. */
  abandoned = false;
  anyResponseByte = false;

  constructor(readonly connection: FcgiConnection, readonly id: number, readonly handler: FcgiHandler,
    hasBody: boolean, maxHeadBytes: number) {
    this.headParser = new CgiHeadParser(maxHeadBytes);
    this.stdinEnded = !hasBody;
  }

  /** Streams request body bytes as STDIN records; false means wait for `onDrain`. */
  writeStdin(chunk: Buffer): boolean {
    if (this.stdinEnded || this.state !== State.Active || chunk.length === 0) return true;
    this.bodyBytesSent += chunk.length;
    return this.connection.write(encodeStream(RecordType.Stdin, this.id, chunk));
  }

  endStdin(): void {
    if (this.stdinEnded) return;
    this.stdinEnded = true;
    if (this.state === State.Active) this.connection.write(encodeRecord(RecordType.Stdin, this.id));
  }

  /** Calls `fn` once the connection's write buffer has drained. */
  onDrain(fn: () => void): void {
    this.connection.waitDrain(fn);
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
    this.connection.write(encodeRecord(RecordType.AbortRequest, this.id));
    this.connection.resumeReading();
  }
}

export class FcgiConnection implements RecordSink {
  private readonly decoder = new RecordDecoder(this);
  /** Index = request id. Ids are reused after END_REQUEST, lowest first. */
  private readonly requests: Array<FcgiRequest | undefined> = [undefined];
  private drainWaiters: Array<() => void> = [];
  private valuesWaiter: ((pairs: Array<[string, string]> | null) => void) | null = null;
  inflight = 0;
  closed = false;
  /** Requests completed on this connection (to notice apps that ignore FCGI_KEEP_CONN). */
  completed = 0;
  /** The request whose client could not keep up; reading resumes when it drains or ends. */
  private pausedBy: FcgiRequest | null = null;
  lastError: FcgiError | null = null;

  constructor(readonly socket: Socket, private readonly options: ConnectionOptions) {
    socket.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    socket.on('drain', () => this.flushDrainWaiters());
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.lastError = new FcgiError('closed', `connection error: ${err.message}`, { code: err.code, cause: err });
    });
    socket.on('end', () => { this.ended = true; });
    socket.on('close', () => this.onSocketClose());
  }

  /** Whether the last request's STDIN is complete, so another request may follow it on the wire. */
  get stdinComplete(): boolean {
    for (let i = 1; i < this.requests.length; i++) {
      const r = this.requests[i];
      if (r && !r.stdinEnded) return false;
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

  /** Begins a request; BEGIN_REQUEST, PARAMS and (with no body) the empty STDIN go out in one write. */
  begin(pairs: readonly string[], hasBody: boolean, handler: FcgiHandler, tick: number): FcgiRequest {
    let id = 1;
    while (id < this.requests.length && this.requests[id] !== undefined) id++;
    const request = new FcgiRequest(this, id, handler, hasBody, this.options.maxHeadBytes);
    request.lastTick = tick;
    this.requests[id] = request;
    this.inflight++;
    this.socket.write(encodeRequestHead(id, Role.Responder, this.options.keepConn ? FCGI_KEEP_CONN : 0, pairs, !hasBody));
    return request;
  }

  /** FCGI_GET_VALUES; resolves null when the application closes or does not answer. */
  getValues(names: readonly string[]): Promise<Array<[string, string]> | null> {
    const flat: string[] = [];
    for (const n of names) flat.push(n, '');
    return new Promise((resolve) => {
      this.valuesWaiter = resolve;
      this.socket.write(encodeRecord(RecordType.GetValues, 0, encodePairs(flat)));
    });
  }

  write(buf: Buffer): boolean {
    if (this.closed) return true;
    return this.socket.write(buf);
  }

  waitDrain(fn: () => void): void {
    if (this.closed || !this.socket.writableNeedDrain) { fn(); return; }
    this.drainWaiters.push(fn);
  }

  private flushDrainWaiters(): void {
    const waiters = this.drainWaiters;
    if (waiters.length === 0) return;
    this.drainWaiters = [];
    for (const fn of waiters) fn();
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

  /** Closed by this side (idle close, shutdown), not by the application. */
  closedByUs = false;
  /** The application half-closed the connection: nothing more may be written on it. */
  ended = false;
  /** Between an END_REQUEST that left it idle and the next turn of the event loop. */
  settling = false;
  /** It stayed open after a completed request: safe to pipeline or multiplex on. */
  proven = false;

  /** May take a new request now. */
  get usable(): boolean {
    return !this.closed && !this.ended && !this.settling;
  }

  destroy(err?: FcgiError): void {
    this.closedByUs = true;
    if (err && !this.lastError) this.lastError = err;
    this.socket.destroy();
  }

  // --- RecordSink ---

  onRecord(type: number, requestId: number, content: Buffer): void {
    if (requestId === 0) {
      this.onManagementRecord(type, content);
      return;
    }
    const request = this.requests[requestId];
    if (request === undefined && content.length === 0 && (type === RecordType.Stdout || type === RecordType.Stderr)) {
      return; // a stream's end record sent after END_REQUEST (patched node-fastcgi does): harmless
    }
    if (request === undefined || request.state !== State.Active) {
      this.decoder.fail(`${recordTypeName(type)} record for request id ${requestId}, which is not in flight on this connection`);
      return;
    }
    request.lastTick = currentTick;
    switch (type) {
      case RecordType.Stdout:
        if (content.length > 0) this.onStdout(request, content);
        return;
      case RecordType.Stderr:
        if (content.length > 0) request.handler.onStderr(content);
        return;
      case RecordType.EndRequest:
        this.onEndRequest(request, content);
        return;
      default:
        this.decoder.fail(`unexpected ${recordTypeName(type)} record from the application for request id ${requestId}`);
    }
  }

  onProtocolError(reason: string): void {
    this.lastError = new FcgiError('protocol', `backend sent invalid FastCGI: ${reason}`);
    this.socket.destroy();
  }

  private onManagementRecord(type: number, content: Buffer): void {
    if (type === RecordType.GetValuesResult) {
      let pairs: Array<[string, string]>;
      try {
        pairs = decodePairs(content);
      } catch (err) {
        this.decoder.fail(`bad GET_VALUES_RESULT: ${(err as Error).message}`);
        return;
      }
      const waiter = this.valuesWaiter;
      this.valuesWaiter = null;
      if (waiter) waiter(pairs);
      return;
    }
    if (type === RecordType.UnknownType) return; // the app did not know a management record we sent
    this.decoder.fail(`unexpected management record ${recordTypeName(type)} (request id 0)`);
  }

  private onStdout(request: FcgiRequest, content: Buffer): void {
    request.anyResponseByte = true;
    if (request.abandoned) return;
    const parser = request.headParser;
    if (parser !== null) {
      let parsed;
      try {
        parsed = parser.push(content);
      } catch (err) {
        if (err instanceof CgiHeadError) {
          this.failRequest(request, new FcgiError('head', err.message));
          return;
        }
        throw err;
      }
      if (parsed === null) return;
      request.headParser = null;
      request.headSeen = true;
      request.handler.onHead(parsed.head);
      if (request.abandoned || parsed.bodyOffset >= content.length) return;
      content = content.subarray(parsed.bodyOffset);
    }
    if (!request.handler.onBody(content)) this.pauseReading(request);
  }

  private onEndRequest(request: FcgiRequest, content: Buffer): void {
    if (content.length < 8) {
      this.decoder.fail(`END_REQUEST body of ${content.length} bytes (expected 8)`);
      return;
    }
    const appStatus = content.readUInt32BE(0);
    const protocolStatus = content[4];
    this.requests[request.id] = undefined;
    this.inflight--;
    this.completed++;
    const wasActive = request.state === State.Active;
    request.state = State.Released;
    if (this.pausedBy === request) this.resumeReading(); // its client's drain no longer matters here
    if (wasActive && !request.abandoned) {
      if (protocolStatus === ProtocolStatus.RequestComplete) {
        if (request.headParser !== null && !request.headSeen) {
          request.handler.onError(new FcgiError('head', request.anyResponseByte
            ? 'backend ended the request inside the response head'
            : 'backend ended the request without sending a response', { notStarted: false }));
        } else {
          request.handler.onEnd(appStatus);
        }
      } else {
        const kind = protocolStatus === ProtocolStatus.CantMpxConn ? 'cant-mpx'
          : protocolStatus === ProtocolStatus.Overloaded ? 'overloaded'
          : protocolStatus === ProtocolStatus.UnknownRole ? 'unknown-role' : 'protocol';
        request.handler.onError(new FcgiError(kind, `backend ended the request with ${protocolStatusName(protocolStatus)}`,
          { notStarted: !request.anyResponseByte }));
      }
    }
    if (this.inflight === 0 && !this.closed) {
      // Not reusable until the events already read are handled: an app that ignores
      // FCGI_KEEP_CONN closes right after END_REQUEST, and its FIN is usually already
      // here. A connection still open then has proven it is kept.
      this.settling = true;
      // The first time, give a slow app a moment longer to show it closes (once per connection).
      if (this.proven) setImmediate(this.settle);
      else setTimeout(this.settle, FIRST_SETTLE_MS);
    }
    request.handler.onRelease();
  }

  private readonly settle = (): void => {
    this.settling = false;
    if (this.closed || this.ended) return;
    this.proven = true;
    if (this.options.onIdle) this.options.onIdle(this);
  };

  /** The response cannot be used any more; the request stays until END_REQUEST or close. */
  failRequest(request: FcgiRequest, err: FcgiError): void {
    if (request.state !== State.Active) return;
    request.state = State.Finished;
    request.abandoned = true;
    request.handler.onError(err);
    if (err.kind === 'head' || err.kind === 'timeout') {
      // Tell the application to stop; a conforming one answers END_REQUEST and the connection lives on.
      this.write(encodeRecord(RecordType.AbortRequest, request.id));
      this.resumeReading();
    }
  }

  private onSocketClose(): void {
    this.closed = true;
    const hadRequests = this.inflight > 0;
    const cause = this.lastError;
    for (let i = 1; i < this.requests.length; i++) {
      const request = this.requests[i];
      if (!request) continue;
      this.requests[i] = undefined;
      const wasActive = request.state === State.Active && !request.abandoned;
      request.state = State.Released;
      if (wasActive) {
        const err = cause && cause.kind === 'protocol'
          ? new FcgiError('protocol', cause.message, { notStarted: false })
          : new FcgiError('closed', request.anyResponseByte
            ? 'backend closed the connection in the middle of the response'
            : `backend closed the connection before answering${cause?.code ? ` (${cause.code})` : ''}`,
          { code: cause?.code, notStarted: !request.anyResponseByte });
        err.freshConnection = this.completed === 0 && !request.anyResponseByte;
        request.handler.onError(err);
      }
      request.handler.onRelease();
    }
    this.inflight = 0;
    const waiter = this.valuesWaiter;
    this.valuesWaiter = null;
    if (waiter) waiter(null);
    this.flushDrainWaiters();
    if (this.options.onClose) this.options.onClose(this, hadRequests);
  }
}

/**
 * A coarse clock (ms) shared by all connections: the read timeout needs no
 * Date.now() per record. One unref'd timer advances it.
 */
export const TICK_MS = 20;
export let currentTick = Date.now();
setInterval(() => { currentTick = Date.now(); }, TICK_MS).unref();
