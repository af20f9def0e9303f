// Byte classes of HTTP/1.1 (RFC 9110 §5.6.2, RFC 9112 §3.2), as 256-entry tables
// so the parsers test a byte with one load instead of a chain of comparisons.

export const CR = 13;
export const LF = 10;
export const SP = 32;
export const HTAB = 9;
export const COLON = 58;
export const SEMI = 59;
export const EQUALS = 61;
export const DQUOTE = 34;
export const BACKSLASH = 92;

function table(test: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = test(c) ? 1 : 0;
  return t;
}

const isAlpha = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const isDigit = (c: number) => c >= 48 && c <= 57;

/** tchar: methods, header names, chunk extension names and token values. */
export const TOKEN = table((c) => isAlpha(c) || isDigit(c) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)));

/** Request-target bytes: visible ASCII (what node's llhttp accepts; no CTL, SP, DEL or bytes ≥ 0x80). */
export const TARGET = table((c) => c >= 0x21 && c <= 0x7e);

/** field-value bytes: HTAB, SP, VCHAR, obs-text (no CTL, no DEL). */
export const FIELD_VALUE = table((c) => c === HTAB || (c >= 0x20 && c <= 0x7e) || c >= 0x80);

/** qdtext of a quoted-string (RFC 9110 §5.6.4). */
export const QDTEXT = table((c) => c === HTAB || c === SP || c === 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80);

/** What may follow a backslash in a quoted-pair. */
export const QUOTED_PAIR = table((c) => c === HTAB || (c >= 0x20 && c <= 0x7e) || c >= 0x80);

export const ALPHA = table(isAlpha);

/** Authority bytes (RFC 3986 §3.2): unreserved, pct-encoded, sub-delims, ":", "@", "[", "]". */
export const AUTHORITY = table((c) => isAlpha(c) || isDigit(c) || "-._~%!$&'()*+,;=:@[]".includes(String.fromCharCode(c)));

/** Hex digit value + 1 (0 = not a hex digit). */
export const HEX = (() => {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) {
    if (c >= 48 && c <= 57) t[c] = c - 48 + 1;
    else if (c >= 65 && c <= 70) t[c] = c - 55 + 1;
    else if (c >= 97 && c <= 102) t[c] = c - 87 + 1;
  }
  return t;
})();

/** "0x0a" for error messages naming a byte. */
export function byteName(c: number): string {
  return `0x${c.toString(16).padStart(2, '0')}`;
}

/** buf[start, start + lower.length) equals `lower` ignoring ASCII case; `lower` holds lowercase letters, digits and '-'. */
export function equalsLower(buf: Buffer, start: number, lower: Uint8Array): boolean {
  for (let i = 0; i < lower.length; i++) if ((buf[start + i] | 0x20) !== lower[i]) return false;
  return true;
}

export function bytesOf(ascii: string): Uint8Array {
  return Uint8Array.from(ascii, (ch) => ch.charCodeAt(0));
}

// Buffer's latin1 fast paths exist on every Node Buffer (lib/buffer.js) but are
// not in @types/node; they skip toString()/write()'s encoding dispatch.
declare global {
  interface Buffer {
    latin1Slice(start: number, end: number): string;
    latin1Write(text: string, offset: number, length?: number): number;
  }
}
