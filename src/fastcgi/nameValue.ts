// Name-value pairs (specification 3.4): lengths of 1 byte (< 128) or 4 bytes with
// the top bit set. Strings are handled as latin1 ("binary"), so the bytes a client
// sent in its request line and headers reach the backend unchanged.

export const MAX_NAME_VALUE_LENGTH = 0x7fffffff;

function lengthSize(len: number): number {
  return len < 128 ? 1 : 4;
}

function writeLength(buf: Buffer, offset: number, len: number): number {
  if (len < 128) {
    buf[offset] = len;
    return offset + 1;
  }
  buf.writeUInt32BE((len | 0x80000000) >>> 0, offset);
  return offset + 4;
}

/** Encoded size of flat [name, value, name, value, ...] pairs (latin1). */
export function pairsLength(pairs: readonly string[]): number {
  let total = 0;
  for (let i = 0; i < pairs.length; i += 2) {
    const n = pairs[i].length;
    const v = pairs[i + 1].length;
    total += lengthSize(n) + lengthSize(v) + n + v;
  }
  return total;
}

/** Writes the pair stream (unframed) into `buf` at `offset`; returns the new offset. */
export function writePairs(buf: Buffer, offset: number, pairs: readonly string[]): number {
  for (let i = 0; i < pairs.length; i += 2) {
    const name = pairs[i];
    const value = pairs[i + 1];
    offset = writeLength(buf, offset, name.length);
    offset = writeLength(buf, offset, value.length);
    offset += buf.latin1Write(name, offset);
    offset += buf.latin1Write(value, offset);
  }
  return offset;
}

/** Unframed name-value stream of the pairs. */
export function encodePairs(pairs: readonly string[]): Buffer {
  const buf = Buffer.allocUnsafe(pairsLength(pairs));
  writePairs(buf, 0, pairs);
  return buf;
}

/**
 * Streaming decoder of a name-value stream: pairs may straddle record (chunk)
 * boundaries. `end()` reports a truncated pair.
 */
export class NameValueDecoder {
  private buffered: Buffer = Buffer.alloc(0);
  readonly pairs: Array<[string, string]> = [];

  constructor(private readonly maxTotal = 1 << 20) {}

  push(chunk: Buffer): void {
    const data = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    if (data.length > this.maxTotal) throw new Error(`name-value stream exceeds ${this.maxTotal} bytes`);
    let offset = 0;
    for (;;) {
      const start = offset;
      const nameLen = readLength(data, offset);
      if (nameLen < 0) break;
      offset += data[offset] < 128 ? 1 : 4;
      const valueLen = readLength(data, offset);
      if (valueLen < 0) { offset = start; break; }
      offset += data[offset] < 128 ? 1 : 4;
      if (offset + nameLen + valueLen > data.length) { offset = start; break; }
      const name = data.toString('latin1', offset, offset + nameLen);
      offset += nameLen;
      const value = data.toString('latin1', offset, offset + valueLen);
      offset += valueLen;
      this.pairs.push([name, value]);
    }
    this.buffered = Buffer.from(data.subarray(offset));
  }

  /** Throws when the stream ended inside a pair. */
  end(): Array<[string, string]> {
    if (this.buffered.length) throw new Error(`name-value stream truncated: ${this.buffered.length} bytes of an incomplete pair`);
    return this.pairs;
  }
}

/** Reads a length at offset; -1 when not enough bytes. */
function readLength(data: Buffer, offset: number): number {
  if (offset >= data.length) return -1;
  const first = data[offset];
  if (first < 128) return first;
  if (offset + 4 > data.length) return -1;
  return data.readUInt32BE(offset) & 0x7fffffff;
}

export function decodePairs(content: Buffer): Array<[string, string]> {
  const decoder = new NameValueDecoder();
  decoder.push(content);
  return decoder.end();
}
