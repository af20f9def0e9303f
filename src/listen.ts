// Listening on HOST:PORT or unix:PATH with errors that say what to do, the address
// as users write it, and a unix socket path cleared of a stale socket first. A leaf:
// the public and admin listeners (any net.Server: node:http's, or the http1 layer's
// `net`) and the backend sockets the supervisor creates all use it.
import fs from 'node:fs';
import net from 'node:net';
import type { ListenAddress, PublicListenAddress } from './config/schema.js';

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

export interface ListenOptions {
  /** Named in errors: "" for the public listener, "admin address " for the admin one. */
  label: string;
  /** What to do about EADDRINUSE. */
  inUseHint: string;
  backlog?: number;
  /** Create a unix socket with this umask, so it is never open to others. */
  umask?: number;
}

export async function listenOn(server: net.Server, at: ListenAddress | PublicListenAddress, opts: ListenOptions): Promise<string> {
  if (at.kind === 'unix') await clearSocketPath(at.path);
  await new Promise<void>((resolve, reject) => {
    const where = at.kind === 'unix' ? `unix:${at.path}` : at.kind === 'fd' ? `fd:${at.fd}` : `${at.host}:${at.port}`;
    const onError = (err: NodeJS.ErrnoException) => {
      reject(new Error(err.code === 'EADDRINUSE' ? `cannot listen on ${opts.label}${where}: address already in use (EADDRINUSE); ${opts.inUseHint}`
        : err.code === 'EACCES' ? `cannot listen on ${opts.label}${where}: permission denied (EACCES)` : `cannot listen on ${opts.label}${where}: ${err.message}`));
    };
    server.once('error', onError);
    const old = at.kind === 'unix' && opts.umask !== undefined ? process.umask(opts.umask) : null;
    const done = () => {
      if (old !== null) process.umask(old);
      server.off('error', onError);
      resolve();
    };
    if (at.kind === 'unix') server.listen({ path: at.path, backlog: opts.backlog }, done);
    // An inherited listening socket (systemd): its backlog was set by whoever made it.
    else if (at.kind === 'fd') server.listen({ fd: at.fd }, done);
    else server.listen({ host: at.host, port: at.port, backlog: opts.backlog }, done);
  });
  return addressOf(server);
}

/** HOST:PORT ([v6]:PORT) or unix:PATH of a listening server. */
export function addressOf(server: net.Server): string {
  const a = server.address();
  if (typeof a === 'string') return `unix:${a}`;
  if (!a) return '';
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
