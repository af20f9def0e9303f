// Accept-Encoding as a client sends it: which of br and gzip it takes (q > 0).
// Used by the precompressed-file choice and by --compress.
import { findHeader } from './static/fileResponse.js';

export const ACCEPTS_BR = 1;
export const ACCEPTS_GZIP = 2;

/** ACCEPTS_BR | ACCEPTS_GZIP bits; `*` counts for both unless they are named with q=0. */
export function acceptedEncodings(header: string | undefined): number {
  if (header === undefined || header.length === 0) return 0;
  let bits = 0;
  let named = 0;
  let star = false;
  for (const part of header.split(',')) {
    const semi = part.indexOf(';');
    const coding = (semi < 0 ? part : part.slice(0, semi)).trim().toLowerCase();
    let q = 1;
    if (semi >= 0) {
      const m = /;\s*q\s*=\s*([0-9.]+)/i.exec(part);
      if (m) q = Number(m[1]);
    }
    const bit = coding === 'br' ? ACCEPTS_BR : coding === 'gzip' || coding === 'x-gzip' ? ACCEPTS_GZIP : 0;
    if (bit !== 0) {
      named |= bit;
      if (q > 0) bits |= bit;
    } else if (coding === '*' && q > 0) star = true;
  }
  if (star) bits |= (ACCEPTS_BR | ACCEPTS_GZIP) & ~named;
  return bits;
}

export function requestAcceptedEncodings(headers: readonly string[]): number {
  return acceptedEncodings(findHeader(headers, 'accept-encoding'));
}
