// Sends one opened file as the response: validators (ETag, Last-Modified) with 304,
// one byte range (206 / 416), HEAD, and the body streamed from disk with
// backpressure (a read is issued only when the client took the last one). The file
// descriptor is closed exactly once, whatever the client does.
import fs from 'node:fs';
import type { ClientEvents, ClientExchange } from '../exchange.js';

/** A regular file opened for reading (fstat's figures). */
export interface OpenedFile {
  fd: number;
  size: number;
  mtimeMs: number;
}

export interface FileResponse {
  contentType: string;
  /** The file is a precompressed variant (a .br or .gz sibling): its Content-Encoding. */
  encoding: string | null;
  /** Add `Vary: Accept-Encoding` (a representation was chosen by it). */
  vary: boolean;
  /** More header fields, flat [name, value, ...] (kept from a backend's X-Accel-Redirect response). */
  extra: readonly string[];
}

/** Bytes per disk read: large enough for few reads, small enough to follow a slow client. */
const READ_BYTES = 64 * 1024;

/** nginx's ETag: hex of the modification time (seconds) and of the size. */
export function etagOf(file: OpenedFile): string {
  return `"${Math.floor(file.mtimeMs / 1000).toString(16)}-${file.size.toString(16)}"`;
}

export function findHeader(headers: readonly string[], lowerName: string): string | undefined {
  const n = lowerName.length;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name.length === n && name.toLowerCase() === lowerName) return headers[i + 1];
  }
  return undefined;
}

/** If-None-Match: a list of entity tags or "*"; compared weakly (RFC 9110 13.1.2). */
export function noneMatch(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  const plain = etag.startsWith('W/') ? etag.slice(2) : etag;
  for (const part of header.split(',')) {
    const t = part.trim();
    if ((t.startsWith('W/') ? t.slice(2) : t) === plain) return true;
  }
  return false;
}

export type RangeVerdict = { kind: 'none' } | { kind: 'range'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * One byte range of `size` bytes: "bytes=A-B", "bytes=A-", "bytes=-N". Several
 * ranges, other units or bad syntax are ignored (the whole file is sent, as RFC 9110 allows).
 */
export function parseRange(header: string, size: number): RangeVerdict {
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'none' };
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return { kind: 'unsatisfiable' };
    return size === 0 ? { kind: 'unsatisfiable' } : { kind: 'range', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  let end = m[2] === '' ? size - 1 : Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) return { kind: 'none' };
  if (start >= size) return { kind: 'unsatisfiable' };
  if (end < start) return { kind: 'none' };
  if (end >= size) end = size - 1;
  return { kind: 'range', start, end };
}

/** Answers the request with the file (or 304 / 206 / 416), then closes it. */
export function sendFile(ex: ClientExchange, file: OpenedFile, r: FileResponse): void {
  const etag = etagOf(file);
  const lastModified = new Date(Math.floor(file.mtimeMs / 1000) * 1000).toUTCString();
  const headers: string[] = ['Content-Type', r.contentType, 'Last-Modified', lastModified, 'ETag', etag];
  if (r.encoding !== null) headers.push('Content-Encoding', r.encoding);
  if (r.vary) headers.push('Vary', 'Accept-Encoding');
  for (let i = 0; i < r.extra.length; i += 2) headers.push(r.extra[i], r.extra[i + 1]);
  const req = ex.headers;
  const inm = findHeader(req, 'if-none-match');
  const ims = inm === undefined ? findHeader(req, 'if-modified-since') : undefined;
  if ((inm !== undefined && noneMatch(inm, etag))
    || (ims !== undefined && !Number.isNaN(Date.parse(ims)) && Math.floor(file.mtimeMs / 1000) * 1000 <= Date.parse(ims))) {
    closeQuietly(file.fd);
    ex.respond(304, null, headers, null);
    return;
  }
  headers.push('Accept-Ranges', 'bytes');
  let start = 0;
  let end = file.size - 1;
  let status = 200;
  const range = findHeader(req, 'range');
  if (range !== undefined && rangeStillValid(findHeader(req, 'if-range'), etag, lastModified)) {
    const v = parseRange(range, file.size);
    if (v.kind === 'unsatisfiable') {
      closeQuietly(file.fd);
      ex.respond(416, null, ['Content-Range', `bytes */${file.size}`, 'Content-Type', 'text/plain; charset=utf-8'], `416 Range Not Satisfiable: ${file.size} bytes\n`);
      return;
    }
    if (v.kind === 'range') {
      start = v.start;
      end = v.end;
      status = 206;
      headers.push('Content-Range', `bytes ${start}-${end}/${file.size}`);
    }
  }
  const length = end - start + 1;
  ex.writeHead(status, null, headers, length);
  if (length === 0 || ex.method === 'HEAD') {
    closeQuietly(file.fd);
    ex.end();
    return;
  }
  new FileSender(ex, file.fd, start, end + 1).pump();
}

/** If-Range: the range applies only while the validator still names this file. */
function rangeStillValid(ifRange: string | undefined, etag: string, lastModified: string): boolean {
  if (ifRange === undefined) return true;
  const v = ifRange.trim();
  if (v.startsWith('"')) return v === etag; // strong comparison
  if (v.startsWith('W/')) return false;
  return v === lastModified;
}

export function closeQuietly(fd: number): void {
  fs.close(fd, () => { /* nothing to do about a failed close of a read-only file */ });
}

/** Reads the file in pieces and writes them to the client, one read in flight, waiting for drain. */
class FileSender implements ClientEvents {
  private reading = false;
  private waitingForDrain = false;
  private closed = false;
  private gone = false;

  constructor(private readonly ex: ClientExchange, private readonly fd: number, private pos: number, private readonly end: number) {
    ex.setClientEvents(this);
  }

  pump(): void {
    if (this.reading || this.waitingForDrain || this.gone) return;
    const n = Math.min(READ_BYTES, this.end - this.pos);
    this.reading = true;
    fs.read(this.fd, Buffer.allocUnsafe(n), 0, n, this.pos, this.onRead);
  }

  private readonly onRead = (err: NodeJS.ErrnoException | null, bytes: number, buf: Buffer): void => {
    this.reading = false;
    if (this.gone) return this.close();
    if (err || bytes === 0) {
      // A read error, or the file shrank under us: the client must see the response cut.
      this.close();
      this.ex.destroy();
      return;
    }
    this.pos += bytes;
    const more = this.ex.write(bytes === buf.length ? buf : buf.subarray(0, bytes));
    if (this.pos >= this.end) {
      this.close();
      this.ex.end();
      return;
    }
    if (more) this.pump();
    else this.waitingForDrain = true;
  };

  onClientDrain(): void {
    this.waitingForDrain = false;
    this.pump();
  }

  onClientClose(): void {
    this.gone = true;
    if (!this.reading) this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    closeQuietly(this.fd);
  }
}
