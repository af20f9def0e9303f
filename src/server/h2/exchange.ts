// One HTTP/2 stream as the proxy sees a request: the ClientExchange contract over
// node:http2's core API, so a request forwarded from HTTP/2 looks to the pool and
// the transports exactly like one from HTTP/1.1 (same head, same CGI params: the
// version is reported as 1.1, the scheme as https). Pseudo-headers become the
// request line and a Host field; cookies split over several fields are joined.
// Response framing: a declared length is held to (a body longer or shorter is a
// reset stream, never a short answer taken for whole), HEAD/204/304 send no body.
import http2 from 'node:http2';
import type { ClientConnection } from '../../transport.js';
import { FIELD_OVERHEAD_BYTES, STATUS_FIELD_BYTES, type BodySink, type ClientEvents, type ClientExchange } from '../exchange.js';
import { BodyError } from '../http1/exchange.js';

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR } = http2.constants;

/** Fields that mean something only on one HTTP/1.1 connection: HTTP/2 refuses them (RFC 9113 8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'content-length', 'http2-settings']);

/** A session's connection, with what its client said it takes (SETTINGS_MAX_HEADER_LIST_SIZE, or the server's cap). */
export interface H2Connection extends ClientConnection {
  readonly maxResponseHeadBytes: number;
}

/** What the exchange tells its server. */
export interface H2ExchangeOwner {
  readonly bodyTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly maxBodyBytes: number;
  exchangeEnded(ex: H2Exchange): void;
  handlerFailed(err: unknown, ex: H2Exchange): void;
}

const enum Phase { New, HeadPending, Streaming, Finished }

export class H2Exchange implements ClientExchange {
  readonly method: string;
  readonly target: string;
  /** Reported as HTTP/1.1 to the backends (SERVER_PROTOCOL), as nginx's FastCGI and most fronts do. */
  readonly versionMinor = 1;
  readonly headers: string[];
  readonly host: string | undefined;
  readonly contentType: string | undefined;
  readonly contentLength: number;
  readonly chunked: boolean;
  /** For the access log. */
  readonly protocol = 'HTTP/2.0';
  private phase = Phase.New;
  private sink: BodySink | null = null;
  private events: ClientEvents | null = null;
  private bodyDone: boolean;
  private bodyBytes = 0;
  /** Declared response length (-1: none); bytes still allowed under it. */
  private left = -1;
  private pendingHeaders: http2.OutgoingHttpHeaders | null = null;
  private endStreamOnHead = false;
  private waitingDrain = false;
  /** Body reading stopped by us (backpressure): the client is not late. */
  private paused = false;
  /** The stream's inactivity timeout now (0: none): the request body's. */
  private timerMs = 0;
  /**
   * The send timeout, a timer of our own: node's stream timeout is put off by bytes
   * sent on any stream of the session, so a client that takes nothing on one stream
   * while it reads another would hold that stream (and its backend slot) forever.
   */
  private sendTimer: NodeJS.Timeout | null = null;
  /** stream.bufferSize when the send timer was armed: less when it fires is progress. */
  private sendBuffered = 0;

  constructor(private readonly stream: http2.ServerHttp2Stream, readonly connection: H2Connection, method: string, target: string,
    rawHeaders: readonly string[], authority: string | undefined, contentLength: number, private readonly owner: H2ExchangeOwner) {
    this.method = method;
    this.target = target;
    this.contentLength = contentLength;
    this.chunked = contentLength < 0;
    this.bodyDone = contentLength === 0;
    const headers: string[] = [];
    let host: string | undefined;
    let cookie: string | null = null;
    let contentType: string | undefined;
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const name = rawHeaders[i];
      if (name.charCodeAt(0) === 58 /* : */) continue;
      const value = rawHeaders[i + 1];
      switch (name) {
        case 'cookie':
          // RFC 9113 8.2.3: crumbs joined with "; " before they go to an HTTP/1.1 world.
          cookie = cookie === null ? value : `${cookie}; ${value}`;
          continue;
        case 'host':
          host ??= value;
          break;
        case 'content-type':
          contentType ??= value;
          break;
      }
      headers.push(name, value);
    }
    if (host === undefined && authority !== undefined) {
      host = authority;
      headers.unshift('host', authority);
    }
    if (cookie !== null) headers.push('cookie', cookie);
    this.headers = headers;
    this.host = host;
    this.contentType = contentType;
    stream.on('close', this.onClose);
    stream.on('drain', this.onDrain);
    stream.on('error', onStreamError);
    stream.on('timeout', this.onTimeout);
  }

  /** The stream's inactivity timer is the body timeout while the body is wanted; the send timeout has its own (sendTimer). */
  private updateTimer(): void {
    const want = this.sink !== null && !this.bodyDone && !this.paused ? this.owner.bodyTimeoutMs : 0;
    if (want === this.timerMs || this.stream.closed) return;
    this.timerMs = want;
    this.stream.setTimeout(want);
  }

  private readonly onTimeout = (): void => {
    if (this.sink !== null && !this.bodyDone && !this.paused) this.bodyFailed(408, `no request body bytes for ${this.owner.bodyTimeoutMs} ms`);
  };

  /** Response bytes wait for the client (a write said wait, or the end is still buffered): the send timeout runs. */
  private armSendTimer(): void {
    const ms = this.owner.sendTimeoutMs;
    if (this.sendTimer !== null || ms <= 0 || this.stream.closed) return;
    this.sendBuffered = this.stream.bufferSize;
    this.sendTimer = setTimeout(this.onSendTimeout, ms);
    this.sendTimer.unref();
  }

  private clearSendTimer(): void {
    if (this.sendTimer === null) return;
    clearTimeout(this.sendTimer);
    this.sendTimer = null;
  }

  /** nginx's send_timeout: the client took no response byte for sendTimeoutMs. */
  private readonly onSendTimeout = (): void => {
    this.sendTimer = null;
    const s = this.stream;
    if (s.closed || s.bufferSize === 0) return;
    if (s.bufferSize < this.sendBuffered) return this.armSendTimer(); // it takes bytes, slowly
    const wasOpen = this.phase !== Phase.Finished;
    this.destroy();
    // The stream closes as "finished" now: the handler must hear that the client is gone,
    // or it goes on feeding this response from its backend, holding the slot.
    if (wasOpen) {
      try {
        this.events?.onClientClose();
      } catch (err) {
        this.owner.handlerFailed(err, this);
      }
    }
  };

  get headersSent(): boolean { return this.phase !== Phase.New; }
  get finished(): boolean { return this.phase === Phase.Finished; }
  get maxResponseHeadBytes(): number { return this.connection.maxResponseHeadBytes; }

  // ---- request body

  readBody(sink: BodySink): void {
    if (this.sink !== null || this.phase === Phase.Finished) return;
    this.sink = sink;
    if (this.bodyDone) {
      sink.onBodyEnd();
      return;
    }
    const s = this.stream;
    s.on('data', this.onData);
    s.on('end', this.onEnd);
    this.updateTimer();
  }

  pauseBody(): void {
    if (this.sink === null || this.bodyDone || this.paused) return;
    this.paused = true;
    this.stream.pause();
    this.updateTimer();
  }

  resumeBody(): void {
    if (this.sink === null || this.bodyDone || !this.paused) return;
    this.paused = false;
    this.stream.resume();
    this.updateTimer();
  }

  private readonly onData = (chunk: Buffer): void => {
    this.bodyBytes += chunk.length;
    const max = this.owner.maxBodyBytes;
    if (max > 0 && this.bodyBytes > max) return this.bodyFailed(413, `request body larger than ${max} bytes`);
    let more: boolean;
    try {
      more = this.sink!.onBodyData(chunk);
    } catch (err) {
      return this.failed(err);
    }
    if (more === false && !this.bodyDone) this.pauseBody();
  };

  private readonly onEnd = (): void => {
    this.bodyDone = true;
    this.updateTimer();
    try {
      this.sink?.onBodyEnd();
    } catch (err) {
      this.failed(err);
    }
  };

  private bodyFailed(status: number, reason: string): void {
    this.bodyDone = true;
    const sink = this.sink;
    if (sink !== null) {
      try {
        sink.onBodyError(new BodyError(status, reason));
      } catch { /* already failing */ }
    }
    if (this.phase === Phase.New) {
      this.respond(status, null, ['content-type', 'text/plain; charset=utf-8'], `${status} ${reason}\n`);
      this.stopUploadWhenSent();
    } else this.destroy();
  }

  // ---- response

  setClientEvents(events: ClientEvents): void {
    this.events = events;
  }

  respond(status: number, _reason: string | null, headers: string[], body: Buffer | string | null): void {
    if (this.phase === Phase.Finished) return;
    if (this.phase !== Phase.New) return this.failed(new Error('H2Exchange: respond() after writeHead()'));
    const data = body === null ? null : typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const bodyless = status === 204 || status === 304 || this.method === 'HEAD';
    try {
      const out = outgoingHeaders(status, headers, this.connection.maxResponseHeadBytes);
      if (status !== 204 && status !== 304) out['content-length'] = data === null ? 0 : data.length;
      if (bodyless || data === null || data.length === 0) this.stream.respond(out, { endStream: true });
      else {
        this.stream.respond(out);
        this.stream.end(data);
      }
    } catch (err) {
      return this.failed(err); // still New: the client gets an answer that says why
    }
    this.phase = Phase.Finished;
    this.ended();
  }

  writeHead(status: number, _reason: string | null, headers: string[], contentLength: number): void {
    if (this.phase === Phase.Finished) return;
    if (this.phase !== Phase.New) return this.failed(new Error('H2Exchange: writeHead() twice'));
    let out: http2.OutgoingHttpHeaders;
    try {
      out = outgoingHeaders(status, headers, this.connection.maxResponseHeadBytes);
    } catch (err) {
      return this.failed(err);
    }
    const bodyless = status === 204 || status === 304 || this.method === 'HEAD';
    if (contentLength >= 0 && status !== 204 && status !== 304) out['content-length'] = contentLength;
    this.left = bodyless ? -1 : contentLength;
    this.endStreamOnHead = bodyless || contentLength === 0;
    this.pendingHeaders = out;
    this.phase = Phase.HeadPending;
  }

  private flushHead(): boolean {
    const out = this.pendingHeaders!;
    this.pendingHeaders = null;
    try {
      this.stream.respond(out, { endStream: this.endStreamOnHead });
    } catch (err) {
      this.failed(err); // still HeadPending: the client gets an answer that says why
      return false;
    }
    this.phase = Phase.Streaming;
    return true;
  }

  write(chunk: Buffer): boolean {
    if (this.phase === Phase.Finished) return true;
    if (this.phase === Phase.New) {
      this.failed(new Error('H2Exchange: write() before writeHead()'));
      return true;
    }
    if (this.phase === Phase.HeadPending && !this.flushHead()) return true;
    if (this.endStreamOnHead || chunk.length === 0) return true; // HEAD / 204 / 304: no body goes out
    if (this.left >= 0) {
      if (chunk.length > this.left) {
        this.failed(new Error('H2Exchange: response body longer than its Content-Length'));
        return true;
      }
      this.left -= chunk.length;
    }
    const more = this.stream.write(chunk);
    if (!more && !this.waitingDrain) {
      this.waitingDrain = true;
      this.armSendTimer();
    }
    return more;
  }

  end(): void {
    if (this.phase === Phase.Finished) return;
    if (this.phase === Phase.New) return this.failed(new Error('H2Exchange: end() before writeHead()'));
    if (this.left > 0) return this.failed(new Error('H2Exchange: response body shorter than its Content-Length'));
    if (this.phase === Phase.HeadPending && !this.flushHead()) return;
    this.phase = Phase.Finished;
    if (!this.endStreamOnHead) this.stream.end();
    this.ended();
  }

  /** Cuts the response: RST_STREAM, so the client cannot take it for complete. */
  destroy(): void {
    if (this.phase === Phase.Finished && this.stream.closed) return;
    const wasFinished = this.phase === Phase.Finished;
    this.phase = Phase.Finished;
    if (!this.stream.closed) this.stream.close(NGHTTP2_INTERNAL_ERROR);
    if (!wasFinished) this.ended();
  }

  private readonly onDrain = (): void => {
    if (!this.waitingDrain) return;
    this.waitingDrain = false;
    if (this.phase !== Phase.Finished) this.clearSendTimer(); // once ended, it runs until the last byte is taken
    try {
      this.events?.onClientDrain();
    } catch (err) {
      this.failed(err);
    }
  };

  private readonly onClose = (): void => {
    this.clearSendTimer();
    const wasOpen = this.phase !== Phase.Finished;
    const bodyPending = this.sink !== null && !this.bodyDone;
    this.phase = Phase.Finished;
    this.bodyDone = true;
    if (bodyPending) {
      try {
        this.sink!.onBodyError(new Error('the client reset the stream'));
      } catch { /* reported below */ }
    }
    if (wasOpen) {
      this.ended();
      try {
        this.events?.onClientClose();
      } catch (err) {
        this.owner.handlerFailed(err, this);
      }
    }
  };

  /** The response is done (or abandoned): the request body no one reads is stopped. */
  private ended(): void {
    if (!this.bodyDone) this.stopUploadWhenSent();
    // A response ended but not taken yet (a client whose window stays shut) must not keep
    // its stream, and so its session, open forever.
    if (this.stream.bufferSize > 0) this.armSendTimer();
    this.owner.exchangeEnded(this);
  }

  /**
   * RFC 9113 8.1: a complete response may be followed by RST_STREAM(NO_ERROR) to stop the
   * upload. Once the response is out: node's close() would wait for that too, but a stream
   * closed so can no longer be reset by the send timeout when its client never takes the rest.
   */
  private stopUploadWhenSent(): void {
    const s = this.stream;
    if (s.closed) return;
    const stopUpload = () => { if (!s.closed) s.close(NGHTTP2_NO_ERROR); };
    if (s.writableFinished) stopUpload();
    else s.once('finish', stopUpload);
  }

  /** A handler error or misuse: 500 if nothing went out, else a reset; reported to the owner. */
  private failed(err: unknown): void {
    const untouched = this.phase === Phase.New || this.phase === Phase.HeadPending;
    const wasFinished = this.phase === Phase.Finished;
    this.phase = Phase.Finished;
    if (!this.stream.closed) {
      if (untouched && !this.stream.headersSent) {
        try {
          const bad = err instanceof UnsendableHead;
          this.stream.respond({ ':status': bad ? 502 : 500, 'content-type': 'text/plain; charset=utf-8' });
          this.stream.end(bad ? `502 Bad Gateway: ${err.message}\n` : '500 Internal Server Error: the request handler failed\n');
        } catch {
          this.stream.close(NGHTTP2_INTERNAL_ERROR);
        }
      } else this.stream.close(NGHTTP2_INTERNAL_ERROR);
    }
    if (!wasFinished) this.ended();
    this.owner.handlerFailed(err, this);
  }
}

/**
 * Fields node:http2 sends once only (its kSingleValueHeaders; content-length is dropped
 * above): a repeat throws ERR_HTTP2_HEADER_SINGLE_VALUE, where HTTP/1.1 passes both lines on.
 */
const SINGLE_VALUE = new Set(['access-control-allow-credentials', 'access-control-max-age', 'access-control-request-method', 'age', 'authorization',
  'content-encoding', 'content-language', 'content-location', 'content-md5', 'content-range', 'content-type', 'date', 'dnt', 'etag', 'expires',
  'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards',
  'proxy-authorization', 'range', 'referer', 'retry-after', 'tk', 'upgrade-insecure-requests', 'user-agent', 'x-content-type-options']);

/** A response head HTTP/2 cannot carry (a field node sends once, twice with different values): 502, naming it. */
export class UnsendableHead extends Error {}

/**
 * The caller's flat fields as node:http2 takes them: lowercase names, repeats as arrays,
 * connection-specific ones dropped. A head over `maxBytes` (as headerListBytes counts)
 * is refused here: node would send it, and a client that takes less may drop the session.
 */
export function outgoingHeaders(status: number, headers: readonly string[], maxBytes: number): http2.OutgoingHttpHeaders {
  // HTTP/1.1 passes any three digits on; node:http2 throws beyond 599 (ERR_HTTP2_STATUS_INVALID).
  if (status > 599) throw new UnsendableHead(`the backend's status ${status} is not one HTTP/2 can carry (100 to 599)`);
  const out: http2.OutgoingHttpHeaders = { ':status': status };
  let size = STATUS_FIELD_BYTES; // as headerListBytes counts, the fields dropped here left out
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i].toLowerCase();
    if (CONNECTION_SPECIFIC.has(name) || name.charCodeAt(0) === 58) continue;
    const value = headers[i + 1];
    size += name.length + value.length + FIELD_OVERHEAD_BYTES;
    if (size > maxBytes) throw new UnsendableHead(`the response head is over the ${maxBytes} bytes this HTTP/2 client takes (its SETTINGS_MAX_HEADER_LIST_SIZE, or our cap)`);
    const prior = out[name];
    if (prior === undefined) out[name] = value;
    else if (SINGLE_VALUE.has(name)) {
      // The same value twice (a framework and a middleware both saying nosniff): once says it all.
      if (String(prior) !== value) throw new UnsendableHead(`the backend sent two different ${headers[i]} fields (${JSON.stringify(String(prior))} and ${JSON.stringify(value)}); HTTP/2 carries one`);
    }
    else if (Array.isArray(prior)) prior.push(value);
    else out[name] = [String(prior), value];
  }
  return out;
}

function onStreamError(): void {
  // A reset by the client, a session going away: 'close' follows and says what matters.
}
