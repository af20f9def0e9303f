// Listening unix sockets for backends: created by the front (bind + listen, never
// accepted on here) and handed to children as fd 0, as spawn-fcgi does.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../config/schema.js';
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

/** The longest name a socket gets in the socket dir: "/b999999.sock" (the index grows with every reload and restart of a seat). */
const LONGEST_SOCKET_NAME = '/b999999.sock'.length;
/** sun_path holds 108 bytes with the NUL; listenUnix refuses a 107th byte, which it cannot tell from a cut one. */
const MAX_SOCKET_PATH = 106;

/**
 * Creates the socket dir (and its missing parents, mode 0700) before anything listens or
 * spawns, so that a dir upfront cannot use is one line naming it, not a bind error later
 * with the path cut at 108 bytes. `forSockets`: backend sockets go there (else only the
 * admin token), so the dir must leave room for their names in a unix socket path.
 */
export function makeSocketDir(dir: string, forSockets: boolean): void {
  const bytes = Buffer.byteLength(dir);
  if (forSockets && bytes + LONGEST_SOCKET_NAME > MAX_SOCKET_PATH) {
    throw new ConfigError(`socket-dir: ${dir} is ${bytes} bytes long, and a unix socket path holds at most ${MAX_SOCKET_PATH} bytes (108 with its NUL; ENAMETOOLONG) `
      + `with up to ${LONGEST_SOCKET_NAME} for the socket's name: use a dir of at most ${MAX_SOCKET_PATH - LONGEST_SOCKET_NAME} bytes, or leave --socket-dir out for a fresh one in ${os.tmpdir()}`);
  }
  try {
    mkdirs(dir);
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(`socket-dir: ${dir} cannot be created or written (${e.code ?? 'error'}: ${e.message.replace(/^\w+: /, '').replace(/, \w+ '.*'$/, '')}): `
      + `name a directory upfront may create and write, or leave --socket-dir out for a fresh one in ${os.tmpdir()}`);
  }
}

/**
 * mkdir -p. Not fs.mkdirSync's recursive mode: where mkdir fails ENOENT under a parent that
 * exists (/proc), node's retries the parent and the dir forever, a busy loop at 100% CPU.
 */
export function mkdirs(dir: string): void {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && fs.statSync(dir).isDirectory()) return;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir || fs.existsSync(parent)) throw err;
    mkdirs(parent);
    fs.mkdirSync(dir, { mode: 0o700 });
  }
}
