// The response head parser of the HTTP transport: status line + header fields,
// strict (RFC 9112), with byte scans over the read buffer and one latin1 slice per
// string kept. It decides the framing (Content-Length, chunked, or none declared)
// and whether the connection may be kept; framing and hop-by-hop fields (and those
// named in Connection) never reach the header list. One parser per connection,
// rerun from the head's start when more bytes arrive (bounded by maxHeadBytes).
import { dropNamed } from '../transport.js';
import { COLON, CR, FIELD_VALUE, HTAB, LF, SP, TOKEN, byteName, bytesOf, equalsLower } from '../server/http1/chars.js';

/** `parse` found no complete head yet. */
export const NEED_MORE = 0;
/** `parse` refused the head: `error` says why. */
export const REFUSED = -1;

const HTTP_1 = bytesOf('HTTP/1.');
const H_CONNECTION = bytesOf('connection');
const H_KEEP_ALIVE = bytesOf('keep-alive');
const H_CONTENT_LENGTH = bytesOf('content-length');
const H_TRANSFER_ENCODING = bytesOf('transfer-encoding');
const H_TE = bytesOf('te');
const H_TRAILER = bytesOf('trailer');
const H_UPGRADE = bytesOf('upgrade');
const H_PROXY_CONNECTION = bytesOf('proxy-connection');
const H_PROXY_AUTHENTICATE = bytesOf('proxy-authenticate');
const H_PROXY_AUTHORIZATION = bytesOf('proxy-authorization');

/** Content-Length values up to this many digits fit a double exactly (< 2^53). */
const MAX_LENGTH_DIGITS = 15;

export class ResponseHeadParser {
  // The last parsed head (valid after parse() returned > 0).
  status = 0;
  reason: string | null = null;
  versionMinor = 1;
  /** Flat [name, value, ...] without framing and hop-by-hop fields. */
  headers: string[] = [];
  /** The declared body length; -1: none declared. */
  contentLength = -1;
  chunked = false;
  /** The backend keeps the connection after this response (HTTP/1.1 without close, or 1.0 with keep-alive). */
  keepAlive = true;
  /** Keep-Alive: timeout=N (seconds) as the backend announced it; -1: not announced. */
  keepAliveTimeout = -1;
  /** Why the last parse() refused. */
  error = '';

  constructor(private readonly maxHeadBytes: number) {}

  /**
   * Parses a head starting at `start` in buf[start, end). Returns the offset just past
   * the head's final CRLF, NEED_MORE, or REFUSED.
   */
  parse(buf: Buffer, start: number, end: number): number {
    let p = start;
    // status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF
    if (end - p < 13) {
      // Incomplete, unless what is there already cannot be a status line.
      for (let i = 0; i < end - p && i < 7; i++) if (buf[p + i] !== HTTP_1[i]) return this.notHttp(buf, p, i);
      return this.needMore(start, end);
    }
    for (let i = 0; i < 7; i++) if (buf[p + i] !== HTTP_1[i]) return this.notHttp(buf, p, i);
    const minor = buf[p + 7] - 48;
    if (minor !== 0 && minor !== 1) return this.refuse(`unsupported version HTTP/1.${String.fromCharCode(buf[p + 7])} in the status line`);
    if (buf[p + 8] !== SP) return this.refuse('malformed status line (expected "HTTP/1.1 SP status")');
    const d0 = buf[p + 9] - 48;
    const d1 = buf[p + 10] - 48;
    const d2 = buf[p + 11] - 48;
    if (d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return this.refuse('malformed status code (three digits, 100-999)');
    const status = d0 * 100 + d1 * 10 + d2;
    p += 12;
    let reason: string | null = null;
    if (buf[p] === SP) {
      const rStart = ++p;
      while (p < end && FIELD_VALUE[buf[p]] === 1) p++;
      if (p >= end) return this.needMore(start, end);
      if (buf[p] !== CR) return this.refuse(buf[p] === LF ? 'bare LF ends the status line (lines end with CRLF)' : `invalid byte ${byteName(buf[p])} in the reason phrase`);
      if (p > rStart) reason = buf.latin1Slice(rStart, p);
    } else if (buf[p] !== CR) {
      return this.refuse(buf[p] === LF ? 'bare LF ends the status line (lines end with CRLF)' : `invalid byte ${byteName(buf[p])} after the status code`);
    }
    if (p + 1 >= end) return this.needMore(start, end);
    if (buf[p + 1] !== LF) return this.refuse('bare CR in the status line');
    p += 2;

    const headers: string[] = [];
    let contentLength = -1;
    let teSeen = false;
    let connClose = false;
    let connKeepAlive = false;
    let keepAliveTimeout = -1;
    /** Tokens of Connection other than close / keep-alive: fields to drop as hop-by-hop. */
    let named: string[] | null = null;
    let fields = 0;
    for (;;) {
      if (p >= end) return this.needMore(start, end);
      const c = buf[p];
      if (c === CR) {
        if (p + 1 >= end) return this.needMore(start, end);
        if (buf[p + 1] !== LF) return this.refuse('bare CR in the response head (lines end with CRLF)');
        p += 2;
        break;
      }
      if (c === LF) return this.refuse('bare LF ends a header line (lines end with CRLF)');
      if (c === SP || c === HTAB) return this.refuse(fields === 0 ? 'whitespace before the first header field' : 'obsolete line folding (a header line starting with whitespace)');
      const nStart = p;
      while (p < end && TOKEN[buf[p]] === 1) p++;
      if (p >= end) return this.needMore(start, end);
      if (buf[p] !== COLON) {
        const b = buf[p];
        if (b === SP || b === HTAB) return this.refuse('whitespace between a header name and its colon');
        if (b === CR || b === LF) return this.refuse('header line without a colon');
        return this.refuse(`invalid byte ${byteName(b)} in a header name`);
      }
      if (p === nStart) return this.refuse('empty header name');
      const nEnd = p;
      p++;
      while (p < end && (buf[p] === SP || buf[p] === HTAB)) p++;
      const vStart = p;
      while (p < end && FIELD_VALUE[buf[p]] === 1) p++;
      if (p >= end) return this.needMore(start, end);
      if (buf[p] !== CR) {
        if (buf[p] === LF) return this.refuse('bare LF ends a header line (lines end with CRLF)');
        return this.refuse(`invalid byte ${byteName(buf[p])} in the value of header ${buf.latin1Slice(nStart, nEnd)}`);
      }
      if (p + 1 >= end) return this.needMore(start, end);
      if (buf[p + 1] !== LF) return this.refuse('bare CR in a header value');
      let vEnd = p;
      while (vEnd > vStart && (buf[vEnd - 1] === SP || buf[vEnd - 1] === HTAB)) vEnd--;
      p += 2;
      fields++;
      if (p - start > this.maxHeadBytes) return this.refuse(`response head larger than ${this.maxHeadBytes} bytes`);

      // Framing and hop-by-hop fields are read here and never forwarded.
      switch (nEnd - nStart) {
        case 2:
          if (equalsLower(buf, nStart, H_TE)) continue;
          break;
        case 7:
          if (equalsLower(buf, nStart, H_TRAILER) || equalsLower(buf, nStart, H_UPGRADE)) continue;
          break;
        case 10:
          if (equalsLower(buf, nStart, H_CONNECTION)) {
            for (const token of buf.latin1Slice(vStart, vEnd).toLowerCase().split(',')) {
              const t = token.trim();
              if (t === 'close') connClose = true;
              else if (t === 'keep-alive') connKeepAlive = true;
              else if (t !== '') (named ??= []).push(t);
            }
            continue;
          }
          if (equalsLower(buf, nStart, H_KEEP_ALIVE)) {
            const m = /(?:^|[,;\s])timeout\s*=\s*(\d{1,6})/i.exec(buf.latin1Slice(vStart, vEnd));
            if (m) keepAliveTimeout = Number(m[1]);
            continue;
          }
          break;
        case 14:
          if (equalsLower(buf, nStart, H_CONTENT_LENGTH)) {
            if (vEnd === vStart) return this.refuse('empty Content-Length');
            let n = 0;
            let digits = 0;
            for (let i = vStart; i < vEnd; i++) {
              const d = buf[i] - 48;
              if (d < 0 || d > 9) return this.refuse(`Content-Length is not a decimal number: ${JSON.stringify(buf.latin1Slice(vStart, vEnd))}`);
              if (n !== 0 || d !== 0) digits++;
              n = n * 10 + d;
            }
            if (digits > MAX_LENGTH_DIGITS) return this.refuse('Content-Length too large');
            // The same value twice is one length (RFC 9110 §8.6); two different ones frame nothing.
            if (contentLength !== -1 && contentLength !== n) return this.refuse(`two different Content-Lengths (${contentLength} and ${n})`);
            contentLength = n;
            continue;
          }
          break;
        case 16:
          if (equalsLower(buf, nStart, H_PROXY_CONNECTION)) continue;
          break;
        case 17:
          if (equalsLower(buf, nStart, H_TRANSFER_ENCODING)) {
            if (teSeen) return this.refuse('two Transfer-Encoding header fields');
            teSeen = true;
            const value = buf.latin1Slice(vStart, vEnd);
            // Only chunked, alone: another coding would reach the client undeclared once the framing is dropped.
            if (value.toLowerCase() !== 'chunked') return this.refuse(`Transfer-Encoding ${JSON.stringify(value)} is not supported (only "chunked")`);
            continue;
          }
          break;
        case 18:
          if (equalsLower(buf, nStart, H_PROXY_AUTHENTICATE)) continue;
          break;
        case 19:
          if (equalsLower(buf, nStart, H_PROXY_AUTHORIZATION)) continue;
          break;
      }
      headers.push(buf.latin1Slice(nStart, nEnd), buf.latin1Slice(vStart, vEnd));
    }
    // Both framings at once is how responses are split (RFC 9112 §6.3): refused, as llhttp does.
    if (teSeen && contentLength !== -1) return this.refuse('both Content-Length and Transfer-Encoding');

    this.status = status;
    this.reason = reason;
    this.versionMinor = minor;
    this.headers = named === null ? headers : dropNamed(headers, named);
    this.contentLength = contentLength;
    this.chunked = teSeen;
    // Transfer-Encoding in an HTTP/1.0 message means its framing is faulty (RFC 9112 §6.1): decoded, then the connection is closed.
    this.keepAlive = !connClose && (minor === 1 || connKeepAlive) && !(teSeen && minor === 0);
    this.keepAliveTimeout = keepAliveTimeout;
    return p;
  }

  /** The bytes up to the first that differs from "HTTP/1." (at `i`) are named: the same however they came in pieces. */
  private notHttp(buf: Buffer, p: number, i: number): number {
    return this.refuse(`the response does not start with "HTTP/1." (got ${JSON.stringify(buf.latin1Slice(p, p + i + 1))})`);
  }

  private needMore(start: number, end: number): number {
    if (end - start > this.maxHeadBytes) return this.refuse(`response head larger than ${this.maxHeadBytes} bytes`);
    return NEED_MORE;
  }

  private refuse(reason: string): number {
    this.error = reason;
    return REFUSED;
  }
}

