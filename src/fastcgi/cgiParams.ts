// The CGI/1.1 meta-variables of a request, as nginx's fastcgi_params sets them, plus
// SCRIPT_NAME / PATH_INFO and HTTP_* for the request headers — encoded straight into
// the records that open a FastCGI request (BEGIN_REQUEST, PARAMS, and the empty
// STDIN when there is no body): one buffer, one write. What is fixed is encoded once:
// the listener's pairs at construction, a connection's (REMOTE_*, SERVER_ADDR/PORT,
// scheme) once per connection, each HTTP_* name once per encoder. Strings stay
// latin1 so the bytes a client sent reach the backend unchanged.
import type { ClientConnection, RequestHead } from '../transport.js';
import { FCGI_KEEP_CONN, HEADER_LEN, MAX_CONTENT, RecordType, Role } from './protocol.js';
import { writeHeader } from './records.js';
import { coarseNow } from '../clock.js';
import { ScriptResolver, normalizePath } from './scriptResolver.js';

export interface CgiParamsOptions {
  documentRoot: string;
  serverSoftware: string;
  /** Forward headers whose names contain "_" (they collide with "-" in HTTP_*). */
  passUnderscoreHeaders: boolean;
  /** Forward the Proxy header (httpoxy: it would become HTTP_PROXY). */
  passProxyHeader: boolean;
  /** Extra fixed params, flat [name, value, ...]. */
  extra: readonly string[];
  /** Only files with these extensions are scripts (".php"); empty: any file. */
  scriptExtensions: readonly string[];
}

/** The request cannot be mapped to CGI: the client gets `status` with this message. */
export class CgiRequestError extends Error {
  constructor(readonly status: 400 | 404, message: string) {
    super(message);
  }
}

/** Writes a latin1 string: a byte loop for short ones beats the call into C++. */
function put(buf: Buffer, offset: number, s: string): number {
  const n = s.length;
  if (n < 48) {
    for (let i = 0; i < n; i++) buf[offset + i] = s.charCodeAt(i);
    return offset + n;
  }
  return offset + buf.latin1Write(s, offset);
}

function lengthSize(len: number): number {
  return len < 128 ? 1 : 4;
}

function putLength(buf: Buffer, offset: number, len: number): number {
  if (len < 128) {
    buf[offset] = len;
    return offset + 1;
  }
  buf.writeUInt32BE((len | 0x80000000) >>> 0, offset);
  return offset + 4;
}

function pairSize(name: string, value: string): number {
  return lengthSize(name.length) + lengthSize(value.length) + name.length + value.length;
}

function putPair(buf: Buffer, offset: number, name: string, value: string): number {
  offset = putLength(buf, offset, name.length);
  offset = putLength(buf, offset, value.length);
  offset = put(buf, offset, name);
  return put(buf, offset, value);
}

function encodePairList(pairs: readonly string[]): Buffer {
  let size = 0;
  for (let i = 0; i < pairs.length; i += 2) size += pairSize(pairs[i], pairs[i + 1]);
  const buf = Buffer.alloc(size);
  let o = 0;
  for (let i = 0; i < pairs.length; i += 2) o = putPair(buf, o, pairs[i], pairs[i + 1]);
  return buf;
}

/** Per client connection: its fixed pairs, and its last request's records (a client often repeats itself). */
interface ConnectionState {
  pairs: Buffer;
  last: {
    at: number; target: string; method: string; versionMinor: number; headers: readonly string[];
    bodyLength: number; keepConn: boolean; records: Buffer;
  } | null;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A copy of `records` with every record header's request id set to `id` (the source may be in a socket's queue). */
function withRequestId(records: Buffer, id: number): Buffer {
  const out = Buffer.allocUnsafe(records.length);
  records.copy(out, 0);
  for (let o = 0; o + HEADER_LEN <= out.length; o += HEADER_LEN + ((out[o + 4] << 8) | out[o + 5]) + out[o + 6]) {
    out[o + 2] = id >> 8;
    out[o + 3] = id & 0xff;
  }
  return out;
}

const MAX_CACHED_NAMES = 2000;
const MAX_CACHED_PATHS = 1000;
/** As long as the script resolver trusts a stat(): a new script file is seen within this. */
const PATH_CACHE_MS = 1000;
const NO_HEADER = '';

export class CgiParamsEncoder {
  private readonly resolver: ScriptResolver;
  private readonly docRoot: string;
  /** GATEWAY_INTERFACE, SERVER_SOFTWARE, DOCUMENT_ROOT, REDIRECT_STATUS and the extra pairs. */
  private readonly fixed: Buffer;
  private readonly perConnection = new WeakMap<ClientConnection, ConnectionState>();
  private readonly pathBlocks = new Map<string, { block: Buffer; at: number }>();
  private readonly hostBlocks = new Map<string, Buffer>();
  /** Header name as sent → HTTP_* name, or '' when it is not forwarded. Per encoder: it depends on the options. */
  private readonly envNames = new Map<string, string>();
  // Scratch for one encode (it is synchronous): the forwarded headers, joined where repeated.
  private readonly names: string[] = [];
  private readonly values: string[] = [];

  constructor(private readonly opts: CgiParamsOptions) {
    const root = opts.documentRoot.replace(/\/+$/, '');
    // latin1 view of the UTF-8 bytes of the path, like every other param string.
    this.docRoot = Buffer.from(root, 'utf8').toString('latin1');
    this.resolver = new ScriptResolver(root, opts.scriptExtensions);
    this.fixed = encodePairList(['GATEWAY_INTERFACE', 'CGI/1.1', 'SERVER_SOFTWARE', opts.serverSoftware,
      'DOCUMENT_ROOT', this.docRoot, 'REDIRECT_STATUS', '200', ...opts.extra]);
  }

  /** HTTP_* name of a header, or '' when it must not be forwarded. */
  private envName(raw: string): string {
    const cached = this.envNames.get(raw);
    if (cached !== undefined) return cached;
    const lower = raw.toLowerCase();
    let name: string;
    if (lower === 'content-type' || lower === 'content-length') name = NO_HEADER; // sent as CONTENT_TYPE / CONTENT_LENGTH
    else if (lower === 'proxy' && !this.opts.passProxyHeader) name = NO_HEADER;
    // Hop-by-hop (RFC 9110 7.6.1): what the client takes on its connection to the front
    // (trailers, codings), not a promise the app may act on; the HTTP transport drops it too.
    else if (lower === 'te') name = NO_HEADER;
    else if (raw.includes('_') && !this.opts.passUnderscoreHeaders) name = NO_HEADER;
    else name = 'HTTP_' + raw.toUpperCase().replace(/-/g, '_');
    if (this.envNames.size < MAX_CACHED_NAMES) this.envNames.set(raw, name);
    return name;
  }

  private connectionState(c: ClientConnection): ConnectionState {
    let st = this.perConnection.get(c);
    if (st === undefined) {
      const pairs = ['REMOTE_ADDR', c.remoteAddress, 'REMOTE_PORT', String(c.remotePort),
        'SERVER_ADDR', c.localAddress, 'SERVER_PORT', String(c.localPort), 'REQUEST_SCHEME', c.encrypted ? 'https' : 'http'];
      if (c.encrypted) pairs.push('HTTPS', 'on');
      st = { pairs: encodePairList(pairs), last: null };
      this.perConnection.set(c, st);
    }
    return st;
  }

  /**
   * SCRIPT_NAME, SCRIPT_FILENAME, PATH_INFO (PATH_TRANSLATED) and DOCUMENT_URI of a raw
   * path, encoded; cached briefly (the script resolution behind it stats files) and
   * bounded. Throws CgiRequestError for a path that cannot be mapped.
   */
  private pathPairs(rawPath: string): Buffer {
    const now = coarseNow;
    const hit = this.pathBlocks.get(rawPath);
    if (hit !== undefined && now - hit.at < PATH_CACHE_MS) return hit.block;
    const path = normalizePath(rawPath);
    if (path === null) throw new CgiRequestError(400, `request path ${JSON.stringify(rawPath.slice(0, 200))} is not a valid absolute path`);
    const scriptLen = this.resolver.scriptLength(path);
    if (scriptLen === 0 && this.resolver.restricted) throw new CgiRequestError(404, `no script at ${JSON.stringify(path.slice(0, 200))}`);
    const scriptName = scriptLen > 0 ? path.slice(0, scriptLen) : '';
    const pathInfo = scriptLen > 0 ? path.slice(scriptLen) : path;
    const pairs = ['SCRIPT_NAME', scriptName, 'SCRIPT_FILENAME', this.docRoot + (scriptName || path), 'PATH_INFO', pathInfo];
    if (pathInfo && scriptName) pairs.push('PATH_TRANSLATED', this.docRoot + pathInfo);
    pairs.push('DOCUMENT_URI', path);
    const block = encodePairList(pairs);
    if (this.pathBlocks.size >= MAX_CACHED_PATHS) this.pathBlocks.clear();
    this.pathBlocks.set(rawPath, { block, at: now });
    return block;
  }

  /** SERVER_NAME from the Host header (port dropped), encoded, per host value. */
  private serverNamePair(host: string | undefined, localAddress: string): Buffer {
    const key = host ?? '';
    let block = this.hostBlocks.get(key);
    if (block === undefined) {
      let serverName = host || localAddress;
      if (host) {
        const colon = host.lastIndexOf(':');
        if (colon > 0 && host.indexOf(']') < colon) serverName = host.slice(0, colon);
      }
      block = encodePairList(['SERVER_NAME', serverName]);
      if (this.hostBlocks.size >= MAX_CACHED_NAMES) this.hostBlocks.clear();
      if (host) this.hostBlocks.set(key, block); // no Host: the local address, not cached under ''
    }
    return block;
  }

  /**
   * BEGIN_REQUEST + PARAMS records + the empty PARAMS (+ the empty STDIN when the
   * request has no body), for request id `requestId`. Throws CgiRequestError for a
   * path that cannot be mapped.
   */
  encode(head: RequestHead, bodyLength: number, requestId: number, keepConn: boolean): Buffer {
    const conn = this.connectionState(head.connection);
    const last = conn.last;
    if (last !== null && coarseNow - last.at < PATH_CACHE_MS && last.bodyLength === bodyLength && last.keepConn === keepConn
      && last.target === head.target && last.method === head.method && last.versionMinor === head.versionMinor
      && sameList(last.headers, head.headers)) {
      // A client repeating its last request on this connection (same target, same headers):
      // the same records, with this request id.
      return withRequestId(last.records, requestId);
    }
    const records = this.encodeRecords(head, bodyLength, requestId, keepConn, conn.pairs);
    conn.last = { at: coarseNow, target: head.target, method: head.method, versionMinor: head.versionMinor, headers: head.headers, bodyLength, keepConn, records };
    return records;
  }

  private encodeRecords(head: RequestHead, bodyLength: number, requestId: number, keepConn: boolean, connPairs: Buffer): Buffer {
    const target = head.target;
    const q = target.indexOf('?');
    const pathBlock = this.pathPairs(q < 0 ? target : target.slice(0, q));
    const query = q < 0 ? '' : target.slice(q + 1);
    const hostBlock = this.serverNamePair(head.host, head.connection.localAddress);
    const method = head.method;
    const contentType = head.contentType ?? '';
    const contentLength = bodyLength < 0 ? '' : String(bodyLength);
    const protocol = head.versionMinor === 0 ? 'HTTP/1.0' : 'HTTP/1.1';

    // Forwarded headers: repeated ones joined as nginx does (cookies with "; ").
    const names = this.names;
    const values = this.values;
    names.length = 0;
    values.length = 0;
    const raw = head.headers;
    let size = 0;
    for (let i = 0; i < raw.length; i += 2) {
      const name = this.envName(raw[i]);
      if (name === NO_HEADER) continue;
      let dup = -1;
      for (let k = 0; k < names.length; k++) if (names[k] === name) { dup = k; break; }
      if (dup < 0) {
        names.push(name);
        values.push(raw[i + 1]);
      } else {
        values[dup] += (name === 'HTTP_COOKIE' ? '; ' : ', ') + raw[i + 1];
      }
    }
    for (let k = 0; k < names.length; k++) size += pairSize(names[k], values[k]);

    size += this.fixed.length + connPairs.length + pathBlock.length + hostBlock.length
      + pairSize('QUERY_STRING', query) + pairSize('REQUEST_METHOD', method)
      + pairSize('CONTENT_TYPE', contentType) + pairSize('CONTENT_LENGTH', contentLength)
      + pairSize('REQUEST_URI', target) + pairSize('SERVER_PROTOCOL', protocol);

    const endStdin = bodyLength === 0;
    const paramRecords = Math.max(1, Math.ceil(size / MAX_CONTENT));
    const total = HEADER_LEN + 8 + size + paramRecords * (HEADER_LEN + 7) + HEADER_LEN + (endStdin ? HEADER_LEN : 0);
    const buf = Buffer.allocUnsafe(total);
    let o = writeHeader(buf, 0, RecordType.BeginRequest, requestId, 8, 0);
    buf[o] = 0;
    buf[o + 1] = Role.Responder;
    buf[o + 2] = keepConn ? FCGI_KEEP_CONN : 0;
    buf[o + 3] = 0; buf[o + 4] = 0; buf[o + 5] = 0; buf[o + 6] = 0; buf[o + 7] = 0;
    o += 8;
    const pad = (8 - (size & 7)) & 7;
    // The common case: one PARAMS record; the stream is written in place after its header.
    const streamStart = o + HEADER_LEN;
    let p = streamStart;
    p = putPair(buf, p, 'QUERY_STRING', query);
    p = putPair(buf, p, 'REQUEST_METHOD', method);
    p = putPair(buf, p, 'CONTENT_TYPE', contentType);
    p = putPair(buf, p, 'CONTENT_LENGTH', contentLength);
    p = putPair(buf, p, 'REQUEST_URI', target);
    p = putPair(buf, p, 'SERVER_PROTOCOL', protocol);
    p += pathBlock.copy(buf, p);
    p += hostBlock.copy(buf, p);
    p += this.fixed.copy(buf, p);
    p += connPairs.copy(buf, p);
    for (let k = 0; k < names.length; k++) p = putPair(buf, p, names[k], values[k]);
    if (size <= MAX_CONTENT) {
      writeHeader(buf, o, RecordType.Params, requestId, size, pad);
      buf.fill(0, p, p + pad);
      o = p + pad;
    } else {
      // Rare (huge headers): frame the stream in records of 65535; pairs straddle them.
      const stream = Buffer.from(buf.subarray(streamStart, p));
      for (let start = 0; start < stream.length; start += MAX_CONTENT) {
        const len = Math.min(MAX_CONTENT, stream.length - start);
        const recPad = (8 - (len & 7)) & 7;
        o = writeHeader(buf, o, RecordType.Params, requestId, len, recPad);
        o += stream.copy(buf, o, start, start + len);
        buf.fill(0, o, o + recPad);
        o += recPad;
      }
    }
    o = writeHeader(buf, o, RecordType.Params, requestId, 0, 0);
    if (endStdin) o = writeHeader(buf, o, RecordType.Stdin, requestId, 0, 0);
    return o === total ? buf : buf.subarray(0, o);
  }
}
