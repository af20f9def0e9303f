// A response the client reads more slowly than the backend writes it is taken from
// the backend anyway, as nginx's fastcgi_buffering / proxy_buffering do: in memory up
// to a bound, then in a temp file (mode 0600, removed when done) up to another, so a
// slow reader never pins a backend slot. Only beyond both does the backend wait.
// The file is written and read with blocking calls in 64 KiB steps (page cache, like
// nginx without aio); this runs only for slow readers of large responses.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Bytes held now and over time, for /stats. */
export class BufferCounters {
  memoryBytes = 0;
  fileBytes = 0;
  /** Responses that had to be buffered, and those that spilled to a file. */
  buffered = 0;
  spilled = 0;
}

let fileCounter = 0;
const READ_STEP = 64 * 1024;

export class ResponseBuffer {
  private chunks: Buffer[] = [];
  private memBytes = 0;
  private fd = -1;
  private filePath = '';
  private writePos = 0;
  private readPos = 0;

  constructor(private readonly memoryLimit: number, private readonly fileLimit: number,
    private readonly counters: BufferCounters, private readonly dir = os.tmpdir()) {
    counters.buffered++;
  }

  get empty(): boolean {
    return this.memBytes === 0 && this.readPos === this.writePos;
  }

  /** Keeps a chunk (kept as is: read buffers are not reused); false when both limits are reached (pause the backend). */
  push(chunk: Buffer): boolean {
    if (this.fd < 0 && this.memBytes + chunk.length <= this.memoryLimit) {
      this.chunks.push(chunk);
      this.memBytes += chunk.length;
      this.counters.memoryBytes += chunk.length;
      return true;
    }
    if (this.fd < 0) this.open();
    fs.writeSync(this.fd, chunk, 0, chunk.length, this.writePos);
    this.writePos += chunk.length;
    this.counters.fileBytes += chunk.length;
    return this.writePos - this.readPos < this.fileLimit;
  }

  private open(): void {
    this.filePath = path.join(this.dir, `upfront-response-${process.pid}-${++fileCounter}`);
    this.fd = fs.openSync(this.filePath, 'w+', 0o600);
    fs.unlinkSync(this.filePath); // gone from the directory at once: nothing left behind, whatever happens
    this.counters.spilled++;
  }

  /**
   * Writes what it holds to `target` until its write() returns false or nothing is left;
   * returns true when everything was handed over.
   */
  drainTo(target: { write(chunk: Buffer): boolean }): boolean {
    while (this.chunks.length > 0) {
      const c = this.chunks.shift()!;
      this.memBytes -= c.length;
      this.counters.memoryBytes -= c.length;
      if (!target.write(c)) return this.empty;
    }
    while (this.readPos < this.writePos) {
      const n = Math.min(READ_STEP, this.writePos - this.readPos);
      const buf = Buffer.allocUnsafe(n);
      const got = fs.readSync(this.fd, buf, 0, n, this.readPos);
      this.readPos += got;
      this.counters.fileBytes -= got;
      if (!target.write(got === n ? buf : buf.subarray(0, got))) return this.empty;
    }
    return true;
  }

  /** Drops what is held (client gone, or done). */
  release(): void {
    this.counters.memoryBytes -= this.memBytes;
    this.memBytes = 0;
    this.chunks = [];
    if (this.fd >= 0) {
      this.counters.fileBytes -= this.writePos - this.readPos;
      fs.closeSync(this.fd);
      this.fd = -1;
      this.readPos = this.writePos;
    }
  }
}
