// Who may talk to the admin listener, decided from the request head alone: the
// request target (never thrown on), the Host (DNS rebinding), the Origin
// (browsers), the Content-Type of a POST and the bearer token. Pure functions.
import crypto from 'node:crypto';
import net from 'node:net';

/** The path and query of an origin-form target (/path?query); null for anything else (*, absolute or authority form). */
export function splitTarget(target: string | undefined): { path: string; query: string } | null {
  if (!target || target.charCodeAt(0) !== 0x2f /* / */) return null;
  const q = target.indexOf('?');
  const hash = target.indexOf('#');
  const end = hash >= 0 ? hash : target.length;
  if (q >= 0 && q < end) return { path: target.slice(0, q), query: target.slice(q + 1, end) };
  return { path: target.slice(0, end), query: '' };
}

/** Whether a query string names a parameter (`?json`, `?json=1`, `?a&json`), without decoding it. */
export function queryHas(query: string, name: string): boolean {
  return query.split('&').some((p) => p === name || p.startsWith(`${name}=`));
}

/** A host as written in a listen address or a Host header: is it this machine's loopback? */
export function isLoopbackName(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\.[\d.]+$/.test(h);
  return false;
}

/** The host part of a Host header ("127.0.0.1:8081", "[::1]:8081", "localhost"), or null when malformed. */
export function hostOf(header: string): string | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s/@]+))(?::\d{1,5})?$/.exec(header);
  if (!m) return null;
  return m[1] ?? m[2];
}

/**
 * DNS rebinding: a web page whose name an attacker points at 127.0.0.1 reaches the
 * admin with its own name in Host. A loopback listener accepts loopback names only;
 * one bound elsewhere (the operator chose it, warned) also accepts IP literals, never
 * a DNS name — a rebinding page always sends a name.
 */
export function hostAllowed(header: string | undefined, listenerIsLoopback: boolean): boolean {
  if (!header) return false;
  const host = hostOf(header);
  if (host === null) return false;
  if (isLoopbackName(host)) return true;
  return !listenerIsLoopback && net.isIP(host) !== 0;
}

/** A browser sends Origin on cross-site POSTs (and fetches); only the admin's own origin passes. */
export function originAllowed(origin: string | undefined, hostHeader: string): boolean {
  if (origin === undefined) return true;
  return origin.toLowerCase() === `http://${hostHeader.toLowerCase()}`;
}

/** application/json, with or without parameters: a type a browser cannot send cross-site without a preflight. */
export function isJsonContentType(type: string | undefined): boolean {
  if (!type) return false;
  return type.split(';')[0].trim().toLowerCase() === 'application/json';
}

/** `Authorization: Bearer TOKEN` against the expected token, in constant time. */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  const m = authorization ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization) : null;
  // Hash both sides: equal lengths for timingSafeEqual, and the length of the token is not leaked either.
  const given = crypto.createHash('sha256').update(m ? m[1] : '').digest();
  const expected = crypto.createHash('sha256').update(token).digest();
  return crypto.timingSafeEqual(given, expected) && m !== null;
}
