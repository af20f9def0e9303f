// A URL path made a file path under a directory, refusing every way out: the path is
// percent-decoded once (UTF-8), and a `..` segment, a NUL, or a hidden segment
// (".git", ".env"; ".well-known" excepted) is refused before the file system is asked.
// Symlinks are checked after: the resolved real path must stay under the real root
// (fileOpener.ts). Pure functions; no I/O here.

export type PathVerdict =
  | { ok: true; /** Relative path, '/'-separated, no empty, '.' or '..' segments; '' for the root itself. */ rel: string; /** The URL path ended with '/'. */ dir: boolean }
  | { ok: false; status: 400 | 403 | 404; reason: string };

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const HEX = (c: number): number => (c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1);

/** Percent-decodes the latin1 string of a path's bytes into UTF-8 text; null on a bad escape or invalid UTF-8. */
export function decodeUrlPath(raw: string): string | null {
  if (raw.indexOf('%') < 0) {
    // Only ASCII needs no decoding; other bytes came raw and must still be valid UTF-8.
    let ascii = true;
    for (let i = 0; i < raw.length; i++) if (raw.charCodeAt(i) > 127) { ascii = false; break; }
    if (ascii) return raw;
  }
  const bytes = Buffer.allocUnsafe(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37 /* % */) {
      if (i + 2 >= raw.length) return null;
      const hi = HEX(raw.charCodeAt(i + 1));
      const lo = HEX(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return null;
      bytes[n++] = (hi << 4) | lo;
      i += 2;
    } else {
      if (c > 255) return null;
      bytes[n++] = c;
    }
  }
  const text = bytes.subarray(0, n);
  try {
    return UTF8.decode(text);
  } catch {
    return null;
  }
}

/**
 * The part of `urlPath` (raw, without the query) after `prefix` (which ends with '/'),
 * as a safe relative file path. `..` → 403; NUL or a bad escape → 400; a hidden segment → 404.
 */
export function relativeFilePath(urlPath: string, prefixLength: number): PathVerdict {
  const decoded = decodeUrlPath(urlPath.slice(prefixLength));
  if (decoded === null) return { ok: false, status: 400, reason: 'the path has an invalid percent-escape or is not UTF-8' };
  if (decoded.indexOf('\0') >= 0) return { ok: false, status: 400, reason: 'the path contains a NUL byte' };
  const parts: string[] = [];
  for (const seg of decoded.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') return { ok: false, status: 403, reason: 'the path climbs out with ..' };
    if (seg.charCodeAt(0) === 46 /* . */ && seg !== '.well-known') return { ok: false, status: 404, reason: 'hidden files are not served' };
    parts.push(seg);
  }
  return { ok: true, rel: parts.join('/'), dir: decoded.length === 0 || decoded.endsWith('/') };
}

/** The path of a request target (up to '?'). */
export function pathOfTarget(target: string): string {
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}

/** The query of a request target, with its '?', or ''. */
export function queryOfTarget(target: string): string {
  const q = target.indexOf('?');
  return q < 0 ? '' : target.slice(q);
}
