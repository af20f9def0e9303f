// One client request forwarded over HTTP/1.1 (undici) to a backend: hop-by-hop
// headers removed, X-Forwarded-* set, bodies streamed both ways with
// backpressure, errors mapped to 502/504 as with FastCGI.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { HttpClient } from '../http/httpClient.js';
import type { Backend } from '../pool/backend.js';
import type { Acquirer, AcquireRefusal } from '../pool/pool.js';
import type { Waiter } from '../pool/queue.js';
import { sendError } from './errorResponse.js';
import type { ProxyContext } from './proxyRequest.js';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EAGAIN', 'EACCES', 'UND_ERR_CONNECT_TIMEOUT', 'ECONNRESET']);

/** Request headers for the backend: hop-by-hop ones dropped (and those named in Connection). */
export function forwardHeaders(req: IncomingMessage, https: boolean, forwarded = false): string[] {
  const raw = req.rawHeaders;
  const connection = req.headers.connection;
  const named = connection ? new Set(connection.toLowerCase().split(',').map((s) => s.trim())) : null;
  const out: string[] = [];
  let xff: string | null = null;
  let prior: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i].toLowerCase();
    if (forwarded && lower === 'forwarded') { prior = prior ? `${prior}, ${raw[i + 1]}` : raw[i + 1]; continue; }
    if (HOP_BY_HOP.has(lower) || (named && named.has(lower))) continue;
    if (lower === 'x-forwarded-for') { xff = xff ? `${xff}, ${raw[i + 1]}` : raw[i + 1]; continue; }
    if (lower === 'x-forwarded-proto' || lower === 'x-forwarded-host') continue; // ours replace the client's
    out.push(raw[i], raw[i + 1]);
  }
  const remote = req.socket.remoteAddress ?? '';
  out.push('X-Forwarded-For', xff ? `${xff}, ${remote}` : remote);
  out.push('X-Forwarded-Proto', https ? 'https' : 'http');
  if (req.headers.host) out.push('X-Forwarded-Host', req.headers.host);
  if (forwarded) {
    // RFC 7239; IPv6 addresses are quoted and bracketed.
    const forId = remote.includes(':') ? `"[${remote}]"` : remote;
    const host = req.headers.host ? `;host="${req.headers.host.replace(/["\\]/g, '')}"` : '';
    const element = `for=${forId};proto=${https ? 'https' : 'http'}${host}`;
    out.push('Forwarded', prior ? `${prior}, ${element}` : element);
  }
  return out;
}

export class HttpProxyRequest implements Acquirer {
  private backend: Backend | null = null;
  private waiter: Waiter | null = null;
  /** The response body from the backend, once the head arrived (destroyed when the client leaves). */
  private body: Readable | null = null;
  private clientGone = false;
  private attempts = 0;
  private bodyTouched = false;
  private readonly tGranted = { t: 0 };

  constructor(private readonly ctx: ProxyContext, private readonly req: IncomingMessage, private readonly res: ServerResponse,
    private readonly hasBody: boolean, private readonly https: boolean) {
    res.on('close', () => {
      if (res.writableFinished) return;
      this.clientGone = true;
      if (this.waiter) { ctx.pool.cancel(this.waiter); this.waiter = null; }
      // No AbortController per request (measurably costly): a response still to come is dropped on arrival.
      this.body?.destroy();
    });
  }

  start(): void {
    this.attempts++;
    this.waiter = this.ctx.pool.acquire(false, this);
  }

  onRefused(reason: AcquireRefusal, detail: string): void {
    this.waiter = null;
    if (this.clientGone) return;
    sendError(this.res, 503, detail, reason === 'shutdown' ? undefined : this.ctx.queueRetryAfterSec);
  }

  onBackend(backend: Backend): void {
    this.waiter = null;
    this.backend = backend;
    this.tGranted.t = performance.now();
    if (this.clientGone) { this.release(); return; }
    const client = backend.client as unknown as HttpClient;
    if (this.hasBody) this.bodyTouched = true;
    client.undici.request({
      method: (this.req.method ?? 'GET') as 'GET',
      path: this.req.url ?? '/',
      headers: forwardHeaders(this.req, this.https, this.ctx.forwarded),
      body: this.hasBody ? (this.req as Readable) : null,
    }).then(({ statusCode, headers, body }) => this.onResponse(backend, statusCode, headers, body),
      (err: NodeJS.ErrnoException) => this.onFailure(backend, err));
  }

  private onResponse(backend: Backend, status: number, headers: Record<string, string | string[] | undefined>, body: Readable): void {
    if (this.clientGone) {
      body.destroy();
      this.release();
      return;
    }
    this.body = body;
    const counters = backend.counters.responses;
    if (status < 200) counters['1xx']++; else if (status < 300) counters['2xx']++; else if (status < 400) counters['3xx']++; else if (status < 500) counters['4xx']++; else counters['5xx']++;
    const named = typeof headers.connection === 'string' ? new Set(headers.connection.toLowerCase().split(',').map((s) => s.trim())) : null;
    const out: string[] = [];
    for (const [name, value] of Object.entries(headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || (named && named.has(name))) continue;
      if (Array.isArray(value)) for (const v of value) out.push(name, v);
      else out.push(name, value);
    }
    try {
      this.res.writeHead(status, out);
    } catch (err) {
      body.destroy();
      this.ctx.log.error({ backend: backend.id, pid: backend.pid }, `backend sent a response head Node cannot write: ${(err as Error).message}`);
      sendError(this.res, 502, 'the backend sent an invalid response head');
      this.release();
      return;
    }
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      if (!err) {
        const us = (performance.now() - this.tGranted.t) * 1000;
        backend.latency.recordValue(us < 1 ? 1 : us);
        if (us > this.ctx.slowRequestMs * 1000) backend.slowRequests++;
      } else if (!this.clientGone) {
        backend.counters.failures.body = (backend.counters.failures.body ?? 0) + 1;
        this.ctx.log.error({ backend: backend.id, pid: backend.pid, code: (err as NodeJS.ErrnoException).code },
          `${err.message} while reading upstream, request: "${this.req.method} ${this.req.url}", upstream: "http://${backend.addressText}"`);
        this.res.destroy(); // cut: the client must not take it for complete
      }
      this.release();
    };
    body.pipe(this.res);
    body.once('end', () => finish(null));
    body.once('error', (err) => finish(err));
    body.once('close', () => { if (!body.readableEnded) finish(this.clientGone ? null : new Error('the backend response ended early')); });
  }

  private onFailure(backend: Backend, err: NodeJS.ErrnoException): void {
    this.release();
    if (this.clientGone) return;
    const code = err.code ?? 'EIO';
    const isConnect = CONNECT_CODES.has(code) && !this.bodyTouched;
    if (isConnect) backend.client.options.onConnectError?.(code === 'UND_ERR_CONNECT_TIMEOUT' ? 'ETIMEDOUT' : code);
    else backend.counters.failures[code] = (backend.counters.failures[code] ?? 0) + 1;
    if (isConnect && this.attempts <= this.ctx.retries) {
      backend.counters.retried++;
      this.ctx.log.warn({ backend: backend.id, code }, `connect to upstream ${backend.addressText} failed (${code}); retrying the request elsewhere`);
      this.start();
      return;
    }
    const timeout = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT';
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') this.ctx.onStuck?.(backend.id);
    this.ctx.log.error({ backend: backend.id, pid: backend.pid, code },
      `${err.message} (${code}) while ${isConnect ? 'connecting to' : 'talking to'} upstream, request: "${this.req.method} ${this.req.url}", upstream: "http://${backend.addressText}"`);
    sendError(this.res, timeout ? 504 : 502, timeout ? 'the backend did not answer in time (read-timeout)' : `the backend failed (${code})`);
  }

  private release(): void {
    const b = this.backend;
    if (!b) return;
    this.backend = null;
    this.ctx.pool.release(b);
  }
}
