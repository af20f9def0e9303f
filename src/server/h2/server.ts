// HTTP/2 sessions of the public TLS listener (ALPN "h2"), on node:http2's core API.
// The TLS listener hands over each negotiated socket; every stream becomes an
// H2Exchange for the same request handler the HTTP/1.1 layer calls. Limits follow
// the HTTP/1.1 layer's (head size and field count, body size, body and send
// timeouts); an idle session is closed after the keep-alive timeout; a stop sends
// GOAWAY and lets the streams in progress finish.
import http2 from 'node:http2';
import type tls from 'node:tls';
import { KNOWN_METHODS } from '../http1/head.js';
import type { Http1Limits } from '../http1/server.js';
import { H2Exchange, type H2Connection, type H2ExchangeOwner } from './exchange.js';

export interface H2Handler {
  onRequest(ex: H2Exchange): void;
  onHandlerError(err: unknown, ex: H2Exchange | null): void;
}

/** nginx's http2_max_concurrent_streams. */
const MAX_CONCURRENT_STREAMS = 128;

/**
 * The response head a client that advertised no SETTINGS_MAX_HEADER_LIST_SIZE is sent at
 * most: node's clients take 64 KB without saying so, and one sent more loses its session.
 * (nginx answers 502 "upstream sent too big header" over its 4-8 KB buffer already.)
 */
const DEFAULT_RESPONSE_HEAD_MAX = 65535;
/** Node's block limit below: no client is sent more, whatever it advertises. */
const RESPONSE_HEAD_HARD_MAX = 1024 * 1024;
/** What node reports when the peer set no SETTINGS_MAX_HEADER_LIST_SIZE. */
const UNSET = 0xffffffff;

const PLAIN = 'text/plain; charset=utf-8';

/** One session's client connection (the CGI params' cache key) and its open streams. */
class SessionConnection implements H2Connection {
  readonly encrypted = true;
  openStreams = 0;
  maxResponseHeadBytes = DEFAULT_RESPONSE_HEAD_MAX;
  constructor(readonly remoteAddress: string, readonly remotePort: number, readonly localAddress: string, readonly localPort: number) {}
}

export class H2Server implements H2ExchangeOwner {
  readonly server: http2.Http2Server;
  /** Sessions (connections) since start. */
  acceptedSessions = 0;
  activeExchanges = 0;
  readonly bodyTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly maxBodyBytes: number;
  private readonly sessions = new Map<http2.ServerHttp2Session, SessionConnection>();
  private stopping = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly limits: Http1Limits, private readonly handler: H2Handler) {
    this.bodyTimeoutMs = limits.bodyTimeoutMs;
    this.sendTimeoutMs = limits.sendTimeoutMs;
    this.maxBodyBytes = limits.maxBodyBytes;
    this.server = http2.createServer({
      // node resets a stream whose header list is over maxHeaderListSize (ENHANCE_YOUR_CALM),
      // before we see it. It is the hard cap against floods, 4x our limit (64 KB by default,
      // node's own default): a head between the two reaches onStream and gets the 431 HTTP/1.1
      // gives, counted as HTTP/1.1 counts it (headBytes).
      settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS, maxHeaderListSize: 4 * limits.maxHeaderBytes, enablePush: false },
      // Node resets over this too: set so the byte limit binds first for fields of any size
      // (every field costs 32 octets beyond its name and value, RFC 7541 4.1); the field
      // count is checked in onStream, where a browser's cookie crumbs (one field each in
      // HTTP/2) count as the one Cookie field HTTP/1.1 would have had.
      maxHeaderListPairs: Math.max(limits.maxHeaderCount + 5, Math.ceil(limits.maxHeaderBytes / 32)),
      // Backends may send large heads (the FastCGI side allows max-head-bytes).
      maxSendHeaderBlockLength: RESPONSE_HEAD_HARD_MAX,
    });
    this.server.on('session', this.onSession);
    this.server.on('stream', this.onStream);
  }

  /** A TLS socket that negotiated h2. */
  accept(socket: tls.TLSSocket): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    this.server.emit('connection', socket);
  }

  get sessionCount(): number { return this.sessions.size; }

  private readonly onSession = (session: http2.ServerHttp2Session): void => {
    this.acceptedSessions++;
    const socket = session.socket;
    const conn = new SessionConnection(socket.remoteAddress ?? '', socket.remotePort ?? 0, socket.localAddress ?? '', socket.localPort ?? 0);
    this.sessions.set(session, conn);
    session.on('error', () => { /* a broken connection; 'close' follows */ });
    session.on('close', () => this.sessions.delete(session));
    // The client's SETTINGS come first in its preface: read once per change, not per response.
    session.on('remoteSettings', (settings: http2.Settings) => {
      const max = settings.maxHeaderListSize;
      conn.maxResponseHeadBytes = max === undefined || max >= UNSET ? DEFAULT_RESPONSE_HEAD_MAX : Math.min(max, RESPONSE_HEAD_HARD_MAX);
    });
    // Idle sessions close after the keep-alive timeout; one with streams open is left to their timers.
    session.setTimeout(this.limits.keepAliveTimeoutMs, () => {
      if (conn.openStreams === 0) session.close();
    });
  };

  private readonly onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]): void => {
    const conn = this.sessions.get(stream.session as http2.ServerHttp2Session);
    if (conn === undefined) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    conn.openStreams++;
    stream.once('close', () => { conn.openStreams--; });
    const method = String(headers[':method'] ?? '');
    const target = String(headers[':path'] ?? '');
    if (method === 'CONNECT' || target === '') return answer(stream, 501, 'CONNECT is not served here');
    // As on HTTP/1.1: a method outside node's list is not passed to the app.
    if (!KNOWN_METHODS.has(method)) return answer(stream, 501, `unknown method ${JSON.stringify(method.slice(0, 32))}`);
    if (target.length > this.limits.maxUriBytes) return answer(stream, 414, `request target longer than ${this.limits.maxUriBytes} bytes`);
    measureAsHttp1(method, target, rawHeaders);
    if (asHttp1.fields > this.limits.maxHeaderCount) return answer(stream, 431, `more than ${this.limits.maxHeaderCount} header fields`);
    if (asHttp1.bytes > this.limits.maxHeaderBytes) return answer(stream, 431, `request head larger than ${this.limits.maxHeaderBytes} bytes`);
    let contentLength = stream.endAfterHeaders ? 0 : -1;
    const cl = headers['content-length'];
    if (cl !== undefined) {
      if (!/^\d{1,15}$/.test(String(cl))) return answer(stream, 400, 'Content-Length is not a number');
      contentLength = Number(cl);
    }
    if (this.maxBodyBytes > 0 && contentLength > this.maxBodyBytes) return answer(stream, 413, `request body larger than ${this.maxBodyBytes} bytes`);
    const authority = headers[':authority'];
    // RFC 9113 8.3.1: a Host naming another entity than :authority makes the request malformed;
    // passed on, the app would route by one name while the front and its logs saw the other.
    const host = headers.host;
    if (typeof authority === 'string' && typeof host === 'string' && host.toLowerCase() !== authority.toLowerCase()) {
      return answer(stream, 400, `Host ${JSON.stringify(host.slice(0, 64))} differs from :authority ${JSON.stringify(authority.slice(0, 64))}`);
    }
    const ex = new H2Exchange(stream, conn, method, target, rawHeaders, typeof authority === 'string' ? authority : undefined, contentLength, this);
    this.activeExchanges++;
    try {
      this.handler.onRequest(ex);
    } catch (err) {
      this.handlerFailed(err, ex);
      ex.destroy();
    }
  };

  exchangeEnded(_ex: H2Exchange): void {
    this.activeExchanges--;
    if (this.activeExchanges === 0 && this.idleWaiters.length > 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  handlerFailed(err: unknown, ex: H2Exchange): void {
    try {
      this.handler.onHandlerError(err, ex);
    } catch { /* a failing reporter must not take the server down */ }
  }

  /** GOAWAY to every session: no new streams; the streams in progress finish, then the sessions close. */
  stopAccepting(): void {
    this.stopping = true;
    for (const session of this.sessions.keys()) if (!session.closed) session.close();
  }

  whenIdle(): Promise<void> {
    if (this.activeExchanges === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  destroyAll(): void {
    this.stopping = true;
    for (const session of this.sessions.keys()) session.destroy();
  }
}

/** What measureAsHttp1 found (one object, read at once after each call). */
const asHttp1 = { fields: 0, bytes: 0 };

/**
 * The request head as HTTP/1.1 would carry it, for HTTP/1.1's limits: its fields (no
 * pseudo-headers; cookie crumbs as the one Cookie field) and its bytes (request line,
 * "name: value" lines, the crumbs joined, :authority as the Host line it becomes).
 */
function measureAsHttp1(method: string, target: string, rawHeaders: readonly string[]): void {
  let fields = 0;
  let bytes = method.length + target.length + 14; // "M T HTTP/1.1\r\n" and the blank line
  let cookie = false;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ':authority') bytes += rawHeaders[i + 1].length + 8; // the Host line it becomes (a Host field too: counted twice, a few bytes)
      continue;
    }
    if (name === 'cookie') {
      if (cookie) { bytes += rawHeaders[i + 1].length + 2; continue; } // "; " and the crumb
      cookie = true;
    }
    fields++;
    bytes += name.length + rawHeaders[i + 1].length + 4; // ": " and CRLF
  }
  asHttp1.fields = fields;
  asHttp1.bytes = bytes;
}

function answer(stream: http2.ServerHttp2Stream, status: number, reason: string): void {
  try {
    stream.respond({ ':status': status, 'content-type': PLAIN, 'cache-control': 'no-store' });
    stream.end(`${status} ${reason}\n`);
  } catch {
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }
}
