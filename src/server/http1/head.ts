// The request head parser: request line + header fields, strict (RFC 9112), with
// byte scans over the read buffer and one latin1 slice per string kept. One
// HeadParser per connection, reused for every request on it; `parse` reruns from
// the start of the head when more bytes arrive (the connection only reruns it when
// a new line has completed, so a slow client costs O(lines × head), bounded).
import { METHODS } from 'node:http';
import { ALPHA, AUTHORITY, COLON, CR, FIELD_VALUE, HTAB, LF, SP, TARGET, TOKEN, byteName, bytesOf, equalsLower } from './chars.js';

/** `parse` found no complete head yet. */
export const NEED_MORE = 0;
/** `parse` refused the head: `errorStatus` and `errorReason` say why. */
export const REFUSED = -1;

export interface HeadLimits {
  maxUriBytes: number;
  maxHeaderBytes: number;
  maxHeaderCount: number;
  /** 0 = unlimited. */
  maxBodyBytes: number;
}

/** Node's method list (llhttp's, as http.METHODS shows it), minus CONNECT which is answered 501. */
export const KNOWN_METHODS = new Set(METHODS.filter((m) => m !== 'CONNECT'));
/** No known method is longer; a longer token is refused without waiting for its end. */
const MAX_METHOD_BYTES = Math.max(...METHODS.map((m) => m.length));

const H_HOST = bytesOf('host');
const H_EXPECT = bytesOf('expect');
const H_CONNECTION = bytesOf('connection');
const H_CONTENT_TYPE = bytesOf('content-type');
const H_CONTENT_LENGTH = bytesOf('content-length');
const H_TRANSFER_ENCODING = bytesOf('transfer-encoding');
const V_CHUNKED = bytesOf('chunked');
const V_100_CONTINUE = bytesOf('100-continue');
const HTTP_SLASH = bytesOf('HTTP/');

/** Content-Length values up to this many digits fit a double exactly (< 2^53). */
const MAX_LENGTH_DIGITS = 15;

export class HeadParser {
  // The last parsed head (valid after parse() returned > 0).
  method = '';
  target = '';
  versionMinor: 0 | 1 = 1;
  headers: string[] = [];
  host: string | undefined = undefined;
  contentType: string | undefined = undefined;
  /** Body length; -1 when chunked; 0 when no body. */
  contentLength = 0;
  chunked = false;
  expectContinue = false;
  keepAlive = true;
  // Why the last parse() refused.
  errorStatus = 0;
  errorReason = '';

  constructor(private readonly limits: HeadLimits) {}

  /**
   * Parses the head starting at `start` in `buf` (up to its end). Returns the offset
   * just past the head's final CRLF, NEED_MORE, or REFUSED.
   */
  parse(buf: Buffer, start: number): number {
    const end = buf.length;
    const limits = this.limits;
    let p = start;
    // RFC 9112 §2.2: ignore empty lines (CRLF, or LF as node takes them) before the request line.
    while (p < end && (buf[p] === CR || buf[p] === LF)) {
      if (buf[p] === LF) {
        p++;
        continue;
      }
      if (p + 1 >= end) return this.needMore(start, end);
      if (buf[p + 1] !== LF) return this.refuse(400, 'bare CR before the request line');
      p += 2;
    }
    if (p >= end) return this.needMore(start, end);

    // method SP
    const mStart = p;
    while (p < end && TOKEN[buf[p]] === 1) {
      if (p - mStart >= MAX_METHOD_BYTES) return this.refuse(501, 'unknown method');
      p++;
    }
    if (p >= end) return this.needMore(start, end);
    if (buf[p] !== SP) {
      if (p === mStart) return this.refuse(400, `invalid byte ${byteName(buf[p])} at the start of the request line`);
      return this.refuse(400, `invalid byte ${byteName(buf[p])} in the method (the request line is METHOD SP TARGET SP HTTP/1.1)`);
    }
    const method = methodName(buf, mStart, p);
    p++;

    // request-target SP
    const tStart = p;
    while (p < end && TARGET[buf[p]] === 1) p++;
    if (p - tStart > limits.maxUriBytes) return this.refuse(414, `request target longer than ${limits.maxUriBytes} bytes`);
    if (p >= end) return this.needMore(start, end);
    if (buf[p] !== SP) {
      if (p === tStart) return this.refuse(400, 'empty request target (one SP between method and target)');
      if (buf[p] === CR || buf[p] === LF) return this.refuse(400, 'no HTTP version in the request line');
      return this.refuse(400, `invalid byte ${byteName(buf[p])} in the request target`);
    }
    const tEnd = p;
    p++;

    // HTTP-version CRLF: exactly "HTTP/" DIGIT "." DIGIT CRLF
    if (end - p < 10) {
      // Incomplete, unless a line end already shows it malformed.
      for (let i = p; i < end; i++) if (buf[i] === LF) return this.refuse(400, 'malformed HTTP version');
      for (let i = 0; i < end - p && i < 5; i++) if (buf[p + i] !== HTTP_SLASH[i]) return this.refuse(400, 'malformed HTTP version');
      return this.needMore(start, end);
    }
    for (let i = 0; i < 5; i++) if (buf[p + i] !== HTTP_SLASH[i]) return this.refuse(400, 'malformed HTTP version');
    const major = buf[p + 5] - 48;
    const minor = buf[p + 7] - 48;
    if (major < 0 || major > 9 || minor < 0 || minor > 9 || buf[p + 6] !== 0x2e) return this.refuse(400, 'malformed HTTP version');
    if (buf[p + 8] !== CR || buf[p + 9] !== LF) {
      if (buf[p + 8] === LF) return this.refuse(400, 'bare LF ends the request line (lines end with CRLF)');
      return this.refuse(400, 'malformed HTTP version');
    }
    if (major !== 1 || minor > 1) {
      return this.refuse(505, major === 2 ? 'HTTP/2 is not served here; use HTTP/1.1' : `HTTP/${major}.${minor} is not supported; use HTTP/1.1`);
    }
    p += 10;
    if (method === '') {
      const name = buf.latin1Slice(mStart, tStart - 1);
      return this.refuse(501, name === 'CONNECT' ? 'CONNECT is not supported (this server is not a forward proxy)' : `unknown method ${name}`);
    }
    const targetError = checkTargetForm(buf, tStart, tEnd);
    if (targetError !== null) return this.refuse(400, targetError);

    // header fields, then the empty line
    const headers: string[] = [];
    let count = 0;
    let host: string | undefined;
    let contentType: string | undefined;
    let contentLength = -1;
    let teSeen = false;
    let teChunked = false;
    let connClose = false;
    let connKeepAlive = false;
    let expectContinue = false;
    let expectOther = false;
    for (;;) {
      if (p >= end) return this.needMore(start, end);
      const c = buf[p];
      if (c === CR) {
        if (p + 1 >= end) return this.needMore(start, end);
        if (buf[p + 1] !== LF) return this.refuse(400, 'bare CR in the request head (lines end with CRLF)');
        p += 2;
        break;
      }
      if (c === LF) return this.refuse(400, 'bare LF ends a header line (lines end with CRLF)');
      if (c === SP || c === HTAB) return this.refuse(400, count === 0 ? 'whitespace before the first header field' : 'obsolete line folding (a header line starting with whitespace)');
      const nStart = p;
      while (p < end && TOKEN[buf[p]] === 1) p++;
      if (p >= end) return this.needMore(start, end);
      if (buf[p] !== COLON) {
        const b = buf[p];
        if (b === SP || b === HTAB) return this.refuse(400, 'whitespace between a header name and its colon');
        if (b === CR || b === LF) return this.refuse(400, 'header line without a colon');
        return this.refuse(400, `invalid byte ${byteName(b)} in a header name`);
      }
      if (p === nStart) return this.refuse(400, 'empty header name');
      const nEnd = p;
      p++;
      while (p < end && (buf[p] === SP || buf[p] === HTAB)) p++;
      const vStart = p;
      while (p < end && FIELD_VALUE[buf[p]] === 1) p++;
      if (p >= end) return this.needMore(start, end);
      if (buf[p] !== CR) {
        if (buf[p] === LF) return this.refuse(400, 'bare LF ends a header line (lines end with CRLF)');
        return this.refuse(400, `invalid byte ${byteName(buf[p])} in the value of a header field`);
      }
      if (p + 1 >= end) return this.needMore(start, end);
      if (buf[p + 1] !== LF) return this.refuse(400, 'bare CR in a header value');
      let vEnd = p;
      while (vEnd > vStart && (buf[vEnd - 1] === SP || buf[vEnd - 1] === HTAB)) vEnd--;
      p += 2;
      if (++count > limits.maxHeaderCount) return this.refuse(431, `more than ${limits.maxHeaderCount} header fields`);
      const value = buf.latin1Slice(vStart, vEnd);
      headers.push(buf.latin1Slice(nStart, nEnd), value);

      // The fields that decide framing and connection handling.
      switch (nEnd - nStart) {
        case 4:
          if (equalsLower(buf, nStart, H_HOST)) {
            if (host !== undefined) return this.refuse(400, 'two Host header fields');
            host = value;
          }
          break;
        case 6:
          if (equalsLower(buf, nStart, H_EXPECT) && minor === 1) {
            // RFC 9110 §10.1.1: 100-continue is the only expectation; HTTP/1.0 requests' Expect is ignored.
            if (vEnd - vStart === 12 && equalsLower(buf, vStart, V_100_CONTINUE)) expectContinue = true;
            else expectOther = true;
          }
          break;
        case 10:
          if (equalsLower(buf, nStart, H_CONNECTION)) {
            const options = connectionOptions(value);
            if (options & CONN_CLOSE) connClose = true;
            if (options & CONN_KEEP_ALIVE) connKeepAlive = true;
          }
          break;
        case 12:
          if (contentType === undefined && equalsLower(buf, nStart, H_CONTENT_TYPE)) contentType = value;
          break;
        case 14:
          if (equalsLower(buf, nStart, H_CONTENT_LENGTH)) {
            if (contentLength !== -1) return this.refuse(400, 'two Content-Length header fields');
            if (hasHtab(buf, vStart, p)) return this.refuse(400, 'HTAB in Content-Length');
            if (vEnd === vStart) return this.refuse(400, 'empty Content-Length');
            let n = 0;
            let digits = 0;
            for (let i = vStart; i < vEnd; i++) {
              const d = buf[i] - 48;
              if (d < 0 || d > 9) return this.refuse(400, 'Content-Length is not a decimal number');
              if (n !== 0 || d !== 0) digits++;
              n = n * 10 + d;
            }
            if (digits > MAX_LENGTH_DIGITS) return this.refuse(400, 'Content-Length too large');
            contentLength = n;
          }
          break;
        case 17:
          if (equalsLower(buf, nStart, H_TRANSFER_ENCODING)) {
            if (teSeen) return this.refuse(400, 'two Transfer-Encoding header fields');
            // llhttp takes trailing SP but not HTAB after these framing values; no laxer here.
            if (hasHtab(buf, vStart, p)) return this.refuse(400, 'HTAB in Transfer-Encoding');
            teSeen = true;
            teChunked = vEnd - vStart === 7 && equalsLower(buf, vStart, V_CHUNKED);
            if (!teChunked && vEnd === vStart) return this.refuse(400, 'empty Transfer-Encoding');
          }
          break;
      }
    }
    if (p - start > limits.maxHeaderBytes) return this.refuse(431, `request head larger than ${limits.maxHeaderBytes} bytes`);

    if (minor === 1 && host === undefined) return this.refuse(400, 'HTTP/1.1 request without Host');
    if (teSeen) {
      if (contentLength !== -1) return this.refuse(400, 'both Content-Length and Transfer-Encoding');
      if (!teChunked) return this.refuse(501, 'Transfer-Encoding other than "chunked" is not supported');
    }
    if (contentLength > 0 && limits.maxBodyBytes > 0 && contentLength > limits.maxBodyBytes) {
      return this.refuse(413, `request body larger than ${limits.maxBodyBytes} bytes`);
    }
    if (expectOther) return this.refuse(417, 'the only expectation served is 100-continue');

    this.method = method;
    this.target = buf.latin1Slice(tStart, tEnd);
    this.versionMinor = minor as 0 | 1;
    this.headers = headers;
    this.host = host;
    this.contentType = contentType;
    this.chunked = teChunked;
    this.contentLength = teChunked ? -1 : contentLength === -1 ? 0 : contentLength;
    this.expectContinue = expectContinue;
    // RFC 9112 §9.3; a chunked HTTP/1.0 request has faulty framing (§6.1): serve it, then close.
    this.keepAlive = !connClose && (minor === 1 || connKeepAlive) && !(minor === 0 && teChunked);
    return p;
  }

  private needMore(start: number, end: number): number {
    if (end - start > this.limits.maxHeaderBytes) return this.refuse(431, `request head larger than ${this.limits.maxHeaderBytes} bytes`);
    return NEED_MORE;
  }

  private refuse(status: number, reason: string): number {
    this.errorStatus = status;
    this.errorReason = reason;
    return REFUSED;
  }
}

function hasHtab(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] === HTAB) return true;
  return false;
}

/** The method as an interned string for the common ones; '' when unknown (or CONNECT). */
function methodName(buf: Buffer, start: number, end: number): string {
  const len = end - start;
  const c0 = buf[start];
  if (len === 3) {
    if (c0 === 0x47 && buf[start + 1] === 0x45 && buf[start + 2] === 0x54) return 'GET';
    if (c0 === 0x50 && buf[start + 1] === 0x55 && buf[start + 2] === 0x54) return 'PUT';
  } else if (len === 4) {
    if (c0 === 0x50 && buf[start + 1] === 0x4f && buf[start + 2] === 0x53 && buf[start + 3] === 0x54) return 'POST';
    if (c0 === 0x48 && buf[start + 1] === 0x45 && buf[start + 2] === 0x41 && buf[start + 3] === 0x44) return 'HEAD';
  }
  const name = buf.latin1Slice(start, end);
  return KNOWN_METHODS.has(name) ? name : '';
}

/**
 * origin-form ("/..."), asterisk-form ("*"), or absolute-form (scheme "://..."), as
 * llhttp takes them; authority-form only goes with CONNECT, which is refused before.
 */
function checkTargetForm(buf: Buffer, start: number, end: number): string | null {
  const c = buf[start];
  if (c === 0x2f) return null;
  if (c === 0x2a) return end - start === 1 ? null : 'request target starting with "*" other than "*"';
  if (ALPHA[c] === 1) {
    // Letters only in the scheme, as llhttp (RFC 3986 would allow digits, "+", "-", ".").
    let p = start + 1;
    while (p < end && ALPHA[buf[p]] === 1) p++;
    if (end - p >= 3 && buf[p] === COLON && buf[p + 1] === 0x2f && buf[p + 2] === 0x2f) {
      // The authority, up to the path, query or fragment: RFC 3986 bytes only (as llhttp checks the host).
      for (p += 3; p < end; p++) {
        const b = buf[p];
        if (b === 0x2f || b === 0x3f || b === 0x23) break;
        if (AUTHORITY[b] === 0) return `invalid byte ${byteName(b)} in the authority of an absolute request target`;
      }
      return null;
    }
  }
  return 'request target is neither "/path", "*" nor "scheme://authority/path"';
}

export const CONN_CLOSE = 1;
export const CONN_KEEP_ALIVE = 2;

/** The close / keep-alive options of a Connection header value (comma-separated tokens, any case). */
export function connectionOptions(value: string): number {
  let flags = 0;
  let i = 0;
  const n = value.length;
  while (i < n) {
    while (i < n && (value.charCodeAt(i) === SP || value.charCodeAt(i) === HTAB || value.charCodeAt(i) === 0x2c)) i++;
    const s = i;
    while (i < n && value.charCodeAt(i) !== 0x2c) i++;
    let e = i;
    while (e > s && (value.charCodeAt(e - 1) === SP || value.charCodeAt(e - 1) === HTAB)) e--;
    const len = e - s;
    if (len === 5 && value.slice(s, e).toLowerCase() === 'close') flags |= CONN_CLOSE;
    else if (len === 10 && value.slice(s, e).toLowerCase() === 'keep-alive') flags |= CONN_KEEP_ALIVE;
  }
  return flags;
}
