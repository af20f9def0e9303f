// The admin token: every POST to a TCP admin listener carries it as
// `Authorization: Bearer TOKEN`. Generated at start into a mode-0600 file in the
// socket dir (the CLI finds it there through /stats, which names the path only),
// or read from the operator's --admin-token-file.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../config/schema.js';

export const TOKEN_FILE_NAME = 'admin.token';

export interface AdminToken {
  value: string;
  file: string;
  /** Created by upfront (removed at stop), not the operator's --admin-token-file. */
  generated: boolean;
}

/** Visible ASCII, no spaces: what `openssl rand -hex 32` or this file's generator writes. */
const TOKEN_RE = /^[\x21-\x7e]{32,1024}$/;

/**
 * The directory that holds the token (and the backend sockets) must be ours and
 * closed to others; a directory someone else made in /tmp under our name could be
 * used to swap files under us.
 */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`socket dir ${dir} is not a directory (a symlink?); remove it or choose another --socket-dir`);
  const uid = process.getuid?.();
  // root may own nothing here: with --user the supervisor hands the dir to the children's user.
  if (uid !== undefined && uid !== 0 && st.uid !== uid) throw new Error(`socket dir ${dir} belongs to uid ${st.uid}, not to this user (${uid}); remove it or choose another --socket-dir`);
  if (st.mode & 0o022) throw new Error(`socket dir ${dir} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod go-w it or choose another --socket-dir`);
}

/** A fresh token (32 random bytes, hex) in DIR/admin.token, mode 0600 from its creation. */
export function generateAdminToken(dir: string): AdminToken {
  ensurePrivateDir(dir);
  const file = path.join(dir, TOKEN_FILE_NAME);
  const value = crypto.randomBytes(32).toString('hex');
  try { fs.unlinkSync(file); } catch { /* none: the usual case */ }
  // O_EXCL: never write through a file (or symlink) someone put there in between.
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try { fs.writeSync(fd, value + '\n'); } finally { fs.closeSync(fd); }
  return { value, file, generated: true };
}

/**
 * --admin-token-file: the operator's file. Refused (a ConfigError: exit 2) when it
 * is missing, not a regular file, open to group or others, or holds no usable token.
 */
export function loadAdminTokenFile(file: string): AdminToken {
  const full = path.resolve(file);
  let st: fs.Stats;
  try {
    st = fs.statSync(full);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`admin-token-file: cannot read ${full} (${code}); create it with: (umask 077; openssl rand -hex 32 > ${full})`);
  }
  if (!st.isFile()) throw new ConfigError(`admin-token-file: ${full} is not a regular file`);
  if (st.mode & 0o077) {
    throw new ConfigError(`admin-token-file: ${full} is open to group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); chmod 600 ${full}`);
  }
  let text: string;
  try {
    text = fs.readFileSync(full, 'utf8');
  } catch (err) {
    throw new ConfigError(`admin-token-file: cannot read ${full} (${(err as NodeJS.ErrnoException).code})`);
  }
  const value = text.replace(/\r?\n$/, '');
  if (!TOKEN_RE.test(value)) {
    throw new ConfigError(`admin-token-file: ${full} must hold one line of 32 to 1024 visible ASCII characters (no spaces), such as the output of openssl rand -hex 32`);
  }
  return { value, file: full, generated: false };
}

/**
 * The CLI's side: reads the token from a file, either given by the operator or
 * announced by the running upfront in /stats. An announced path comes from whatever
 * answers on the admin port, so it is read only when it looks like a token file of
 * ours: owned by this user, closed to others, one token line — never some other
 * secret sent as a bearer token.
 */
export function readTokenForClient(file: string, announced: boolean): string {
  let st: fs.Stats;
  let text: string;
  try {
    st = fs.statSync(file);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint = code === 'EACCES' ? '; run this as the user upfront runs as, or pass --admin-token-file' : '';
    throw new Error(`cannot read the admin token ${file} (${code})${hint}`);
  }
  const value = text.replace(/\r?\n$/, '');
  const uid = process.getuid?.();
  if (announced && (!st.isFile() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0 || !TOKEN_RE.test(value))) {
    throw new Error(`the admin listener names ${file} as its token file, but that is not a private token file of this user; pass --admin-token-file`);
  }
  if (!TOKEN_RE.test(value)) throw new Error(`${file} holds no admin token (one line of 32 to 1024 visible ASCII characters)`);
  return value;
}

/** Removes a token upfront generated; the operator's file stays. */
export function removeAdminToken(token: AdminToken | null): void {
  if (!token?.generated) return;
  try { fs.unlinkSync(token.file); } catch { /* gone */ }
}
