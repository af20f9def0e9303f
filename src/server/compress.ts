// --compress: gzip or brotli (node:zlib, off the main thread) for text responses
// above a size, for clients that take it. A wrapper around the client exchange,
// made only for a request whose client accepts br or gzip (and is not HEAD), so the
// proxy and the file sender write as usual. Never compressed: a response that has a
// Content-Encoding already (a precompressed file, an app that compresses), a range
// (206) or any status but 200-203, `Cache-Control: no-transform`, a type that is not
// text-like, a declared length under the minimum.
import zlib from 'node:zlib';
import type { ClientConnection } from '../transport.js';
import type { OwnerAware } from './accessLog.js';
import { ACCEPTS_BR } from './acceptEncoding.js';
import type { BodySink, ClientEvents, ClientExchange } from './exchange.js';
import { isCompressibleType } from './static/mimeTypes.js';

export interface CompressOptions {
  /** Responses declared shorter than this go out as they are. */
  minSize: number;
}

// Levels for responses made per request: fast, most of the gain (nginx's gzip default is 1, Caddy's 5).
const GZIP_OPTIONS: zlib.ZlibOptions = { level: 5 };
const BROTLI_QUALITY = 4;

type Encoding = 'br' | 'gzip';

/**
 * The headers of a compressed response, or null when this one must go out as it is.
 * Drops Content-Length (the layer frames), Accept-Ranges (ranges of the encoded form
 * are not offered); weakens a strong ETag; adds Content-Encoding and Vary.
 */
export function compressedHeaders(status: number, headers: readonly string[], declaredLength: number, minSize: number, encoding: Encoding): string[] | null {
  if (status < 200 || status > 203) return null;
  if (declaredLength >= 0 && declaredLength < minSize) return null;
  let typeOk = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i].toLowerCase();
    if (name === 'content-encoding' || name === 'content-range') return null;
    if (name === 'cache-control' && /(^|[\s,])no-transform($|[\s,;])/i.test(headers[i + 1])) return null;
    if (name === 'content-type') typeOk = isCompressibleType(headers[i + 1]);
  }
  if (!typeOk) return null;
  const out: string[] = [];
  let vary = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i].toLowerCase();
    const value = headers[i + 1];
    if (name === 'content-length' || name === 'accept-ranges') continue;
    if (name === 'etag' && !value.startsWith('W/')) { out.push(headers[i], `W/${value}`); continue; }
    if (name === 'vary') {
      vary = true;
      if (value.trim() !== '*' && !/(^|,)\s*accept-encoding\s*(,|$)/i.test(value)) { out.push(headers[i], `${value}, Accept-Encoding`); continue; }
    }
    out.push(headers[i], value);
  }
  out.push('Content-Encoding', encoding);
  if (!vary) out.push('Vary', 'Accept-Encoding');
  return out;
}

/** A client exchange whose response body may go through a compressor. */
export class CompressingExchange implements ClientExchange, ClientEvents {
  readonly method: string;
  readonly target: string;
  readonly versionMinor: number;
  readonly headers: readonly string[];
  readonly host: string | undefined;
  readonly contentType: string | undefined;
  readonly connection: ClientConnection;
  readonly contentLength: number;
  readonly chunked: boolean;
  private events: ClientEvents | null = null;
  private z: zlib.Gzip | zlib.BrotliCompress | null = null;
  private started = false;
  private done = false;
  /** write() returned false to the caller: it waits for onClientDrain. */
  private owesDrain = false;
  private flushScheduled = false;
  private readonly encoding: Encoding;

  constructor(readonly inner: ClientExchange, accepted: number, private readonly options: CompressOptions) {
    this.method = inner.method;
    this.target = inner.target;
    this.versionMinor = inner.versionMinor;
    this.headers = inner.headers;
    this.host = inner.host;
    this.contentType = inner.contentType;
    this.connection = inner.connection;
    this.contentLength = inner.contentLength;
    this.chunked = inner.chunked;
    this.encoding = (accepted & ACCEPTS_BR) !== 0 ? 'br' : 'gzip';
    inner.setClientEvents(this);
  }

  get headersSent(): boolean { return this.started || this.inner.headersSent; }
  get finished(): boolean { return this.done || this.inner.finished; }
  get maxResponseHeadBytes(): number | undefined { return this.inner.maxResponseHeadBytes; }

  readBody(sink: BodySink): void { this.inner.readBody(sink); }
  pauseBody(): void { this.inner.pauseBody(); }
  resumeBody(): void { this.inner.resumeBody(); }
  setClientEvents(events: ClientEvents): void {
    this.events = events;
    // The access log under this wrapper wants to know the request (its backend and timings).
    (this.inner as Partial<OwnerAware>).noteOwner?.(events);
  }

  respond(status: number, reason: string | null, headers: string[], body: Buffer | string | null): void {
    if (this.done) return;
    this.started = true;
    this.done = true;
    const data = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const out = data !== null ? compressedHeaders(status, headers, data.length, this.options.minSize, this.encoding) : null;
    if (out === null) return this.inner.respond(status, reason, headers, data);
    const done = (err: Error | null, compressed: Buffer) => {
      if (err) return this.inner.destroy();
      this.inner.respond(status, reason, out, compressed);
    };
    if (this.encoding === 'br') zlib.brotliCompress(data!, brotliOptions(data!.length), done);
    else zlib.gzip(data!, GZIP_OPTIONS, done);
  }

  writeHead(status: number, reason: string | null, headers: string[], contentLength: number): void {
    if (this.done || this.started) return this.inner.writeHead(status, reason, headers, contentLength);
    this.started = true;
    const out = compressedHeaders(status, headers, contentLength, this.options.minSize, this.encoding);
    if (out === null) return this.inner.writeHead(status, reason, headers, contentLength);
    const z = this.encoding === 'br' ? zlib.createBrotliCompress(brotliOptions(contentLength)) : zlib.createGzip(GZIP_OPTIONS);
    z.on('data', this.onCompressed);
    z.on('end', this.onCompressorEnd);
    z.on('drain', this.onCompressorDrain);
    z.on('error', this.onCompressorError);
    this.z = z;
    this.inner.writeHead(status, reason, out, -1);
  }

  write(chunk: Buffer): boolean {
    const z = this.z;
    if (z === null) return this.inner.write(chunk);
    if (this.done) return true;
    const more = z.write(chunk);
    if (!this.flushScheduled) {
      // A response that pauses (a stream of events) must not wait in the compressor:
      // flush once the writes of this turn are in.
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
    if (!more) this.owesDrain = true;
    return more;
  }

  end(): void {
    const z = this.z;
    if (z === null) {
      this.done = true;
      return this.inner.end();
    }
    if (this.done) return;
    this.done = true;
    z.end();
  }

  destroy(): void {
    this.done = true;
    this.z?.destroy();
    this.inner.destroy();
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const z = this.z;
    if (z === null || z.destroyed || z.writableEnded) return;
    if (this.encoding === 'br') z.flush(zlib.constants.BROTLI_OPERATION_FLUSH);
    else z.flush(zlib.constants.Z_SYNC_FLUSH);
  };

  private readonly onCompressed = (out: Buffer): void => {
    if (!this.inner.write(out)) this.z?.pause();
  };

  private readonly onCompressorEnd = (): void => {
    this.inner.end();
  };

  private readonly onCompressorDrain = (): void => {
    if (!this.owesDrain) return;
    this.owesDrain = false;
    this.events?.onClientDrain();
  };

  private readonly onCompressorError = (): void => {
    this.inner.destroy();
  };

  // --- ClientEvents from the inner exchange ---

  onClientDrain(): void {
    const z = this.z;
    if (z !== null) z.resume();
    else this.events?.onClientDrain();
  }

  onClientClose(): void {
    this.done = true;
    this.z?.destroy();
    this.events?.onClientClose();
  }
}

function brotliOptions(length: number): zlib.BrotliOptions {
  const params: Record<number, number> = { [zlib.constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY };
  if (length > 0) params[zlib.constants.BROTLI_PARAM_SIZE_HINT] = length;
  return { params };
}
