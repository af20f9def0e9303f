// Content-Type of a file from its extension, through mime-types (mime-db's table, the
// one Express and most of npm use), cached per extension: a lookup per file served.
import mime from 'mime-types';

const OCTET = 'application/octet-stream';
const cache = new Map<string, string>();

/** `text/html; charset=utf-8` for "a/b/index.html"; application/octet-stream when unknown. */
export function contentTypeOf(file: string): string {
  const slash = file.lastIndexOf('/');
  const dot = file.lastIndexOf('.');
  if (dot <= slash + 1) return OCTET; // no extension, or a dotfile such as ".profile"
  const ext = file.slice(dot + 1).toLowerCase();
  let type = cache.get(ext);
  if (type === undefined) {
    type = mime.contentType(ext) || OCTET;
    if (cache.size < 1000) cache.set(ext, type);
  }
  return type;
}

/** Worth compressing: text, JSON, JavaScript, XML, SVG, and a few more text formats. */
export function isCompressibleType(contentType: string): boolean {
  const semi = contentType.indexOf(';');
  const t = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (t.startsWith('text/')) return true;
  if (!t.startsWith('application/') && !t.startsWith('image/')) return false;
  return t.endsWith('+json') || t.endsWith('+xml') || COMPRESSIBLE.has(t);
}

const COMPRESSIBLE = new Set([
  'application/json', 'application/javascript', 'application/x-javascript', 'application/ecmascript', 'application/xml',
  'application/xhtml+xml', 'application/rss+xml', 'application/atom+xml', 'application/manifest+json', 'application/wasm',
  'application/x-ndjson', 'application/graphql', 'application/vnd.ms-fontobject', 'application/x-font-ttf', 'application/x-font-opentype',
  'image/svg+xml', 'image/x-icon', 'image/vnd.microsoft.icon', 'image/bmp',
]);
