// A request body sent chunked (no Content-Length) is read whole before the request
// goes to a backend that needs its length, as nginx does: CGI needs CONTENT_LENGTH
// (PHP reads exactly that many bytes). Up to `memoryLimit` bytes stay in memory;
// beyond, the body goes to a temp file (mode 0600, removed after use), so a large
// upload is never held whole in memory. Over `maxBytes` it stops with an error.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BodySink, BodySource } from './exchange.js';

let spoolCounter = 0;

export class BodyTooLarge extends Error {}

export class BodySpool implements BodySink, BodySource {
  private chunks: Buffer[] = [];
  length = 0;
  private file: fs.WriteStream | null = null;
  private filePath: string | null = null;
  private done: ((err: Error | null, length: number) => void) | null = null;
  private replaying: fs.ReadStream | null = null;
  private replayPaused = false;
  private replayIndex = 0;
  private replaySink: BodySink | null = null;

  constructor(private readonly source: BodySource, private readonly memoryLimit: number, private readonly maxBytes: number,
    private readonly dir = os.tmpdir()) {}

  /** Reads the whole body; `cb` gets its length, or an error (client gone, too large, disk error). */
  collect(cb: (err: Error | null, length: number) => void): void {
    this.done = cb;
    this.source.readBody(this);
  }

  private finish(err: Error | null): void {
    const cb = this.done;
    if (!cb) return;
    this.done = null;
    if (err) this.discard();
    cb(err, this.length);
  }

  // --- BodySink (from the client) ---

  onBodyData(chunk: Buffer): boolean {
    if (this.done === null) return true;
    this.length += chunk.length;
    if (this.maxBytes > 0 && this.length > this.maxBytes) {
      this.finish(new BodyTooLarge(`the request body exceeds ${this.maxBytes} bytes (max-body-size)`));
      return true;
    }
    if (this.file) {
      if (this.file.write(chunk)) return true;
      this.file.once('drain', () => this.source.resumeBody());
      return false;
    }
    this.chunks.push(chunk); // the HTTP layer never reuses a read buffer: chunks may be kept
    if (this.length > this.memoryLimit) this.spill();
    return true;
  }

  onBodyEnd(): void {
    if (!this.file) { this.finish(null); return; }
    this.file.end(() => this.finish(null));
  }

  onBodyError(err: Error): void {
    this.finish(err);
  }

  private spill(): void {
    this.filePath = path.join(this.dir, `upfront-body-${process.pid}-${++spoolCounter}`);
    this.file = fs.createWriteStream(this.filePath, { mode: 0o600 });
    this.file.on('error', (err) => this.finish(err));
    for (const c of this.chunks) this.file.write(c);
    this.chunks = [];
  }

  // --- BodySource (to the backend): the collected body; again from memory after rewind() ---

  readBody(sink: BodySink): void {
    this.replaySink = sink;
    if (!this.filePath) {
      this.pump();
      return;
    }
    const filePath = this.filePath;
    this.filePath = null;
    // Opened, then gone from the directory at once: nothing is left behind whatever happens
    // next, and not after the response either (an unlink on the stream's close could be).
    let fd: number;
    try {
      fd = fs.openSync(filePath, 'r');
    } catch (err) {
      fs.unlink(filePath, () => {});
      sink.onBodyError(err as Error);
      return;
    }
    try { fs.unlinkSync(filePath); } catch { /* already gone: the fd still reads it */ }
    const rs = fs.createReadStream('', { fd, highWaterMark: 64 * 1024 });
    this.replaying = rs;
    rs.on('data', (c) => { if (!sink.onBodyData(c as Buffer)) rs.pause(); });
    rs.once('end', () => sink.onBodyEnd());
    rs.once('error', (err) => sink.onBodyError(err));
  }

  private pump(): void {
    const sink = this.replaySink!;
    while (this.replayIndex < this.chunks.length && !this.replayPaused) {
      const c = this.chunks[this.replayIndex++];
      if (!sink.onBodyData(c)) this.replayPaused = true;
    }
    if (this.replayIndex === this.chunks.length && !this.replayPaused) {
      this.replayIndex++; // the chunks stay until the request is gone: a refused attempt sends them again
      sink.onBodyEnd();
    }
  }

  /** A body held in memory can be sent again (the backend refused it unread); one in a temp file is read once. */
  rewind(): boolean {
    if (this.file !== null || this.replaying !== null) return false;
    this.replayIndex = 0;
    this.replayPaused = false;
    this.replaySink = null;
    return true;
  }

  pauseBody(): void {
    if (this.replaying) this.replaying.pause();
    else this.replayPaused = true;
  }

  resumeBody(): void {
    if (this.replaying) this.replaying.resume();
    else if (this.replayPaused && this.replaySink) {
      this.replayPaused = false;
      this.pump();
    }
  }

  /** Drops what was collected and the temp file. */
  discard(): void {
    this.chunks = [];
    if (this.file) this.file.destroy();
    if (this.replaying) this.replaying.destroy();
    if (this.filePath) { fs.unlink(this.filePath, () => {}); this.filePath = null; }
  }
}
