// The request head for an HTTP backend, as the text written on the wire: hop-by-hop
// headers dropped (and those named in Connection), Expect dropped (the front owns
// 100-continue, as nginx does), the framing ours, Host kept (or the backend's
// address when the client sent none), X-Forwarded-* set, and RFC 7239 Forwarded on
// request. Built as one string: no header array, no object per request.
import type { RequestHead } from '../transport.js';

export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authenticate', 'proxy-authorization']);

/** Methods whose requests carry a body by convention: an empty one is declared (Content-Length: 0), as undici and curl do. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/** A target or header value that would split the head (CR, LF, NUL) or the request line (SP, CTL). */
const BAD_TARGET = /[\x00-\x20\x7f]/;
const BAD_VALUE = /[\0\r\n]/;

export class RequestHeadError extends Error {}

/**
 * "METHOD target HTTP/1.1\r\n" + fields + "\r\n". `bodyLength` -1: chunked; `close`: the
 * connection is not kept (Connection: close). Throws RequestHeadError when the head
 * cannot be written as HTTP/1.1 (bytes a front parser let through would split it).
 */
export function encodeRequestHead(head: RequestHead, bodyLength: number, forwarded: boolean, defaultHost: string, close: boolean): string {
  const raw = head.headers;
  if (BAD_TARGET.test(head.target) || head.target === '') throw new RequestHeadError(`request target ${JSON.stringify(head.target)} cannot be sent as HTTP/1.1`);
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toLowerCase() === 'connection') {
      named ??= new Set();
      for (const token of raw[i + 1].toLowerCase().split(',')) named.add(token.trim());
    }
  }
  let out = `${head.method} ${head.target} HTTP/1.1\r\n`;
  let xff: string | null = null;
  let prior: string | null = null;
  let hostSeen = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    const lower = name.toLowerCase();
    if (BAD_VALUE.test(value)) throw new RequestHeadError(`header ${name} holds a byte that cannot be sent (CR, LF or NUL)`);
    if (forwarded && lower === 'forwarded') { prior = prior ? `${prior}, ${value}` : value; continue; }
    if (HOP_BY_HOP.has(lower) || (named !== null && named.has(lower))) continue;
    if (lower === 'expect' || lower === 'content-length') continue;
    if (lower === 'x-forwarded-for') { xff = xff ? `${xff}, ${value}` : value; continue; }
    if (lower === 'x-forwarded-proto' || lower === 'x-forwarded-host') continue; // ours replace the client's
    if (lower === 'host') hostSeen = true;
    out += `${name}: ${value}\r\n`;
  }
  if (!hostSeen) out += `Host: ${defaultHost}\r\n`;
  if (bodyLength > 0) out += `Content-Length: ${bodyLength}\r\n`;
  else if (bodyLength < 0) out += 'Transfer-Encoding: chunked\r\n';
  else if (BODY_METHODS.has(head.method)) out += 'Content-Length: 0\r\n';
  const c = head.connection;
  const remote = c.remoteAddress;
  const proto = c.encrypted ? 'https' : 'http';
  out += `X-Forwarded-For: ${xff ? `${xff}, ${remote}` : remote}\r\nX-Forwarded-Proto: ${proto}\r\n`;
  if (head.host) out += `X-Forwarded-Host: ${head.host}\r\n`;
  if (forwarded) {
    // RFC 7239; IPv6 addresses are quoted and bracketed.
    const forId = remote.includes(':') ? `"[${remote}]"` : remote;
    const host = head.host ? `;host="${head.host.replace(/["\\]/g, '')}"` : '';
    const element = `for=${forId};proto=${proto}${host}`;
    out += `Forwarded: ${prior ? `${prior}, ${element}` : element}\r\n`;
  }
  if (close) out += 'Connection: close\r\n';
  return out + '\r\n';
}
