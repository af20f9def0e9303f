// The seam between the pool and the protocols, in the shape of undici's dispatcher:
// a transport is dispatched a request with a handler object, puts it on the wire
// at once (a slot the pool granted is a place to send now), reports the response
// through the handler and says when it has room again. FastCGI and HTTP implement
// it; the proxy request and the pool see nothing else. This module is a leaf: types,
// the error every transport reports, and what a backend taught us at run time.

/** Where a backend listens: a unix socket path, or host and port. */
export type BackendAddress = { path: string } | { host: string; port: number };

export function describeAddress(address: BackendAddress): string {
  return 'path' in address ? `unix:${address.path}` : `${address.host}:${address.port}`;
}

const ERRNO: Record<string, number> = { EAGAIN: 11, ECONNREFUSED: 111, ENOENT: 2, EACCES: 13, ETIMEDOUT: 110, ECONNRESET: 104, ENOTSOCK: 88, EHOSTUNREACH: 113 };
const STRERROR: Record<string, string> = {
  EAGAIN: 'Resource temporarily unavailable', ECONNREFUSED: 'Connection refused', ENOENT: 'No such file or directory',
  EACCES: 'Permission denied', ETIMEDOUT: 'Connection timed out', ECONNRESET: 'Connection reset by peer',
};

/** nginx's wording, so users can grep for the line they know: `connect() to unix:PATH failed (11: Resource temporarily unavailable)`. */
export function connectErrorMessage(address: BackendAddress, err: NodeJS.ErrnoException): string {
  const code = err.code ?? 'EIO';
  const num = ERRNO[code] ?? (typeof err.errno === 'number' ? Math.abs(err.errno) : 0);
  return `connect() to ${describeAddress(address)} failed (${num}: ${STRERROR[code] ?? err.message})`;
}

/** The client connection a request came on (one object per connection: usable as a cache key). */
export interface ClientConnection {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly encrypted: boolean;
}

/** The request head as the client sent it (latin1 strings of its bytes). */
export interface RequestHead {
  readonly method: string;
  /** The request-target in origin form (/path?query). */
  readonly target: string;
  readonly versionMinor: number;
  /** Flat [name, value, ...] as received. */
  readonly headers: readonly string[];
  readonly host: string | undefined;
  readonly contentType: string | undefined;
  readonly connection: ClientConnection;
}

export interface TransportRequest {
  readonly head: RequestHead;
  /** Bytes of body that will be written; -1: unknown (streamed as it comes); 0: none. */
  readonly bodyLength: number;
  /** May be written behind another request on a busy connection (it has no body). */
  readonly pipelinable: boolean;
  /** When the front received it (coarse ms): the read timeout for its first response byte counts from here. */
  readonly receivedAt: number;
}

/**
 * When a request's first response byte is due: a read timeout after it was received,
 * so one queued behind a stuck backend does not get a fresh full timeout after its wait
 * — but never less than a tenth of it (at most 1 s) once it is on the wire.
 */
export function firstByteDeadline(receivedAt: number, sentAt: number, readTimeoutMs: number): number {
  return Math.max(receivedAt + readTimeoutMs, sentAt + Math.min(1000, readTimeoutMs / 10));
}

/** What the handler may do with a request once it is on the wire. */
export interface RequestControl {
  /** Sends request body bytes; false: wait for handler.onBodyDrain(). */
  writeBody(chunk: Buffer): boolean;
  endBody(): void;
  /** Reading the response resumes after onBody returned false. */
  resume(): void;
  /** The client left: tell the backend, drop what it still sends; onRelease follows. */
  abort(): void;
}

/**
 * A validated response head: headers without framing or hop-by-hop ones. Read-only for
 * handlers: a transport may hand the same object to responses whose heads were the same bytes.
 */
export interface ResponseHead {
  status: number;
  reason: string | null;
  /** Flat [name, value, ...] in the order sent. */
  headers: string[];
  /** The body length the backend declared (validated); -1 when it did not. */
  contentLength: number;
}

/** Receives one request's life (undici's handler shape). Calls, in order:
 * onStart, onHead, onBody*, then onEnd or onError (at most one), then onRelease (always, once, last). */
export interface ResponseHandler {
  onStart(control: RequestControl): void;
  onBodyDrain(): void;
  onHead(head: ResponseHead): void;
  /** false: pause reading from the backend until control.resume(). */
  onBody(chunk: Buffer): boolean;
  onEnd(): void;
  onError(err: TransportError): void;
  /** A line the backend wrote to its error stream for this request (FCGI_STDERR). */
  onStderr(chunk: Buffer): void;
  /** The request no longer occupies the backend. */
  onRelease(): void;
}

export interface TransportFigures {
  /** Connections opened over the transport's life (keep-alive reuse shows here). */
  connectionsOpened: number;
  openConnections: number;
}

export interface Transport {
  readonly protocol: 'fastcgi' | 'http';
  /** The request body must have a known length before dispatch (CGI's CONTENT_LENGTH). */
  readonly needsBodyLength: boolean;
  /** Whether a request can be put on the wire now; the pool asks before it grants a slot. */
  canTake(pipelinable: boolean): boolean;
  /** A request waits for room here: make room where the evidence allows (onDrain tells when). */
  prepare(): void;
  /**
   * Puts the request on the wire now: never queues it inside. Returns whether the
   * transport can take another request at once; when false, the caller waits for
   * the `onDrain` it gave at construction (undici's contract).
   */
  dispatch(request: TransportRequest, handler: ResponseHandler): boolean;
  /** The backend is gone or restarting: drop every connection, keep none until resume(). */
  suspend(): void;
  resume(): void;
  /** Closes idle connections; with `force`, every connection. */
  close(force?: boolean): void;
  /** Shared socket: the fds of the open connections, so the supervisor can find which process serves each. */
  connectionFds?(): number[];
  /**
   * Shared socket, a child being drained: the connections on `fds` take no new request
   * and are closed once idle (each call closes those idle by then). Returns how many
   * retired ones are still busy.
   */
  retireConnections?(fds: ReadonlySet<number>): number;
  readonly figures: TransportFigures;
}

/** What a transport tells its owner. */
export interface TransportEvents {
  /** There may be room again (a connection became free or usable). */
  onDrain(): void;
  /** Every failed connect() attempt, retried or not (per-errno counters). */
  onConnectError(code: string): void;
  /** The backend broke the protocol outside any request's life (the transport dropped the connection). */
  onProtocolError(what: string): void;
  /** The backend did not end a request it was told to abort; the transport closed its connection. */
  onAbortIgnored?(what: string): void;
}

export type TransportErrorKind =
  | 'request'        // the request cannot be expressed to this backend (a path CGI cannot map): status says what the client gets
  | 'connect'        // connect() failed (code: EAGAIN, ECONNREFUSED, ENOENT, ...)
  | 'closed'         // the backend closed the connection before the response ended
  | 'protocol'       // the backend sent bytes that are not valid for the protocol
  | 'head'           // the response head is malformed, too big, or contradicts itself
  | 'length'         // the body does not match the Content-Length the backend declared
  | 'timeout'        // no byte from the backend for read-timeout
  | 'cant-mpx'       // FastCGI END_REQUEST FCGI_CANT_MPX_CONN
  | 'overloaded'     // FastCGI END_REQUEST FCGI_OVERLOADED
  | 'unknown-role';  // FastCGI END_REQUEST FCGI_UNKNOWN_ROLE

export class TransportError extends Error {
  /** errno name from the system call, where there was one. */
  code: string | undefined;
  /**
   * The backend refused or never started the request, so it can be sent again
   * elsewhere provided no request body was consumed for it.
   */
  notStarted: boolean;
  /**
   * Closed, unanswered, on a connection that never completed a request: the app
   * accepted and closed at once (flup does at its thread limit), a refusal like EAGAIN.
   */
  freshConnection = false;
  /**
   * The app closed the connection right after answering the request before this one and
   * never read this one (the close reset our unread bytes, or our write met the close):
   * nothing of it was processed, so it may go again — with its body, when that can be read
   * again from the start (a buffered one).
   */
  unread = false;
  /** kind 'request': the status the client gets (400, 404). */
  readonly status: number | undefined;

  constructor(readonly kind: TransportErrorKind, message: string, options: { code?: string; notStarted?: boolean; cause?: unknown; status?: number } = {}) {
    super(message, options.cause ? { cause: options.cause } : undefined);
    this.code = options.code;
    this.notStarted = options.notStarted ?? false;
    this.status = options.status;
  }
}

export interface CapabilityValues {
  multithreaded: boolean;
  /** Several requests share one connection (FastCGI FCGI_MPXS_CONNS). */
  multiplexed: boolean;
  /** Requests the backend serves at once: connections (not multiplexed) or requests (multiplexed). */
  slots: number;
  /** The application answers FCGI_GET_VALUES: whether a new connection is being served can be asked. */
  answersGetValues: boolean;
  /** Connections are kept across requests (FCGI_KEEP_CONN / HTTP keep-alive). */
  keepConn: boolean;
  /** Requests written on one connection before the previous answer completed. */
  pipelineDepth: number;
  /** Where the values came from: 'flags', 'GET_VALUES', 'fallback: ...', 'adapted: ...'. */
  source: string;
}

/**
 * What a backend can do, as far as we know now. Settings are immutable; this is what
 * the backend said (GET_VALUES) and what it taught us at run time (it closes kept
 * connections, refuses pipelined requests, is overloaded). Owned by the backend,
 * read by its transport on every placement; each change is reported once with why.
 */
export class Capabilities implements CapabilityValues {
  multithreaded: boolean;
  multiplexed: boolean;
  /** What the transport may use now: what was claimed, or less where evidence showed less. */
  slots: number;
  /** What the backend said (GET_VALUES) or the flags gave. */
  slotsClaimed: number;
  /** The most it served at once when a further connection went unserved; null: never seen. */
  slotsLearned: number | null = null;
  answersGetValues: boolean;
  keepConn: boolean;
  pipelineDepth: number;
  source: string;
  /** Called after each change, with what changed and the evidence. */
  onChange: ((what: string, why: string) => void) | null = null;

  constructor(values: CapabilityValues) {
    this.multithreaded = values.multithreaded;
    this.multiplexed = values.multiplexed;
    this.slots = values.slots;
    this.slotsClaimed = values.slots;
    this.answersGetValues = values.answersGetValues;
    this.keepConn = values.keepConn;
    this.pipelineDepth = values.pipelineDepth;
    this.source = values.source;
  }

  /** Replaces every value (a backend that answered GET_VALUES, or a restarted process). */
  reset(values: CapabilityValues): void {
    this.multithreaded = values.multithreaded;
    this.multiplexed = values.multiplexed;
    this.slots = values.slots;
    this.slotsClaimed = values.slots;
    this.slotsLearned = null;
    this.answersGetValues = values.answersGetValues;
    this.keepConn = values.keepConn;
    this.pipelineDepth = values.pipelineDepth;
    this.source = values.source;
  }

  /** The backend served `served` connections at once and no more: slots follow the evidence. */
  learnSlots(served: number, why: string): boolean {
    this.slotsLearned = served;
    return this.learn({ slots: served, source: 'measured' }, why);
  }

  /** Learns something at run time; returns false when it was known already. */
  learn(change: Partial<CapabilityValues>, why: string): boolean {
    let changed = '';
    for (const key of Object.keys(change) as Array<keyof CapabilityValues>) {
      const value = change[key];
      if (key === 'source' || value === undefined || this[key] === value) continue;
      changed += `${changed ? ', ' : ''}${key} ${String(this[key])} → ${String(value)}`;
      (this as Record<string, unknown>)[key] = value;
    }
    if (!changed) return false;
    this.source = change.source ?? `adapted: ${why}`;
    this.onChange?.(changed, why);
    return true;
  }
}

/**
 * A response's headers without the fields its Connection header named: hop-by-hop too
 * (RFC 9110 §7.6.1), whichever protocol the backend spoke. `named` is lower case.
 */
export function dropNamed(headers: string[], named: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!named.includes(headers[i].toLowerCase())) out.push(headers[i], headers[i + 1]);
  }
  return out;
}
