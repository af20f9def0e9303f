// Record framing: encoding into one buffer per write, and an incremental decoder
// that copes with records split at any byte boundary.
import { FCGI_VERSION_1, HEADER_LEN, MAX_CONTENT, RecordType } from './protocol.js';

/** Writes one record header at `offset`; returns the offset after it. */
export function writeHeader(buf: Buffer, offset: number, type: number, requestId: number,
  contentLength: number, paddingLength: number): number {
  buf[offset] = FCGI_VERSION_1;
  buf[offset + 1] = type;
  buf[offset + 2] = requestId >> 8;
  buf[offset + 3] = requestId & 0xff;
  buf[offset + 4] = contentLength >> 8;
  buf[offset + 5] = contentLength & 0xff;
  buf[offset + 6] = paddingLength;
  buf[offset + 7] = 0;
  return offset + HEADER_LEN;
}

function paddingFor(length: number): number {
  return (8 - (length & 7)) & 7;
}

/** Bytes needed to frame `length` bytes of stream content as records (without the end record). */
export function framedLength(length: number): number {
  if (length === 0) return 0;
  const full = Math.floor(length / MAX_CONTENT);
  const rest = length - full * MAX_CONTENT;
  let total = full * (HEADER_LEN + MAX_CONTENT + paddingFor(MAX_CONTENT));
  if (rest > 0) total += HEADER_LEN + rest + paddingFor(rest);
  return total;
}

/** Frames `content` as one or more records of `type` into `buf` at `offset`; returns the new offset. */
export function writeStream(buf: Buffer, offset: number, type: number, requestId: number,
  content: Buffer | Uint8Array, start = 0, end = content.length): number {
  while (start < end) {
    const len = Math.min(MAX_CONTENT, end - start);
    const pad = paddingFor(len);
    offset = writeHeader(buf, offset, type, requestId, len, pad);
    buf.set(content.subarray(start, start + len), offset);
    offset += len;
    buf.fill(0, offset, offset + pad);
    offset += pad;
    start += len;
  }
  return offset;
}

/** One record of `type` with `content` (≤ 65535 bytes), padded. */
export function encodeRecord(type: number, requestId: number, content?: Buffer): Buffer {
  const len = content ? content.length : 0;
  if (len > MAX_CONTENT) throw new RangeError(`record content ${len} exceeds ${MAX_CONTENT}`);
  const pad = paddingFor(len);
  const buf = Buffer.alloc(HEADER_LEN + len + pad);
  writeHeader(buf, 0, type, requestId, len, pad);
  if (content) content.copy(buf, HEADER_LEN);
  return buf;
}

/** STDIN data as records, split at 65535; an empty `data` gives the end-of-stream record. */
export function encodeStream(type: number, requestId: number, data: Buffer): Buffer {
  if (data.length === 0) return encodeRecord(type, requestId);
  const buf = Buffer.allocUnsafe(framedLength(data.length));
  writeStream(buf, 0, type, requestId, data);
  return buf;
}

export interface RecordSink {
  /** `content` is a view into the read buffer: valid only during the call. */
  onRecord(type: number, requestId: number, content: Buffer): void;
  /** The byte stream is not FastCGI: the connection must be dropped. */
  onProtocolError(reason: string): void;
}

/**
 * Incremental record decoder. Content is handed out as views of the incoming chunk
 * whenever a record lies inside it (the common case: no copy); records split across
 * chunks are assembled in a growing buffer.
 */
export class RecordDecoder {
  private pending: Buffer | null = null; // bytes of an incomplete record
  private failed = false;

  constructor(private readonly sink: RecordSink) {}

  get hasPartial(): boolean {
    return this.pending !== null && this.pending.length > 0;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    let data = chunk;
    if (this.pending) {
      data = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let offset = 0;
    const total = data.length;
    while (total - offset >= HEADER_LEN) {
      if (data[offset] !== FCGI_VERSION_1) {
        this.fail(`bad FastCGI version ${data[offset]} (expected 1) at record start`);
        return;
      }
      const type = data[offset + 1];
      const requestId = (data[offset + 2] << 8) | data[offset + 3];
      const contentLength = (data[offset + 4] << 8) | data[offset + 5];
      const paddingLength = data[offset + 6];
      const recordEnd = offset + HEADER_LEN + contentLength + paddingLength;
      if (recordEnd > total) break;
      const contentStart = offset + HEADER_LEN;
      offset = recordEnd;
      this.sink.onRecord(type, requestId, data.subarray(contentStart, contentStart + contentLength));
      if (this.failed) return;
    }
    if (offset < total) this.pending = Buffer.from(data.subarray(offset));
  }

  fail(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    this.pending = null;
    this.sink.onProtocolError(reason);
  }
}

export { RecordType };
