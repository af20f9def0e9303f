// HTTP/1.1 as a client sees it on the wire: raw sockets and a strict response parser,
// so a test sees every byte the front sent — a bad frame, bytes after a response, a
// response the client never asked for — where an HTTP library would tidy them away.
import crypto from 'node:crypto';
import net from 'node:net';

export interface RawResponse {
  status: number;
  reason: string;
  /** [name (lower case), value] in the order received. */
  headers: Array<[string, string]>;
  body: Buffer;
  /** The body reached its framed end (Content-Length, last chunk), or the response has none. */
  complete: boolean;
}

export interface Parsed {
  responses: RawResponse[];
  /** Bytes after the last complete response that do not make one. */
  rest: Buffer;
  /** Why parsing stopped early: bytes that are no HTTP/1.1 response. */
  error: string | null;
}

export function header(r: RawResponse, name: string): string | undefined {
  return r.headers.find(([n]) => n === name)?.[1];
}

/** Final responses (1xx interim ones left out). */
export function finals(p: Parsed): RawResponse[] {
  return p.responses.filter((r) => r.status >= 200);
}

/**
 * Parses a byte stream as consecutive responses. `closed`: the connection ended, so a
 * response framed by the close is complete and one cut short is reported as such.
 */
export function parseResponses(data: Buffer, closed: boolean, headMethods: number[] = []): Parsed {
  const responses: RawResponse[] = [];
  let at = 0;
  let finalIndex = 0;
  while (at < data.length) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) {
      const partial = data.subarray(at).toString('latin1');
      return { responses, rest: data.subarray(at), error: /^HTTP\/1\.[01] \d\d\d/.test(partial) || 'HTTP/1.1 '.startsWith(partial.slice(0, 9)) ? null : `not a status line: ${JSON.stringify(partial.slice(0, 60))}` };
    }
    const lines = data.subarray(at, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d\d\d) ?(.*)$/.exec(lines[0]);
    if (!m) return { responses, rest: data.subarray(at), error: `not a status line: ${JSON.stringify(lines[0].slice(0, 60))}` };
    const headers: Array<[string, string]> = [];
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0 || /[\0\r\n]/.test(line)) return { responses, rest: data.subarray(at), error: `bad header line ${JSON.stringify(line.slice(0, 60))}` };
      headers.push([line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]);
    }
    const status = Number(m[1]);
    const r: RawResponse = { status, reason: m[2], headers, body: Buffer.alloc(0), complete: true };
    at = end + 4;
    const isHead = status >= 200 && headMethods.includes(finalIndex);
    if (status >= 200) finalIndex++;
    if (status < 200 || status === 204 || status === 304 || isHead) { responses.push(r); continue; }
    const lengths = headers.filter(([n]) => n === 'content-length').map(([, v]) => v);
    const chunked = /chunked/i.test(header(r, 'transfer-encoding') ?? '');
    if (lengths.length > 1 && new Set(lengths).size > 1) return { responses, rest: data.subarray(at), error: `two different Content-Lengths: ${lengths.join(', ')}` };
    if (chunked) {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = data.indexOf('\r\n', at);
        if (lineEnd < 0) { r.complete = false; break; }
        const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
        if (!Number.isFinite(size)) return { responses, rest: data.subarray(at), error: 'bad chunk size line' };
        if (size === 0) {
          const trailerEnd = data.indexOf('\r\n', lineEnd + 2);
          if (trailerEnd !== lineEnd + 2) { r.complete = false; at = data.length; break; }
          at = trailerEnd + 2;
          break;
        }
        if (lineEnd + 2 + size + 2 > data.length) { parts.push(data.subarray(lineEnd + 2, Math.min(data.length, lineEnd + 2 + size))); r.complete = false; at = data.length; break; }
        parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
      }
      r.body = Buffer.concat(parts);
    } else if (lengths.length > 0) {
      if (!/^\d+$/.test(lengths[0])) return { responses, rest: data.subarray(at), error: `bad Content-Length ${JSON.stringify(lengths[0])}` };
      const n = Number(lengths[0]);
      r.body = data.subarray(at, Math.min(data.length, at + n));
      r.complete = r.body.length === n;
      at += r.body.length;
    } else {
      // Framed by the close.
      r.body = data.subarray(at);
      r.complete = closed;
      at = data.length;
    }
    responses.push(r);
    if (!r.complete) break;
  }
  return { responses, rest: data.subarray(at), error: null };
}

export interface RawExchange {
  data: Buffer;
  /** The front closed the connection (FIN or RST) before we stopped reading. */
  closed: boolean;
  parsed: Parsed;
  ms: number;
}

/**
 * Writes `bytes` (one write) on a fresh connection and reads until the front closes it,
 * `finalResponses` complete final responses arrived, or `timeoutMs` passed.
 */
export function rawExchange(hostPort: string, bytes: string | Buffer, opts: { finalResponses?: number; timeoutMs?: number; headMethods?: number[] } = {}): Promise<RawExchange> {
  const colon = hostPort.lastIndexOf(':');
  const started = Date.now();
  return new Promise((resolve) => {
    const s = net.connect(Number(hostPort.slice(colon + 1)), hostPort.slice(0, colon));
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const data = Buffer.concat(chunks);
      resolve({ data, closed, parsed: parseResponses(data, closed, opts.headMethods), ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), opts.timeoutMs ?? 5000);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      if (opts.finalResponses !== undefined) {
        const p = parseResponses(Buffer.concat(chunks), false, opts.headMethods);
        if (finals(p).filter((r) => r.complete).length >= opts.finalResponses && p.rest.length === 0) finish(false);
      }
    });
    s.on('end', () => finish(true));
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    s.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  });
}

export function get(path: string, extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;
}

export type Cut = 'head' | 'body' | 'between' | 'upload';

/**
 * `clients` raw connections for `ms`, each in a loop: send a request and leave at the
 * chosen moment, every other time with a reset (RST) instead of a close (FIN).
 */
export async function cutLoad(hostPort: string, cut: Cut, clients: number, ms: number, bigPath: string): Promise<{ cuts: number; unanswered: number }> {
  const colon = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, colon);
  const port = Number(hostPort.slice(colon + 1));
  const deadline = Date.now() + ms;
  let cuts = 0;
  let unanswered = 0;
  const upload = Buffer.concat([Buffer.from(`POST /sha256 HTTP/1.1\r\nHost: ${hostPort}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n`), crypto.randomBytes(65536)]);
  const once = () => new Promise<void>((resolve) => {
    const s = net.connect(port, host);
    let got = Buffer.alloc(0);
    let done = false;
    const leave = () => {
      if (done) return;
      done = true;
      if (++cuts % 2) s.resetAndDestroy();
      else s.destroy();
      resolve();
    };
    s.on('error', () => {});
    s.on('close', () => { if (!done) { done = true; unanswered++; resolve(); } });
    s.setTimeout(10_000, leave); // bounded
    s.on('data', (c: Buffer) => {
      if (cut === 'head') { leave(); return; }
      got = Buffer.concat([got, c]);
      if (cut === 'body' && got.length > 65536) { leave(); return; }
      if (cut === 'between' && finals(parseResponses(got, false)).some((r) => r.complete)) {
        // One whole response; the next request is half written when we go.
        s.write(`GET /Hello/1 HTTP/1.1\r\nHo`, () => leave());
      }
    });
    s.on('connect', () => {
      if (cut === 'upload') s.write(upload, () => setImmediate(leave));
      else s.write(get(cut === 'body' ? bigPath : '/Hello/10'));
    });
  });
  await Promise.all(Array.from({ length: clients }, async () => { while (Date.now() < deadline) await once(); }));
  return { cuts, unanswered };
}

