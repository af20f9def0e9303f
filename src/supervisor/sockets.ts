// Listening unix sockets for backends: created by the front (bind + listen, never
// accepted on here) and handed to children as fd 0, as spawn-fcgi does.
import fs from 'node:fs';
import net from 'node:net';
import { closeFd, listenUnix } from '../native/sock.js';

export class SocketInUseError extends Error {}

/** Removes a stale socket file, or fails when a live server answers on it. */
export async function clearSocketPath(socketPath: string): Promise<void> {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new SocketInUseError(`${socketPath} exists and is not a socket; remove it or choose another path`);
  const live = await new Promise<boolean>((resolve) => {
    const s = net.connect({ path: socketPath });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EAGAIN'));
  });
  if (live) throw new SocketInUseError(`socket ${socketPath} is taken by a live server; stop it or choose another path`);
  fs.unlinkSync(socketPath);
}

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
