// The chunked request-body decoder (RFC 9112 §7.1): a byte state machine over the
// framing only. Chunk data is not copied here: in the DATA state the connection
// hands out views of its read buffer (up to `remaining` bytes) and calls `consumed`.
// Extensions are checked and dropped; trailer fields are checked and dropped
// (FastCGI has no place for them, and node:http's rawTrailers are not forwarded either).
import { BACKSLASH, COLON, CR, DQUOTE, EQUALS, FIELD_VALUE, HEX, HTAB, LF, QDTEXT, QUOTED_PAIR, SEMI, SP, TOKEN, byteName } from './chars.js';

const enum S {
  SizeStart,
  Size,
  ExtNameStart,
  ExtName,
  ExtValueStart,
  ExtToken,
  ExtQuoted,
  ExtQuotedPair,
  ExtAfterQuoted,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerName,
  TrailerValue,
  TrailerLf,
  EndLf,
  Done,
  Error,
}

/** A chunk size above this is refused (the body could not be counted exactly in a double). */
const MAX_CHUNK_SIZE = 2 ** 52;
/** node limits chunk extensions to 16 KiB (CVE-2024-22019); so do we, per size line. */
const MAX_SIZE_LINE_BYTES = 16 * 1024;

const CONTENT_LENGTH = 'content-length';
const TRANSFER_ENCODING = 'transfer-encoding';
const MATCH_CL = 1;
const MATCH_TE = 2;

/** Which of the two framing names byte `c` at index `i` still matches. */
function matchFraming(match: number, i: number, c: number): number {
  const lower = c | 0x20;
  if ((match & MATCH_CL) !== 0 && (i >= CONTENT_LENGTH.length || CONTENT_LENGTH.charCodeAt(i) !== lower)) match &= ~MATCH_CL;
  if ((match & MATCH_TE) !== 0 && (i >= TRANSFER_ENCODING.length || TRANSFER_ENCODING.charCodeAt(i) !== lower)) match &= ~MATCH_TE;
  return match;
}

export class ChunkedDecoder {
  private state = S.SizeStart;
  private size = 0;
  private lineBytes = 0;
  private trailerBytes = 0;
  private trailerCount = 0;
  /** Length of the trailer name being read, and whether it still spells content-length / transfer-encoding. */
  private nameLength = 0;
  private nameMatch = 0;
  /** Data bytes left in the current chunk (while `inData`). */
  remaining = 0;
  /** Why the framing was refused (when `failed`). */
  error = '';

  constructor(private readonly maxTrailerBytes: number, private readonly maxTrailerCount: number) {}

  reset(): void {
    this.state = S.SizeStart;
    this.size = 0;
    this.lineBytes = 0;
    this.trailerBytes = 0;
    this.trailerCount = 0;
    this.remaining = 0;
    this.error = '';
  }

  get inData(): boolean { return this.state === S.Data; }
  get done(): boolean { return this.state === S.Done; }
  get failed(): boolean { return this.state === S.Error; }

  /** `n` data bytes of the current chunk were taken (n ≤ remaining). */
  consumed(n: number): void {
    this.remaining -= n;
    if (this.remaining === 0) this.state = S.DataCr;
  }

  /**
   * Reads framing bytes from buf[pos, end) until chunk data begins (`inData`), the
   * body ends (`done`), the framing is refused (`failed`), or the bytes run out.
   * Returns the position reached.
   */
  parse(buf: Buffer, pos: number, end: number): number {
    let p = pos;
    let state = this.state;
    while (p < end) {
      const c = buf[p];
      switch (state) {
        case S.SizeStart:
          if (HEX[c] === 0) return this.fail(p, c === CR || c === LF ? 'empty chunk size' : `invalid byte ${byteName(c)} in a chunk size`);
          this.size = HEX[c] - 1;
          this.lineBytes = 1;
          state = S.Size;
          break;
        case S.Size:
          if (HEX[c] !== 0) {
            this.size = this.size * 16 + HEX[c] - 1;
            if (this.size > MAX_CHUNK_SIZE) return this.fail(p, 'chunk size too large');
          } else if (c === CR) state = S.SizeLf;
          else if (c === SEMI) state = S.ExtNameStart;
          else return this.fail(p, `invalid byte ${byteName(c)} in a chunk size`);
          break;
        case S.ExtNameStart:
          if (TOKEN[c] === 0) return this.fail(p, `invalid byte ${byteName(c)} in a chunk extension name`);
          state = S.ExtName;
          break;
        case S.ExtName:
          if (TOKEN[c] === 1) break;
          if (c === EQUALS) state = S.ExtValueStart;
          else if (c === SEMI) state = S.ExtNameStart;
          else if (c === CR) state = S.SizeLf;
          else return this.fail(p, `invalid byte ${byteName(c)} in a chunk extension name`);
          break;
        case S.ExtValueStart:
          if (c === DQUOTE) state = S.ExtQuoted;
          else if (TOKEN[c] === 1) state = S.ExtToken;
          else return this.fail(p, `invalid byte ${byteName(c)} in a chunk extension value`);
          break;
        case S.ExtToken:
          if (TOKEN[c] === 1) break;
          if (c === SEMI) state = S.ExtNameStart;
          else if (c === CR) state = S.SizeLf;
          else return this.fail(p, `invalid byte ${byteName(c)} in a chunk extension value`);
          break;
        case S.ExtQuoted:
          if (c === DQUOTE) state = S.ExtAfterQuoted;
          else if (c === BACKSLASH) state = S.ExtQuotedPair;
          else if (QDTEXT[c] === 0) return this.fail(p, `invalid byte ${byteName(c)} in a quoted chunk extension value`);
          break;
        case S.ExtQuotedPair:
          if (QUOTED_PAIR[c] === 0) return this.fail(p, `invalid byte ${byteName(c)} in a quoted chunk extension value`);
          state = S.ExtQuoted;
          break;
        case S.ExtAfterQuoted:
          if (c === SEMI) state = S.ExtNameStart;
          else if (c === CR) state = S.SizeLf;
          else return this.fail(p, `invalid byte ${byteName(c)} after a quoted chunk extension value`);
          break;
        case S.SizeLf:
          if (c !== LF) return this.fail(p, 'bare CR after a chunk size');
          if (this.size === 0) {
            state = S.TrailerStart;
            break;
          }
          this.remaining = this.size;
          this.state = S.Data;
          return p + 1;
        case S.Data:
          // Only reached when parse() is called with data left: the caller takes data itself.
          this.state = state;
          return p;
        case S.DataCr:
          if (c !== CR) return this.fail(p, 'chunk data longer than its size (no CRLF after it)');
          state = S.DataLf;
          break;
        case S.DataLf:
          if (c !== LF) return this.fail(p, 'bare CR after chunk data');
          state = S.SizeStart;
          break;
        case S.TrailerStart:
          if (c === CR) state = S.EndLf;
          else if (TOKEN[c] === 1) {
            if (++this.trailerCount > this.maxTrailerCount) return this.fail(p, `more than ${this.maxTrailerCount} trailer fields`);
            this.nameLength = 1;
            this.nameMatch = matchFraming(MATCH_CL | MATCH_TE, 0, c);
            state = S.TrailerName;
          } else if (c === SP || c === HTAB) return this.fail(p, 'obsolete line folding in the trailer section');
          else if (c === LF) return this.fail(p, 'bare LF in the trailer section');
          else return this.fail(p, `invalid byte ${byteName(c)} in a trailer field name`);
          break;
        case S.TrailerName:
          if (TOKEN[c] === 1) {
            if (this.nameMatch !== 0) this.nameMatch = matchFraming(this.nameMatch, this.nameLength, c);
            this.nameLength++;
            break;
          }
          if (c === COLON) {
            // Framing fields in trailers (RFC 9110 §6.5.1): refused, as llhttp does.
            if (((this.nameMatch & MATCH_CL) !== 0 && this.nameLength === CONTENT_LENGTH.length) || ((this.nameMatch & MATCH_TE) !== 0 && this.nameLength === TRANSFER_ENCODING.length)) {
              return this.fail(p, 'Content-Length or Transfer-Encoding in the trailer section');
            }
            state = S.TrailerValue;
          }
          else if (c === SP || c === HTAB) return this.fail(p, 'whitespace between a trailer name and its colon');
          else return this.fail(p, `invalid byte ${byteName(c)} in a trailer field name`);
          break;
        case S.TrailerValue:
          if (c === CR) state = S.TrailerLf;
          else if (FIELD_VALUE[c] === 0) return this.fail(p, `invalid byte ${byteName(c)} in a trailer field value`);
          break;
        case S.TrailerLf:
          if (c !== LF) return this.fail(p, 'bare CR in the trailer section');
          state = S.TrailerStart;
          break;
        case S.EndLf:
          if (c !== LF) return this.fail(p, 'bare CR at the end of the chunked body');
          this.state = S.Done;
          return p + 1;
        default:
          this.state = state;
          return p;
      }
      p++;
      if (state <= S.SizeLf) {
        if (++this.lineBytes > MAX_SIZE_LINE_BYTES) return this.fail(p, 'chunk size line (with extensions) too long');
      } else if (state >= S.TrailerStart) {
        if (++this.trailerBytes > this.maxTrailerBytes) return this.fail(p, `trailer section larger than ${this.maxTrailerBytes} bytes`);
      }
    }
    this.state = state;
    return p;
  }

  private fail(p: number, reason: string): number {
    this.state = S.Error;
    this.error = reason;
    return p;
  }
}
