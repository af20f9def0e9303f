// One request and its response: the only object the layer makes per request.
// The request side is read-only data from the head plus readBody(); the response
// side frames what the caller gives (Content-Length, chunked or close-delimited)
// and writes head and first bytes together.
import type { Http1Connection } from './connection.js';
import { CONN_CLOSE, connectionOptions, type HeadParser } from './head.js';
import { dateHeaderLine, statusLine } from './wire.js';

/** Receives the request body, with backpressure. */
/** Why a request body will not complete, with the status the layer answers if the handler does not. */
export class BodyError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface BodySink {
  /**
   * A piece of the body: a view of the connection's read buffer (no copy). The layer
   * never reuses that memory, so the view may be kept or handed to socket.write();
   * keeping it keeps the whole read buffer alive. Return false to pause until resumeBody().
   */
  onBodyData(chunk: Buffer): boolean;
  /** The whole body was delivered. */
  onBodyEnd(): void;
  /** The body will not complete: client gone, body timeout, malformed chunked framing, over maxBodyBytes. */
  onBodyError(err: Error): void;
}

/** What the client does to the response in progress. */
export interface ClientEvents {
  /** The socket took the data buffered since write() returned false. */
  onClientDrain(): void;
  /** The connection closed before this response ended (client left, send timeout). */
  onClientClose(): void;
}

/** Where the response is; the connection reads it too. */
export const enum Phase {
  /** Nothing decided yet. */
  New,
  /** writeHead() was called; the head goes out with the first write()/end(). */
  HeadPending,
  /** The head was handed to the socket. */
  HeadWritten,
  /** end()/respond() done, or the layer ended it (refusal, cut, client gone). */
  Finished,
}

const enum Framing {
  /** HEAD request, 1xx/204/304: no body is sent whatever is written. */
  None,
  Length,
  Chunked,
  /** HTTP/1.0 client, length unknown: the body ends when the connection closes. */
  Close,
}

export class Http1Exchange {
  /** The connection the request came on (addresses cached once per connection). */
  readonly connection: Http1Connection;
  /** The method as sent (one of node's known methods). */
  readonly method: string;
  /** The request-target as sent (latin1 string of its bytes). */
  readonly target: string;
  readonly versionMinor: 0 | 1;
  /** Flat [name, value, ...] as received: names in their case, values without surrounding OWS, latin1. */
  readonly headers: string[];
  readonly host: string | undefined;
  readonly contentType: string | undefined;
  /** Body length; -1 when chunked; 0 when there is no body. */
  readonly contentLength: number;
  readonly chunked: boolean;
  /** The client sent Expect: 100-continue (HTTP/1.1 only); readBody() answers it. */
  readonly expectContinue: boolean;
  /** The client wants the connection kept after this response. */
  readonly keepAlive: boolean;

  /** @internal */ phase = Phase.New;
  /** @internal */ sink: BodySink | null = null;
  /** @internal */ events: ClientEvents | null = null;
  /** @internal */ continueSent = false;
  /** @internal The connection closes after this response (decided with the head). */
  closeAfter = false;
  private framing = Framing.None;
  /** Body bytes still to send under Length framing. */
  private left = 0;
  private pendingStatus = 0;
  private pendingReason: string | null = null;
  private pendingHeaders: string[] | null = null;
  private pendingLength = 0;

  /** @internal Made by the connection from its parser's last head. */
  constructor(connection: Http1Connection, head: HeadParser) {
    this.connection = connection;
    this.method = head.method;
    this.target = head.target;
    this.versionMinor = head.versionMinor;
    this.headers = head.headers;
    this.host = head.host;
    this.contentType = head.contentType;
    this.contentLength = head.contentLength;
    this.chunked = head.chunked;
    this.expectContinue = head.expectContinue;
    this.keepAlive = head.keepAlive;
  }

  /** writeHead() or respond() was called. */
  get headersSent(): boolean { return this.phase !== Phase.New; }
  /** The response ended (by the caller, or by the layer: refusal, cut, client gone). */
  get finished(): boolean { return this.phase === Phase.Finished; }

  // ---- request body

  /**
   * Starts delivering the body to `sink` (at once when bytes are buffered; onBodyEnd
   * at once when there is no body). Sends `100 Continue` first when the client asked
   * for it and nothing was answered yet.
   */
  readBody(sink: BodySink): void {
    if (this.sink !== null || this.phase === Phase.Finished) return;
    this.sink = sink;
    this.connection.startBody(this);
  }

  /** Stops reading the body until resumeBody() (as onBodyData returning false). */
  pauseBody(): void {
    this.connection.pauseBody(this);
  }

  resumeBody(): void {
    this.connection.resumeBody(this);
  }

  setClientEvents(events: ClientEvents): void {
    this.events = events;
  }

  // ---- response

  /**
   * The whole response in one socket write: Content-Length from `body` (a string is
   * sent as UTF-8). HEAD: the same head, no body; 204/304: no body, no framing.
   */
  respond(status: number, reason: string | null, headers: string[], body: Buffer | string | null): void {
    if (this.phase === Phase.Finished) return;
    if (this.phase !== Phase.New) return this.connection.misuse(this, 'respond() after writeHead()');
    if (!(status >= 200 && status <= 999)) return this.connection.misuse(this, `respond() with status ${status} (200-999; 1xx go through writeInformational())`);
    const data = body === null ? null : typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const length = data === null ? 0 : data.length;
    const bodyless = status === 204 || status === 304;
    const head = this.buildHead(status, reason, headers, bodyless ? '' : `Content-Length: ${length}\r\n`, false);
    this.phase = Phase.HeadWritten;
    this.connection.send(head, bodyless || this.method === 'HEAD' ? null : data, null);
    this.finish();
  }

  /**
   * Sets the response head; it is written with the first write()/end(). contentLength
   * -1: unknown, sent chunked to HTTP/1.1 clients and close-delimited to HTTP/1.0 ones.
   */
  writeHead(status: number, reason: string | null, headers: string[], contentLength: number): void {
    if (this.phase === Phase.Finished) return;
    if (this.phase !== Phase.New) return this.connection.misuse(this, 'writeHead() twice');
    if (!(status >= 200 && status <= 999)) return this.connection.misuse(this, `writeHead() with status ${status} (200-999; 1xx go through writeInformational())`);
    this.pendingStatus = status;
    this.pendingReason = reason;
    this.pendingHeaders = headers;
    this.pendingLength = contentLength;
    if (status === 204 || status === 304 || this.method === 'HEAD') this.framing = Framing.None;
    else if (contentLength >= 0) {
      this.framing = Framing.Length;
      this.left = contentLength;
    } else this.framing = this.versionMinor === 1 ? Framing.Chunked : Framing.Close;
    this.phase = Phase.HeadPending;
  }

  /**
   * An interim 1xx response (103 Early Hints...) before the final one; dropped for
   * HTTP/1.0 clients, which do not expect them. 101 is refused: the layer never switches protocols.
   */
  writeInformational(status: number, reason: string | null, headers: string[]): void {
    if (this.phase !== Phase.New) return;
    if (!(status >= 100 && status <= 199) || status === 101) return this.connection.misuse(this, `writeInformational() with status ${status}`);
    if (this.versionMinor === 0) return;
    let head = statusLine(status, reason);
    for (let i = 0; i + 1 < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    if (status === 100) this.continueSent = true;
    this.connection.send(head + '\r\n', null, null);
  }

  /** Sends a piece of the body. false: wait for ClientEvents.onClientDrain before writing more. */
  write(chunk: Buffer): boolean {
    if (this.phase === Phase.Finished) return true;
    if (this.phase === Phase.New) {
      this.connection.misuse(this, 'write() before writeHead()');
      return true;
    }
    if (this.framing === Framing.Length && chunk.length > this.left) {
      // Never past the declared length: cut instead (500 if nothing went out yet).
      this.connection.misuse(this, 'response body longer than its Content-Length');
      return true;
    }
    const head = this.phase === Phase.HeadPending ? this.flushHead() : null;
    switch (this.framing) {
      case Framing.Length:
        this.left -= chunk.length;
        return this.connection.send(head, chunk, null);
      case Framing.Chunked:
        if (chunk.length === 0) return head === null || this.connection.send(head, null, null);
        return this.connection.send(`${head ?? ''}${chunk.length.toString(16)}\r\n`, chunk, '\r\n');
      case Framing.Close:
        return this.connection.send(head, chunk, null);
      default:
        return head === null || this.connection.send(head, null, null);
    }
  }

  /** Ends the response: the last piece, the terminator and (if still pending) the head in one write. */
  end(chunk?: Buffer): void {
    if (this.phase === Phase.Finished) return;
    if (this.phase === Phase.New) return this.connection.misuse(this, 'end() before writeHead()');
    const data = chunk !== undefined && chunk.length > 0 ? chunk : null;
    if (this.framing === Framing.Length && (data === null ? 0 : data.length) !== this.left) {
      // A wrong length never ends a response on a kept connection: cut (500 if nothing went out yet).
      const longer = (data === null ? 0 : data.length) > this.left;
      return this.connection.misuse(this, longer ? 'response body longer than its Content-Length' : 'response body shorter than its Content-Length');
    }
    const head = this.phase === Phase.HeadPending ? this.flushHead() : null;
    switch (this.framing) {
      case Framing.Length:
        this.left = 0;
        this.connection.send(head, data, null);
        break;
      case Framing.Chunked:
        if (data === null) this.connection.send(head, null, '0\r\n\r\n');
        else this.connection.send(`${head ?? ''}${data.length.toString(16)}\r\n`, data, '\r\n0\r\n\r\n');
        break;
      case Framing.Close:
        this.connection.send(head, data, null);
        break;
      default:
        if (head !== null) this.connection.send(head, null, null);
    }
    this.finish();
  }

  /** @internal A cut of this response shows in its framing: a Content-Length not reached, a chunked body without its last chunk. */
  get cutShowsInFraming(): boolean {
    return this.framing !== Framing.Close;
  }

  /**
   * Cuts the connection: the client cannot take the response for complete (a close
   * where the framing shows the cut, a TCP reset where it would not).
   */
  destroy(): void {
    if (this.phase === Phase.Finished) return;
    this.phase = Phase.Finished;
    this.connection.cut(this);
  }

  private finish(): void {
    this.phase = Phase.Finished;
    this.connection.responseEnded(this);
  }

  private flushHead(): string {
    this.phase = Phase.HeadWritten;
    const headers = this.pendingHeaders!;
    this.pendingHeaders = null;
    let framingLine = '';
    if (this.framing === Framing.Length) framingLine = `Content-Length: ${this.pendingLength}\r\n`;
    else if (this.framing === Framing.Chunked) framingLine = 'Transfer-Encoding: chunked\r\n';
    else if (this.framing === Framing.None && this.method === 'HEAD' && this.pendingLength >= 0 && this.pendingStatus !== 204 && this.pendingStatus !== 304) {
      framingLine = `Content-Length: ${this.pendingLength}\r\n`;
    }
    return this.buildHead(this.pendingStatus, this.pendingReason, headers, framingLine, this.framing === Framing.Close);
  }

  /**
   * Status line, Date (unless the caller gives one), the caller's fields minus
   * Content-Length / Transfer-Encoding / Connection (the layer owns framing and the
   * connection; a caller's `Connection: close` is honoured), the framing line, and
   * `Connection: close` or (HTTP/1.0) `Connection: keep-alive`.
   */
  private buildHead(status: number, reason: string | null, headers: string[], framingLine: string, closeDelimited: boolean): string {
    let m: HeadMemo | null = null;
    for (let k = 0; k < HEAD_MEMOS.length; k++) if (HEAD_MEMOS[k].headers === headers) { m = HEAD_MEMOS[k]; break; }
    if (m === null) {
      m = HEAD_MEMOS[headMemoNext];
      headMemoNext = (headMemoNext + 1) % HEAD_MEMOS.length;
      m.headers = headers;
      m.head = null;
      // The fields of this header list; a proxy hands the same list to responses whose heads repeat.
      let hasDate = false;
      let callerClose = false;
      let fields = '';
      for (let i = 0; i + 1 < headers.length; i += 2) {
        const name = headers[i];
        switch (name.length) {
          case 4:
            if (sameName(name, 'date')) hasDate = true;
            break;
          case 10:
            if (sameName(name, 'connection')) {
              if (connectionOptions(headers[i + 1]) & CONN_CLOSE) callerClose = true;
              continue;
            }
            break;
          case 14:
            if (sameName(name, 'content-length')) continue;
            break;
          case 17:
            if (sameName(name, 'transfer-encoding')) continue;
            break;
        }
        fields += `${name}: ${headers[i + 1]}\r\n`;
      }
      m.fields = fields;
      m.hasDate = hasDate;
      m.callerClose = callerClose;
      m.head = null;
    }
    const close = closeDelimited || !this.keepAlive || m.callerClose || this.connection.mustCloseAfter(this);
    this.closeAfter = close;
    const connectionLine = close ? 'Connection: close\r\n' : this.versionMinor === 0 ? 'Connection: keep-alive\r\n' : '';
    const date = m.hasDate ? '' : dateHeaderLine();
    if (m.head !== null && m.status === status && m.reason === reason && m.framingLine === framingLine && m.connectionLine === connectionLine && m.date === date) return m.head;
    const head = `${statusLine(status, reason)}${date}${m.fields}${framingLine}${connectionLine}\r\n`;
    m.status = status;
    m.reason = reason;
    m.framingLine = framingLine;
    m.connectionLine = connectionLine;
    m.date = date;
    m.head = head;
    return head;
  }
}

/**
 * Per header list (a proxy hands the same list to responses whose heads repeat, one per
 * backend connection): its fields, and the last head built from it, reused whole while
 * status, framing, connection line and Date second are the same.
 */
interface HeadMemo {
  headers: string[] | null; fields: string; hasDate: boolean; callerClose: boolean;
  status: number; reason: string | null; framingLine: string; connectionLine: string; date: string; head: string | null;
}
/** A few slots, replaced in turn: enough for the backends' repeating heads, nothing kept for one-off lists. */
const HEAD_MEMOS: HeadMemo[] = Array.from({ length: 8 }, () => ({
  headers: null, fields: '', hasDate: false, callerClose: false, status: 0, reason: null, framingLine: '', connectionLine: '', date: '', head: null,
}));
let headMemoNext = 0;

/** ASCII case-insensitive equality with a lowercase name of the same length. */
function sameName(name: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}
