// SCRIPT_NAME / PATH_INFO: the first prefix of the path that names an existing
// regular file under the document root is the script (/index.php/a/b, /echo.cgi/x);
// with none, SCRIPT_NAME is empty and PATH_INFO is the whole path, as WSGI apps
// behind flup expect. With script extensions set (nginx users' `location ~ \.php$`),
// only files with one of them count, and a path naming none is not the app's.
// stat() results are cached briefly (bounded): this runs per request.
import fs from 'node:fs';
import { coarseNow } from '../clock.js';

const enum Kind { Missing, File, Dir }

export class ScriptResolver {
  private cache = new Map<string, { kind: Kind; at: number }>();

  constructor(private readonly documentRoot: string, private readonly extensions: readonly string[] = [],
    private readonly ttlMs = 1000, private readonly maxEntries = 10_000) {}

  /** Whether only files with one of the script extensions are scripts. */
  get restricted(): boolean {
    return this.extensions.length > 0;
  }

  /** Returns the length of the script prefix in `decodedPath` (0 when none). */
  scriptLength(decodedPath: string): number {
    let end = 0;
    const now = coarseNow;
    for (;;) {
      const slash = decodedPath.indexOf('/', end + 1);
      const prefixEnd = slash < 0 ? decodedPath.length : slash;
      if (prefixEnd <= end + 1) {
        if (slash < 0) return 0;
        end = slash; // empty segment ("//")
        continue;
      }
      const prefix = decodedPath.slice(0, prefixEnd);
      const kind = this.kindOf(prefix, now);
      if (kind === Kind.File) return this.isScript(prefix) ? prefixEnd : 0;
      if (kind === Kind.Missing || slash < 0) return 0;
      end = slash;
    }
  }

  private isScript(prefix: string): boolean {
    if (this.extensions.length === 0) return true;
    for (const ext of this.extensions) if (prefix.endsWith(ext)) return true;
    return false;
  }

  private kindOf(prefix: string, now: number): Kind {
    const hit = this.cache.get(prefix);
    if (hit && now - hit.at < this.ttlMs) return hit.kind;
    let kind: Kind;
    try {
      const st = fs.statSync(this.documentRoot + prefix, { throwIfNoEntry: false });
      kind = !st ? Kind.Missing : st.isFile() ? Kind.File : st.isDirectory() ? Kind.Dir : Kind.Missing;
    } catch {
      kind = Kind.Missing;
    }
    if (this.cache.size >= this.maxEntries) this.cache.clear();
    this.cache.set(prefix, { kind, at: now });
    return kind;
  }
}

/**
 * Percent-decodes a path (bytes kept as latin1 chars) and resolves "." and ".."
 * segments, as nginx does for $uri. Returns null when ".." climbs above the root,
 * the path is not absolute, an escape is malformed, or it decodes to a NUL byte
 * (php-cgi would cut SCRIPT_FILENAME there: /info.php%00.jpg would run info.php).
 */
export function normalizePath(rawPath: string): string | null {
  if (rawPath.charCodeAt(0) !== 47 /* / */) return null;
  let decoded = rawPath;
  if (rawPath.indexOf('%') >= 0) {
    decoded = percentDecode(rawPath);
    if (decoded === '') return null;
  }
  if (decoded.indexOf('\0') >= 0) return null;
  if (decoded.indexOf('/.') < 0 && decoded.indexOf('//') < 0) return decoded;
  const out: string[] = [];
  const parts = decoded.split('/');
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i];
    if (p === '' && i < parts.length - 1) continue;
    if (p === '.') continue;
    if (p === '..') {
      if (out.length === 0) return null;
      out.pop();
      continue;
    }
    out.push(p);
  }
  return '/' + out.join('/');
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

/** %XX → the byte as a latin1 char; '' when an escape is malformed. */
function percentDecode(s: string): string {
  let out = '';
  let from = 0;
  for (let i = s.indexOf('%'); i >= 0; i = s.indexOf('%', i)) {
    const hi = hexValue(s.charCodeAt(i + 1));
    const lo = hexValue(s.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return '';
    out += s.slice(from, i) + String.fromCharCode(hi * 16 + lo);
    i += 3;
    from = i;
  }
  return out + s.slice(from);
}
