// The CGI response head a FastCGI responder writes on STDOUT (RFC 3875 section 6):
// header lines ending in \n or \r\n, a blank line, then the body. `Status:` sets the
// HTTP status; `Location:` without it means a redirect (302).

export interface CgiHead {
  status: number;
  statusText: string | undefined;
  /** Flat [name, value, name, value, ...] in the order sent; repeated names kept. */
  headers: string[];
}

export class CgiHeadError extends Error {}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Framing is the front's business: these would contradict the response it writes.
const DROPPED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'trailer', 'te']);

/**
 * Collects STDOUT bytes until the end of the head. `push` returns the parsed head
 * and the offset in that chunk where the body starts, or null when more is needed.
 */
export class CgiHeadParser {
  private collected: Buffer | null = null;
  private scanFrom = 0;

  constructor(private readonly maxHeadBytes: number) {}

  push(chunk: Buffer): { head: CgiHead; bodyOffset: number } | null {
    const prevLen = this.collected ? this.collected.length : 0;
    const data = this.collected ? Buffer.concat([this.collected, chunk]) : chunk;
    const end = findHeadEnd(data, Math.max(0, this.scanFrom - 3));
    if (end < 0) {
      if (data.length > this.maxHeadBytes) {
        throw new CgiHeadError(`backend sent a response head over ${this.maxHeadBytes} bytes without the blank line that ends it`);
      }
      this.collected = data === chunk ? Buffer.from(chunk) : data;
      this.scanFrom = data.length;
      return null;
    }
    const lineEnd = end;
    const sepLen = separatorLength(data, lineEnd);
    const head = parseHead(data.toString('latin1', 0, lineEnd));
    if (lineEnd > this.maxHeadBytes) {
      throw new CgiHeadError(`backend sent a response head of ${lineEnd} bytes, over the limit of ${this.maxHeadBytes}`);
    }
    this.collected = null;
    return { head, bodyOffset: lineEnd + sepLen - prevLen };
  }
}

/** Length of the line breaks ending the head, starting at `at`. */
function separatorLength(data: Buffer, at: number): number {
  let i = at;
  if (at === 0 && data[0] === 0x0a) return 1; // no headers at all
  if (at === 0 && data[0] === 0x0d && data[1] === 0x0a) return 2;
  i += data[i] === 0x0d ? 2 : 1; // first line break
  i += data[i] === 0x0d ? 2 : 1; // the empty line
  return i - at;
}

/** Index of the first line break of the blank line ending the head, or -1. */
function findHeadEnd(data: Buffer, from: number): number {
  if (from === 0 && (data[0] === 0x0a || (data[0] === 0x0d && data[1] === 0x0a))) return 0;
  for (let i = data.indexOf(0x0a, from); i >= 0; i = data.indexOf(0x0a, i + 1)) {
    // i is a \n; the head ends when the next line is empty: "\n\n" or "\n\r\n".
    const next = data[i + 1];
    if (next === 0x0a) return data[i - 1] === 0x0d ? i - 1 : i;
    if (next === 0x0d && data[i + 2] === 0x0a) return data[i - 1] === 0x0d ? i - 1 : i;
    if (next === undefined || (next === 0x0d && data[i + 2] === undefined)) return -1;
  }
  return -1;
}

export function parseHead(text: string): CgiHead {
  const headers: string[] = [];
  let status = 0;
  let statusText: string | undefined;
  let location = false;
  let start = 0;
  while (start < text.length) {
    let nl = text.indexOf('\n', start);
    if (nl < 0) nl = text.length;
    const line = text.charCodeAt(nl - 1) === 13 ? text.slice(start, nl - 1) : text.slice(start, nl);
    start = nl + 1;
    if (line.length === 0) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new CgiHeadError(`backend sent a malformed header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name)) throw new CgiHeadError(`backend sent an invalid header name ${JSON.stringify(name.slice(0, 80))}`);
    const lower = name.toLowerCase();
    if (lower === 'status') {
      const m = /^(\d{3})(?:\s+(.*))?$/.exec(value);
      if (!m) throw new CgiHeadError(`backend sent an invalid Status header ${JSON.stringify(value.slice(0, 80))}`);
      status = Number(m[1]);
      if (status < 100 || status > 999) throw new CgiHeadError(`backend sent Status ${status}, outside 100-999`);
      statusText = m[2] || undefined;
      continue;
    }
    if (DROPPED.has(lower)) continue;
    if (lower === 'location') location = true;
    headers.push(name, value);
  }
  if (status === 0) status = location ? 302 : 200;
  return { status, statusText, headers };
}
