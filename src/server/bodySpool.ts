// A request body sent chunked (no Content-Length) is read whole before the request
// goes to the backend, as nginx does: CGI needs CONTENT_LENGTH (PHP reads exactly
// that many bytes). Up to `memoryLimit` bytes stay in memory; beyond, the body goes
// to a temp file, so a large upload is never held whole in memory.
import fs from 'node:fs';
import type { IncomingMessage } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';

let spoolCounter = 0;

export class BodySpool {
  private chunks: Buffer[] = [];
  length = 0;
  private file: fs.WriteStream | null = null;
  private filePath: string | null = null;
  private finished = false;

  constructor(private readonly req: IncomingMessage, private readonly memoryLimit: number, private readonly dir = os.tmpdir()) {}

  /** Reads the whole body; `cb` gets the length, or an error (client gone, disk error). */
  collect(cb: (err: Error | null, length: number) => void): void {
    const req = this.req;
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      if (err) this.discard();
      cb(err, this.length);
    };
    req.on('data', (chunk: Buffer) => {
      this.length += chunk.length;
      if (this.file) {
        if (!this.file.write(chunk)) {
          req.pause();
          this.file.once('drain', () => req.resume());
        }
        return;
      }
      this.chunks.push(chunk);
      if (this.length > this.memoryLimit) this.spill((err) => { if (err) finish(err); });
    });
    req.once('end', () => {
      if (!this.file) { this.finished = true; finish(null); return; }
      this.file.end(() => { this.finished = true; finish(null); });
    });
    req.once('error', finish);
    req.once('close', () => { if (!req.readableEnded) finish(new Error('the client closed the connection while sending the body')); });
  }

  private spill(onError: (err: Error) => void): void {
    this.filePath = path.join(this.dir, `upfront-body-${process.pid}-${++spoolCounter}`);
    this.file = fs.createWriteStream(this.filePath, { mode: 0o600 });
    this.file.on('error', onError);
    for (const c of this.chunks) this.file.write(c);
    this.chunks = [];
  }

  /** The collected body, once; the temp file is removed when it has been read or dropped. */
  stream(): Readable {
    if (!this.finished) throw new Error('body not collected yet');
    if (!this.filePath) return Readable.from(this.chunks, { objectMode: false });
    const filePath = this.filePath;
    const rs = fs.createReadStream(filePath, { highWaterMark: 64 * 1024 });
    rs.once('close', () => fs.unlink(filePath, () => {}));
    return rs;
  }

  discard(): void {
    this.chunks = [];
    if (this.file) this.file.destroy();
    if (this.filePath) fs.unlink(this.filePath, () => {});
  }
}
