// The CGI response head a FastCGI responder writes on STDOUT (RFC 3875 section 6):
// header lines ending in \n or \r\n, a blank line, then the body. `Status:` sets the
// HTTP status; `Location:` without it means a redirect (302). Parsed by byte scans
// straight from the record content; a head split across records is collected first.
// What would contradict the response the front frames itself (framing, hop-by-hop
// headers, a 1xx as final status, two different Content-Lengths or Status codes) is refused or dropped.
import { dropNamed, type ResponseHead } from '../transport.js';

export class CgiHeadError extends Error {}

/** Header-name bytes (RFC 9110 token). */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) { TOKEN[c] = 1; TOKEN[c + 32] = 1; }

// Names the front handles itself, by length then lower-case bytes (no toLowerCase per line).
const enum Name { Other, Status, ContentLength, Location, Dropped, Connection }
const SPECIAL: Array<[string, Name]> = [
  ['status', Name.Status], ['content-length', Name.ContentLength], ['location', Name.Location],
  // Framing and hop-by-hop: the front's business, they would contradict what it writes.
  ['connection', Name.Connection], ['keep-alive', Name.Dropped], ['transfer-encoding', Name.Dropped],
  ['proxy-connection', Name.Dropped], ['upgrade', Name.Dropped], ['trailer', Name.Dropped], ['te', Name.Dropped],
];
const BY_LENGTH: Array<Array<[Buffer, Name]> | undefined> = [];
for (const [name, kind] of SPECIAL) (BY_LENGTH[name.length] ??= []).push([Buffer.from(name, 'latin1'), kind]);

function classify(buf: Buffer, start: number, end: number): Name {
  const candidates = BY_LENGTH[end - start];
  if (candidates === undefined) return Name.Other;
  outer: for (const [lower, kind] of candidates) {
    for (let i = 0; i < lower.length; i++) {
      if ((buf[start + i] | 0x20) !== lower[i]) continue outer;
    }
    return kind;
  }
  return Name.Other;
}

/** Index of the first line break of the blank line ending the head, searching from `from`; -1 when not yet seen. */
export function findHeadEnd(data: Buffer, from: number, end = data.length): number {
  if (from === 0 && (data[0] === 0x0a || (data[0] === 0x0d && data[1] === 0x0a))) return 0;
  for (let i = data.indexOf(0x0a, from); i >= 0 && i < end; i = data.indexOf(0x0a, i + 1)) {
    // i is a \n; the head ends when the next line is empty: "\n\n" or "\n\r\n".
    const next = i + 1 < end ? data[i + 1] : -1;
    if (next === 0x0a) return data[i - 1] === 0x0d ? i - 1 : i;
    if (next === 0x0d) {
      if (i + 2 >= end) return -1;
      if (data[i + 2] === 0x0a) return data[i - 1] === 0x0d ? i - 1 : i;
    }
    if (next === -1) return -1;
  }
  return -1;
}

/** Length of the line breaks ending the head at `at` (the first break plus the empty line). */
function separatorLength(data: Buffer, at: number): number {
  if (at === 0) return data[0] === 0x0a ? 1 : 2; // no headers at all
  let i = at;
  i += data[i] === 0x0d ? 2 : 1;
  i += data[i] === 0x0d ? 2 : 1;
  return i - at;
}

function describe(buf: Buffer, start: number, end: number): string {
  return JSON.stringify(buf.latin1Slice(start, Math.min(end, start + 80)));
}

/** Parses the head in `buf[0, end)` (the bytes before the blank line). */
export function parseHeadBytes(buf: Buffer, end: number): ResponseHead {
  const headers: string[] = [];
  let status = 0;
  let reason: string | null = null;
  let contentLength = -1;
  let location = false;
  /** Fields named in Connection: hop-by-hop too (RFC 9110 §7.6.1), as the HTTP transport drops them. */
  let named: string[] | null = null;
  let i = 0;
  while (i < end) {
    let lf = buf.indexOf(0x0a, i);
    if (lf < 0 || lf > end) lf = end;
    let lineEnd = lf;
    if (lineEnd > i && buf[lineEnd - 1] === 0x0d) lineEnd--;
    const lineStart = i;
    i = lf + 1;
    if (lineEnd === lineStart) continue;
    let colon = lineStart;
    while (colon < lineEnd && TOKEN[buf[colon]] === 1) colon++;
    if (colon === lineStart || colon === lineEnd || buf[colon] !== 0x3a) {
      if (colon < lineEnd && buf[colon] !== 0x3a && buf.indexOf(0x3a, lineStart) > lineStart && buf.indexOf(0x3a, lineStart) < lineEnd) {
        throw new CgiHeadError(`backend sent an invalid header name ${describe(buf, lineStart, buf.indexOf(0x3a, lineStart))}`);
      }
      throw new CgiHeadError(`backend sent a malformed header line ${describe(buf, lineStart, lineEnd)}`);
    }
    let v = colon + 1;
    while (v < lineEnd && (buf[v] === 0x20 || buf[v] === 0x09)) v++;
    let ve = lineEnd;
    while (ve > v && (buf[ve - 1] === 0x20 || buf[ve - 1] === 0x09)) ve--;
    for (let k = v; k < ve; k++) {
      const c = buf[k];
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) {
        throw new CgiHeadError(`backend sent a control character (0x${c.toString(16).padStart(2, '0')}) in the value of header ${describe(buf, lineStart, colon)}`);
      }
    }
    switch (classify(buf, lineStart, colon)) {
      case Name.Status: {
        // "Status: NNN[ reason]"
        const d0 = buf[v] - 48, d1 = buf[v + 1] - 48, d2 = buf[v + 2] - 48;
        const after = v + 3;
        if (ve - v < 3 || d0 < 0 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9 || (after < ve && buf[after] !== 0x20 && buf[after] !== 0x09)) {
          throw new CgiHeadError(`backend sent an invalid Status header ${describe(buf, v, ve)}`);
        }
        const code = d0 * 100 + d1 * 10 + d2;
        if (code < 200) {
          throw new CgiHeadError(code < 100 ? `backend sent Status ${code}, outside 100-999`
            : `backend sent Status ${code}: a 1xx status cannot be the final response`);
        }
        // Which of two codes the app meant is unknowable: refused, as two Content-Lengths are.
        if (status !== 0 && status !== code) {
          throw new CgiHeadError(`backend sent two different Status headers (${status} and ${code})`);
        }
        status = code;
        let r = after;
        while (r < ve && (buf[r] === 0x20 || buf[r] === 0x09)) r++;
        reason = r < ve ? buf.latin1Slice(r, ve) : null;
        continue;
      }
      case Name.ContentLength: {
        if (ve === v || ve - v > 15) throw new CgiHeadError(`backend sent an invalid Content-Length ${describe(buf, v, ve)}`);
        let n = 0;
        for (let k = v; k < ve; k++) {
          const d = buf[k] - 48;
          if (d < 0 || d > 9) throw new CgiHeadError(`backend sent an invalid Content-Length ${describe(buf, v, ve)}`);
          n = n * 10 + d;
        }
        if (contentLength !== -1 && contentLength !== n) {
          throw new CgiHeadError(`backend sent two different Content-Length headers (${contentLength} and ${n})`);
        }
        contentLength = n;
        continue;
      }
      case Name.Dropped:
        continue;
      case Name.Connection:
        for (const token of buf.latin1Slice(v, ve).split(',')) {
          const t = token.trim().toLowerCase();
          if (t !== '' && t !== 'close' && t !== 'keep-alive') (named ??= []).push(t);
        }
        continue;
      case Name.Location:
        location = true;
        break;
      case Name.Other:
        break;
    }
    headers.push(buf.latin1Slice(lineStart, colon), buf.latin1Slice(v, ve));
  }
  if (status === 0) status = location ? 302 : 200;
  return { status, reason, headers: named === null ? headers : dropNamed(headers, named), contentLength };
}

/** The head and where the body starts in the pushed bytes. */
export interface ParsedHead {
  head: ResponseHead;
  /** Offset in the chunk passed to the call that completed the head. */
  bodyOffset: number;
}

/**
 * The head when it lies whole in `chunk` (the common case: no parser object), or
 * null when more bytes are needed (then use a CgiHeadParser).
 */
export function parseCgiHead(chunk: Buffer, maxHeadBytes: number): ParsedHead | null {
  const end = findHeadEnd(chunk, 0);
  if (end < 0) {
    if (chunk.length > maxHeadBytes) throw new CgiHeadError(`backend sent a response head over ${maxHeadBytes} bytes without the blank line that ends it`);
    return null;
  }
  if (end > maxHeadBytes) throw new CgiHeadError(`backend sent a response head of ${end} bytes, over the limit of ${maxHeadBytes}`);
  return { head: parseHeadBytes(chunk, end), bodyOffset: end + separatorLength(chunk, end) };
}

/** Collects STDOUT bytes until the end of a head that spans several records or reads. */
export class CgiHeadParser {
  // The bytes so far in a buffer that doubles as it fills: a head sent as many small
  // records (one byte each, from a hostile or odd backend) costs linear time, not the
  // quadratic of concatenating on every record.
  private collected: Buffer | null = null;
  private used = 0;

  constructor(private readonly maxHeadBytes: number) {}

  push(chunk: Buffer): ParsedHead | null {
    if (this.collected === null) {
      const parsed = parseCgiHead(chunk, this.maxHeadBytes);
      if (parsed === null) {
        this.collected = Buffer.allocUnsafe(Math.max(1024, chunk.length * 2));
        chunk.copy(this.collected, 0);
        this.used = chunk.length;
      }
      return parsed;
    }
    const prevLength = this.used;
    const length = prevLength + chunk.length;
    if (length > this.collected.length) {
      const grown = Buffer.allocUnsafe(Math.max(length, this.collected.length * 2));
      this.collected.copy(grown, 0, 0, prevLength);
      this.collected = grown;
    }
    chunk.copy(this.collected, prevLength);
    this.used = length;
    const data = this.collected.subarray(0, length);
    const end = findHeadEnd(data, Math.max(0, prevLength - 3));
    if (end < 0) {
      if (length > this.maxHeadBytes) throw new CgiHeadError(`backend sent a response head over ${this.maxHeadBytes} bytes without the blank line that ends it`);
      return null;
    }
    if (end > this.maxHeadBytes) throw new CgiHeadError(`backend sent a response head of ${end} bytes, over the limit of ${this.maxHeadBytes}`);
    this.collected = null;
    this.used = 0;
    return { head: parseHeadBytes(data, end), bodyOffset: end + separatorLength(data, end) - prevLength };
  }
}

/** Parses a whole head given as text (tests, tools). */
export function parseHead(text: string): ResponseHead {
  const buf = Buffer.from(text, 'latin1');
  return parseHeadBytes(buf, buf.length);
}
