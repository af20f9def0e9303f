// Request headers for an HTTP backend: hop-by-hop ones dropped (and those named in
// Connection), Expect dropped (the front owns 100-continue, as nginx does), framing
// left to the transport, X-Forwarded-* set, and RFC 7239 Forwarded on request.
import type { RequestHead } from '../transport.js';

export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authenticate', 'proxy-authorization']);

export function forwardHeaders(head: RequestHead, bodyLength: number, forwarded: boolean): string[] {
  const raw = head.headers;
  let named: Set<string> | null = null;
  const out: string[] = [];
  let xff: string | null = null;
  let prior: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toLowerCase() === 'connection') {
      named ??= new Set();
      for (const token of raw[i + 1].toLowerCase().split(',')) named.add(token.trim());
    }
  }
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i].toLowerCase();
    if (forwarded && lower === 'forwarded') { prior = prior ? `${prior}, ${raw[i + 1]}` : raw[i + 1]; continue; }
    if (HOP_BY_HOP.has(lower) || (named !== null && named.has(lower))) continue;
    if (lower === 'expect' || lower === 'content-length') continue;
    if (lower === 'x-forwarded-for') { xff = xff ? `${xff}, ${raw[i + 1]}` : raw[i + 1]; continue; }
    if (lower === 'x-forwarded-proto' || lower === 'x-forwarded-host') continue; // ours replace the client's
    out.push(raw[i], raw[i + 1]);
  }
  if (bodyLength > 0) out.push('content-length', String(bodyLength));
  const c = head.connection;
  const remote = c.remoteAddress;
  const proto = c.encrypted ? 'https' : 'http';
  out.push('X-Forwarded-For', xff ? `${xff}, ${remote}` : remote);
  out.push('X-Forwarded-Proto', proto);
  if (head.host) out.push('X-Forwarded-Host', head.host);
  if (forwarded) {
    // RFC 7239; IPv6 addresses are quoted and bracketed.
    const forId = remote.includes(':') ? `"[${remote}]"` : remote;
    const host = head.host ? `;host="${head.host.replace(/["\\]/g, '')}"` : '';
    const element = `for=${forId};proto=${proto}${host}`;
    out.push('Forwarded', prior ? `${prior}, ${element}` : element);
  }
  return out;
}
