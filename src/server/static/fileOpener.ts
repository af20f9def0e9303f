// Opens a file under a directory without leaving it: the real path (symlinks
// resolved) must lie under the directory's real path, the last component is opened
// with O_NOFOLLOW, and O_NONBLOCK keeps a FIFO from blocking a thread-pool thread.
// Only regular files and directories are reported; anything else counts as missing.
import fs from 'node:fs';
import path from 'node:path';
import type { OpenedFile } from './fileResponse.js';

export type OpenResult =
  | { kind: 'file'; file: OpenedFile; real: string }
  | { kind: 'dir'; real: string }
  | { kind: 'missing' }
  /** The path resolves outside the directory (a symlink out). */
  | { kind: 'outside'; real: string }
  | { kind: 'error'; code: string; message: string };

const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/** The real path of a directory that must exist (at start: a clear error, not 404s later). */
export function realDirectory(dir: string, what: string): string {
  let real: string;
  try {
    real = fs.realpathSync.native(dir);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`${what}: ${dir}: ${e.code === 'ENOENT' ? 'no such directory' : e.message} (${e.code ?? 'error'})`);
  }
  if (!fs.statSync(real).isDirectory()) throw new Error(`${what}: ${dir} is not a directory`);
  return real;
}

export function isInside(real: string, rootReal: string): boolean {
  if (rootReal === '/') return real.startsWith('/');
  return real === rootReal || (real.startsWith(rootReal) && real.charCodeAt(rootReal.length) === 47 /* / */);
}

const MISSING: OpenResult = { kind: 'missing' };

function missingOrError(err: NodeJS.ErrnoException): OpenResult {
  const code = err.code ?? 'EIO';
  // ENOTDIR: a file where a directory was expected (a/b when a is a file); ELOOP: O_NOFOLLOW met a link.
  if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP' || code === 'ENAMETOOLONG') return MISSING;
  return { kind: 'error', code, message: err.message };
}

/** Opens `rel` (a safe relative path, see safePath.ts) under `rootReal`. */
export function openUnder(rootReal: string, rel: string, done: (r: OpenResult) => void): void {
  const full = rel === '' ? rootReal : path.join(rootReal, rel);
  fs.realpath.native(full, (err, real) => {
    if (err) return done(missingOrError(err));
    if (!isInside(real, rootReal)) return done({ kind: 'outside', real });
    openReal(real, done);
  });
}

/** Opens a path already known to be real and inside (or a sibling of such a file: O_NOFOLLOW refuses a link). */
export function openReal(real: string, done: (r: OpenResult) => void): void {
  fs.open(real, OPEN_FLAGS, (err, fd) => {
    if (err) return done(missingOrError(err));
    fs.fstat(fd, (err2, st) => {
      if (err2) {
        fs.close(fd, () => {});
        return done(missingOrError(err2));
      }
      if (st.isFile()) return done({ kind: 'file', file: { fd, size: st.size, mtimeMs: st.mtimeMs }, real });
      fs.close(fd, () => {});
      done(st.isDirectory() ? { kind: 'dir', real } : MISSING);
    });
  });
}
