// The public listener: one ProxyRequest per request, whatever the backend protocol.
import fs from 'node:fs';
import http from 'node:http';
import type { Logger } from 'pino';
import type { ListenAddress } from '../config/schema.js';
import { BodySpool, BodyTooLarge } from './bodySpool.js';
import { sendError } from './errorResponse.js';
import type { ClientExchange } from './exchange.js';
import { addressOf, listenOn } from './listen.js';
import { NodeExchange } from './nodeExchange.js';
import { ProxyRequest, type ProxyContext } from './proxyRequest.js';

export interface FrontServerOptions {
  listen: ListenAddress;
  /** The backends need a request body's length before it is sent (FastCGI): chunked bodies are spooled first. */
  needsBodyLength: boolean;
  /** Chunked request bodies up to this size are spooled in memory, larger ones to a temp file. */
  spoolMemoryBytes: number;
  /** Largest request body accepted (413 beyond); 0: no limit. */
  maxBodyBytes: number;
  proxy: ProxyContext;
}

function hostHeaders(headers: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name.length === 4 && (name === 'Host' || name.toLowerCase() === 'host')) n++;
  }
  return n;
}

export class FrontServer {
  readonly http: http.Server;
  /** Responses not finished yet (for a graceful stop). */
  active = 0;
  acceptedConn = 0;
  draining = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: FrontServerOptions, private readonly log: Logger) {
    this.http = http.createServer({
      keepAlive: true,
      requestTimeout: 0, // uploads may take long; the backend read timeout bounds the waiting
      headersTimeout: 60_000,
    }, (req, res) => {
      this.active++;
      res.once('close', this.onResponseClose);
      if (this.draining) res.shouldKeepAlive = false;
      try {
        this.onRequest(new NodeExchange(req, res));
      } catch (err) {
        this.log.error({ err: (err as Error).message, stack: (err as Error).stack }, `internal error handling "${req.method} ${req.url}"`);
        if (!res.headersSent) { res.writeHead(500, { 'Content-Type': 'text/plain', Connection: 'close' }); res.end('500 Internal Server Error\n'); }
        else res.destroy();
      }
    });
    this.http.on('connection', () => { this.acceptedConn++; });
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // Malformed HTTP from a client: answer 400 where the socket still takes it, never crash.
      if (socket.writable && err.code !== 'ECONNRESET') socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  private onRequest(exchange: ClientExchange): void {
    const o = this.options;
    const target = exchange.target;
    if (target.charCodeAt(0) !== 47 /* / */) {
      sendError(exchange, 400, `request target ${JSON.stringify(target.slice(0, 100))} is not an absolute path`);
      return;
    }
    if (hostHeaders(exchange.headers) > 1) {
      // RFC 9112 3.2: 400. Which one would the backend believe? (undici refuses the request,
      // and its pool then loses that connection for good.)
      sendError(exchange, 400, 'the request has more than one Host header');
      return;
    }
    const length = exchange.contentLength;
    if (o.maxBodyBytes > 0 && length > o.maxBodyBytes) {
      sendError(exchange, 413, `the request body of ${length} bytes exceeds the limit of ${o.maxBodyBytes} bytes (max-body-size)`);
      return;
    }
    if (length < 0 && o.needsBodyLength) {
      // Chunked: read it whole first (memory, then a temp file) so its length can be sent.
      const spool = new BodySpool(exchange, o.spoolMemoryBytes, o.maxBodyBytes);
      spool.collect((err, total) => {
        if (err) {
          if (!exchange.finished) sendError(exchange, err instanceof BodyTooLarge ? 413 : 400, err.message);
          return;
        }
        new ProxyRequest(o.proxy, exchange, total, spool).start();
      });
      return;
    }
    new ProxyRequest(o.proxy, exchange, length, exchange).start();
  }

  private readonly onResponseClose = (): void => {
    this.active--;
    if (this.active === 0 && this.idleWaiters.length) for (const w of this.idleWaiters.splice(0)) w();
  };

  listen(): Promise<string> {
    return listenOn(this.http, this.options.listen, { label: '', inUseHint: 'stop what uses it or choose another --listen', backlog: 1024 });
  }

  address(): string {
    return addressOf(this.http);
  }

  /** Stops accepting connections; in-flight requests go on (their connections close after). */
  stopAccepting(): void {
    this.draining = true;
    this.http.close();
    this.http.closeIdleConnections();
  }

  whenIdle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  destroyAll(): void {
    this.http.closeAllConnections();
    const l = this.options.listen;
    if (l.kind === 'unix') { try { fs.unlinkSync(l.path); } catch { /* gone */ } }
  }
}
