// SCRIPT_NAME / PATH_INFO: the longest... no, the first prefix of the path that names
// an existing regular file under the document root is the script (/index.php/a/b,
// /echo.cgi/x); with none, SCRIPT_NAME is empty and PATH_INFO is the whole path, as
// WSGI apps behind flup expect. stat() results are cached briefly: this runs per request.
import fs from 'node:fs';

const enum Kind { Missing, File, Dir }

export class ScriptResolver {
  private cache = new Map<string, { kind: Kind; at: number }>();

  constructor(private readonly documentRoot: string, private readonly ttlMs = 1000, private readonly maxEntries = 10_000) {}

  /** Returns the length of the script prefix in `decodedPath` (0 when none). */
  scriptLength(decodedPath: string): number {
    let end = 0;
    const now = Date.now();
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
      if (kind === Kind.File) return prefixEnd;
      if (kind === Kind.Missing || slash < 0) return 0;
      end = slash;
    }
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
 * segments, as nginx does for $uri. Returns null when ".." climbs above the root
 * or the path is not absolute.
 */
export function normalizePath(rawPath: string): string | null {
  if (rawPath.charCodeAt(0) !== 47 /* / */) return null;
  let decoded = rawPath;
  if (rawPath.indexOf('%') >= 0) {
    try {
      decoded = Buffer.from(decodeURIComponentBytes(rawPath)).toString('latin1');
    } catch {
      return null;
    }
  }
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

function decodeURIComponentBytes(s: string): number[] {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 && i + 2 < s.length + 0) {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new URIError('bad percent escape');
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(c & 0xff);
    }
  }
  return bytes;
}
