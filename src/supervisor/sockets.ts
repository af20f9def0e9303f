// Listening unix sockets for backends: created by the front (bind + listen, never
// accepted on here) and handed to children as fd 0, as spawn-fcgi does.
import fs from 'node:fs';
import { clearSocketPath } from '../listen.js';
import { closeFd, listenUnix } from '../native/sock.js';

export class ListeningSocket {
  private constructor(readonly path: string, readonly fd: number, readonly backlog: number) {}

  static async create(socketPath: string, backlog: number, mode = 0o660): Promise<ListeningSocket> {
    await clearSocketPath(socketPath);
    const fd = listenUnix(socketPath, backlog);
    try { fs.chmodSync(socketPath, mode); } catch { /* best effort */ }
    return new ListeningSocket(socketPath, fd, backlog);
  }

  private closed = false;

  /** Idempotent: closing an fd twice would close whatever libuv opened under that number since. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
    try { fs.unlinkSync(this.path); } catch { /* already gone */ }
  }
}
