// mime-types (jshttp, backed by mime-db) ships no types of its own.
declare module 'mime-types' {
  /** The full Content-Type for a path or extension (with charset where mime-db knows it), or false. */
  export function contentType(typeOrPath: string): string | false;
  export function lookup(path: string): string | false;
  const mime: { contentType: typeof contentType; lookup: typeof lookup };
  export default mime;
}
