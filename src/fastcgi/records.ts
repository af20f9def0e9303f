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
  /**
   * A record's content, as a view of the incoming chunk (no copy where it lies
   * inside one). Stream records (STDOUT, STDERR) are handed out in pieces as they
   * arrive, each non-empty, so a large record is never assembled; the empty content
   * of a stream's end record (length 0) comes as one call with an empty buffer.
   * Other records come whole.
   */
  onRecord(type: number, requestId: number, content: Buffer): void;
  /** The byte stream is not FastCGI: the connection must be dropped. */
  onProtocolError(reason: string): void;
}

const EMPTY = Buffer.alloc(0);
const enum Part { Header, Content, Padding }

function isStream(type: number): boolean {
  return type === RecordType.Stdout || type === RecordType.Stderr;
}

/**
 * Incremental record decoder: records split at any byte boundary, no concatenation
 * of pending bytes with each chunk (a 64 KB record in 16 chunks is copied at most once,
 * and a stream record not at all).
 */
export class RecordDecoder {
  private part = Part.Header;
  private readonly header = Buffer.alloc(HEADER_LEN);
  private headerFill = 0;
  private type = 0;
  private requestId = 0;
  private contentLeft = 0;
  private paddingLeft = 0;
  /** A non-stream record being assembled across chunks. */
  private assembling: Buffer | null = null;
  private assembled = 0;
  private failed = false;

  constructor(private readonly sink: RecordSink) {}

  push(chunk: Buffer): void {
    const total = chunk.length;
    let offset = 0;
    while (offset < total && !this.failed) {
      if (this.part === Part.Header) {
        let h: Buffer;
        let at: number;
        if (this.headerFill === 0 && total - offset >= HEADER_LEN) {
          h = chunk;
          at = offset;
          offset += HEADER_LEN;
        } else {
          const take = Math.min(HEADER_LEN - this.headerFill, total - offset);
          chunk.copy(this.header, this.headerFill, offset, offset + take);
          this.headerFill += take;
          offset += take;
          if (this.headerFill < HEADER_LEN) return;
          this.headerFill = 0;
          h = this.header;
          at = 0;
        }
        if (h[at] !== FCGI_VERSION_1) {
          this.fail(`bad FastCGI version ${h[at]} (expected 1) at record start`);
          return;
        }
        const type = h[at + 1];
        const requestId = (h[at + 2] << 8) | h[at + 3];
        const contentLength = (h[at + 4] << 8) | h[at + 5];
        const paddingLength = h[at + 6];
        if (contentLength === 0) {
          this.paddingLeft = paddingLength;
          this.part = paddingLength > 0 ? Part.Padding : Part.Header;
          this.sink.onRecord(type, requestId, EMPTY);
          continue;
        }
        if (total - offset >= contentLength + paddingLength) {
          // The common case: the whole record lies in this chunk.
          const start = offset;
          offset += contentLength + paddingLength;
          this.sink.onRecord(type, requestId, chunk.subarray(start, start + contentLength));
          continue;
        }
        this.type = type;
        this.requestId = requestId;
        this.contentLeft = contentLength;
        this.paddingLeft = paddingLength;
        this.part = Part.Content;
        if (!isStream(type)) {
          this.assembling = Buffer.allocUnsafe(contentLength);
          this.assembled = 0;
        }
      }
      if (this.part === Part.Content) {
        const take = Math.min(this.contentLeft, total - offset);
        if (take > 0) {
          if (this.assembling) {
            chunk.copy(this.assembling, this.assembled, offset, offset + take);
            this.assembled += take;
          } else {
            this.sink.onRecord(this.type, this.requestId, chunk.subarray(offset, offset + take));
          }
          offset += take;
          this.contentLeft -= take;
        }
        if (this.contentLeft > 0) return;
        this.part = this.paddingLeft > 0 ? Part.Padding : Part.Header;
        const whole = this.assembling;
        if (whole) {
          this.assembling = null;
          this.sink.onRecord(this.type, this.requestId, whole);
        }
        continue;
      }
      // Padding
      const skip = Math.min(this.paddingLeft, total - offset);
      offset += skip;
      this.paddingLeft -= skip;
      if (this.paddingLeft === 0) this.part = Part.Header;
    }
  }

  fail(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    this.assembling = null;
    this.sink.onProtocolError(reason);
  }
}

export { RecordType };
