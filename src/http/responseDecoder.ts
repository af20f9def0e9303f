// One response from an HTTP/1.1 backend, decoded from the bytes as they come: the
// head (interim 1xx skipped, 101 refused), then the body framed by Content-Length,
// chunked coding (extensions and trailers checked and dropped), the connection's end,
// or nothing (HEAD, 204, 304). Body bytes are handed out as views of the read buffer.
// No socket here: the connection pushes what it reads and decides what to do with
// the connection once the response is complete, failed, or followed by more bytes.
import { ChunkedDecoder } from '../server/http1/chunked.js';
import type { ResponseHead } from '../transport.js';
import { NEED_MORE, REFUSED, ResponseHeadParser } from './responseHead.js';

export interface ResponseSink {
  /** The final response head. false: stop here (the sink gave up the response). */
  onResponseHead(head: ResponseHead): boolean;
  /** Body bytes (a view of the read buffer). false: stop here (pause, or gave up). */
  onResponseBody(chunk: Buffer): boolean;
}

const enum Framing { None, Length, Chunked, Close }
const enum State { Head, Body, Done, Failed }

const HEAD_END = '\r\n\r\n';
const MAX_TRAILER_BYTES = 16 * 1024;
const MAX_TRAILER_COUNT = 100;

export class ResponseDecoder {
  private readonly head: ResponseHeadParser;
  private chunked: ChunkedDecoder | null = null;
  private state = State.Head;
  private framing = Framing.None;
  private isHeadRequest = false;
  /** Body bytes still due (Content-Length framing). */
  private remaining = 0;
  /**
   * The head so far, when it came in pieces: headBuf[0, headLen), grown by doubling so
   * each byte is copied a bounded number of times. The parser runs on it again only when
   * the pieces may hold the head's end (a blank line came) or their bytes doubled since
   * it last ran: rerunning it on every read was quadratic, and a backend trickling a head
   * of max-head-bytes (1 MB) a few bytes a write held the front's CPU for minutes.
   */
  private headBuf: Buffer | null = null;
  private headLen = 0;
  /** headLen when the parser last ran on the pieces. */
  private parsedLen = 0;
  private readonly maxHeadBytes: number;
  /** After a failure: 'head' (the response head is invalid) or 'protocol' (the framing is). */
  errorKind: 'head' | 'protocol' = 'head';
  error = '';
  /** Any byte of this response came (interim responses count). */
  anyByte = false;
  /** The final head was read (body bytes may follow). */
  headSeen = false;
  /** Body bytes handed to the sink (chunk framing, extensions and trailers not counted). */
  bodyBytes = 0;

  constructor(private readonly sink: ResponseSink, maxHeadBytes: number) {
    this.head = new ResponseHeadParser(maxHeadBytes);
    this.maxHeadBytes = maxHeadBytes;
  }

  /** A new response is due, to a request with method HEAD or not. */
  begin(isHeadRequest: boolean): void {
    this.state = State.Head;
    this.isHeadRequest = isHeadRequest;
    this.headBuf = null;
    this.anyByte = false;
    this.headSeen = false;
    this.bodyBytes = 0;
    this.error = '';
  }

  get complete(): boolean { return this.state === State.Done; }
  get failed(): boolean { return this.state === State.Failed; }
  /** The response ends where the connection ends (no length declared). */
  get closeDelimited(): boolean { return this.state === State.Body && this.framing === Framing.Close; }
  /** Both sides keep the connection after this response (read once complete). */
  get keepAlive(): boolean { return this.head.keepAlive && this.framing !== Framing.Close; }
  /** The backend's Keep-Alive timeout in seconds, or -1. */
  get keepAliveTimeout(): number { return this.head.keepAliveTimeout; }
  get declaredLength(): number { return this.head.contentLength; }
  /** Body bytes received of a Content-Length body. */
  get lengthReceived(): number { return this.head.contentLength - this.remaining; }
  get lengthFramed(): boolean { return this.framing === Framing.Length; }
  /**
   * Bytes of the final response came: its head was read, or a head in pieces whose status
   * does not start with 1 ("HTTP/1.x 2..."). Interim responses (100, 102, 103) are not the
   * answer: they do not count as progress for the read timeout.
   */
  get finalStarted(): boolean {
    if (this.headSeen) return true;
    const b = this.headBuf;
    return b !== null && this.headLen > 9 && b[9] !== 0x31;
  }

  /**
   * Decodes buf[pos, end). Returns the position reached: buf.length when every byte was
   * taken (or kept for a head in pieces); less when the response completed with bytes
   * after it, the sink said stop (the rest is pushed again later), or it failed.
   */
  push(buf: Buffer, pos: number): number {
    const result = this.decode(buf, pos);
    // Positions in a head joined from pieces count from the earlier piece's bytes: the caller's are after them.
    const shift = this.shift;
    this.shift = 0;
    return result - shift;
  }

  /** While decode() works on a head joined with its earlier pieces: how many of its bytes came before the caller's buffer. */
  private shift = 0;

  private decode(buf: Buffer, pos: number): number {
    let end = buf.length;
    if (pos < end) this.anyByte = true;
    const sink = this.sink;
    for (;;) {
      switch (this.state) {
        case State.Head: {
          if (pos >= end) return end;
          if (this.headBuf !== null) {
            const before = this.headLen;
            const joined = this.append(buf, pos, end);
            // CR LF CR LF ends every valid head: look for it in the new bytes (and the 3 before them).
            const ended = joined.indexOf(HEAD_END, Math.max(0, before - 3), 'latin1') >= 0;
            if (!ended && this.headLen < 2 * this.parsedLen && this.headLen <= this.maxHeadBytes) return end;
            this.shift = before - pos;
            this.headBuf = null;
            buf = joined;
            pos = 0;
            end = buf.length;
          }
          const parser = this.head;
          const r = parser.parse(buf, pos, end);
          if (r === NEED_MORE) {
            this.keep(buf, pos, end);
            return end;
          }
          if (r === REFUSED) return this.fail('head', `backend sent an invalid response head: ${parser.error}`, pos);
          const status = parser.status;
          if (status < 200) {
            // The front never switches protocols: a 101 would hand the connection to bytes it cannot frame.
            if (status === 101) return this.fail('head', 'backend answered 101 Switching Protocols; upgrades are not proxied', pos);
            pos = r;
            continue; // an interim response (100 Continue, 102, 103 Early Hints): the final one follows
          }
          pos = r;
          if (this.isHeadRequest || status === 204 || status === 304) this.framing = Framing.None;
          else if (parser.chunked) this.framing = Framing.Chunked;
          else if (parser.contentLength > 0) this.framing = Framing.Length;
          else if (parser.contentLength === 0) this.framing = Framing.None;
          else this.framing = Framing.Close;
          this.remaining = parser.contentLength;
          if (this.framing === Framing.Chunked) {
            if (this.chunked === null) this.chunked = new ChunkedDecoder(MAX_TRAILER_BYTES, MAX_TRAILER_COUNT);
            else this.chunked.reset();
          }
          this.state = this.framing === Framing.None ? State.Done : State.Body;
          this.headSeen = true;
          if (!sink.onResponseHead({ status, reason: parser.reason, headers: parser.headers, contentLength: parser.contentLength })) return pos;
          if (this.state === State.Done) return pos;
          continue;
        }
        case State.Body: {
          if (pos >= end) return end;
          let n: number;
          switch (this.framing) {
            case Framing.Length:
              n = Math.min(this.remaining, end - pos);
              this.remaining -= n;
              if (this.remaining === 0) this.state = State.Done;
              break;
            case Framing.Chunked: {
              const d = this.chunked!;
              if (!d.inData) {
                pos = d.parse(buf, pos, end);
                if (d.failed) return this.fail('protocol', `backend sent invalid chunked framing: ${d.error}`, pos);
                if (d.done) {
                  this.state = State.Done;
                  return pos;
                }
                if (!d.inData || pos >= end) return end;
              }
              n = Math.min(d.remaining, end - pos);
              d.consumed(n);
              break;
            }
            default:
              n = end - pos; // until the connection ends
          }
          const chunk = pos === 0 && n === end ? buf : buf.subarray(pos, pos + n);
          pos += n;
          this.bodyBytes += n;
          if (!sink.onResponseBody(chunk)) return pos;
          if (this.state === State.Done) return pos;
          continue;
        }
        default:
          return pos;
      }
    }
  }

  /** Starts the pieces of a head with buf[pos, end) (copied: a read buffer is not held on to for a few bytes of it). */
  private keep(buf: Buffer, pos: number, end: number): void {
    const n = end - pos;
    const b = Buffer.allocUnsafe(Math.max(1024, 2 * n));
    buf.copy(b, 0, pos, end);
    this.headBuf = b;
    this.headLen = n;
    this.parsedLen = n;
  }

  /** Adds buf[pos, end) to the head's pieces; returns the bytes so far. */
  private append(buf: Buffer, pos: number, end: number): Buffer {
    let b = this.headBuf!;
    const len = this.headLen + end - pos;
    if (len > b.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * b.length, len));
      b.copy(grown, 0, 0, this.headLen);
      this.headBuf = b = grown;
    }
    buf.copy(b, this.headLen, pos, end);
    this.headLen = len;
    return b.subarray(0, len);
  }

  /** The connection ended: a close-delimited body is complete; anything else is cut. Returns whether the response is complete. */
  eof(): boolean {
    if (this.state === State.Body && this.framing === Framing.Close) this.state = State.Done;
    return this.state === State.Done;
  }

  private fail(kind: 'head' | 'protocol', message: string, pos: number): number {
    this.state = State.Failed;
    this.errorKind = kind;
    this.error = message;
    return pos;
  }
}
