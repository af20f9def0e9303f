// The public listener: the lean HTTP/1.1 layer (server/http1), one ProxyRequest per
// request whatever the backend protocol. The layer answers malformed requests itself.
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { ListenAddress } from '../config/schema.js';
import { BodySpool, BodyTooLarge } from './bodySpool.js';
import { sendError } from './errorResponse.js';
import type { ClientExchange } from './exchange.js';
import { Http1Server, type Http1Connection, type Http1Exchange, type Http1Limits } from './http1/server.js';
import { addressOf, listenOn } from '../listen.js';
import { ProxyRequest, type ProxyContext } from './proxyRequest.js';

export interface FrontServerOptions {
  listen: ListenAddress;
  /** Limits and timeouts of the HTTP/1.1 layer (maxBodyBytes: 413 beyond; 0: no limit). */
  limits: Partial<Http1Limits>;
  /** The backends need a request body's length before it is sent (FastCGI): chunked bodies are spooled first. */
  needsBodyLength: boolean;
  /** Chunked request bodies up to this size are spooled in memory, larger ones to a temp file. */
  spoolMemoryBytes: number;
  proxy: ProxyContext;
}

export class FrontServer {
  readonly http1: Http1Server;
  private readonly maxBodyBytes: number;

  constructor(private readonly options: FrontServerOptions, private readonly log: Logger) {
    this.maxBodyBytes = options.limits.maxBodyBytes ?? 0;
    this.http1 = new Http1Server(options.limits, {
      onRequest: (exchange) => this.onRequest(exchange),
      onRefused: (status, reason, conn) => this.onRefused(status, reason, conn),
      onHandlerError: (err, exchange) => {
        const e = err as Error;
        log.error({ err: e?.message, stack: e?.stack }, `internal error answering "${exchange.method} ${exchange.target.slice(0, 200)}": ${e?.message}`);
      },
    });
  }

  get acceptedConn(): number {
    return this.http1.acceptedConn;
  }

  /** Responses not finished yet. */
  get active(): number {
    return this.http1.activeExchanges;
  }

  private onRefused(status: number, reason: string, conn: Http1Connection): void {
    // A client's malformed request: worth a debug line, not a flood of warnings under attack.
    this.log.debug({ status, client: conn.remoteAddress }, `refused a request: ${status} ${reason}`);
  }

  private onRequest(exchange: Http1Exchange): void {
    const o = this.options;
    const ex: ClientExchange = exchange;
    if (exchange.target.charCodeAt(0) !== 47 /* / */) {
      // `*` (OPTIONS *) or an absolute-form target: nothing here serves those.
      sendError(ex, 400, `request target ${JSON.stringify(exchange.target.slice(0, 100))} is not a path`);
      return;
    }
    const length = exchange.contentLength;
    if (length < 0 && o.needsBodyLength) {
      // Chunked: read it whole first (memory, then a temp file) so its length can be sent.
      const spool = new BodySpool(ex, o.spoolMemoryBytes, this.maxBodyBytes);
      spool.collect((err, total) => {
        if (err) {
          if (!exchange.finished) sendError(ex, err instanceof BodyTooLarge ? 413 : 400, err.message);
          return;
        }
        new ProxyRequest(o.proxy, ex, total, spool).start();
      });
      return;
    }
    new ProxyRequest(o.proxy, ex, length, ex).start();
  }

  listen(): Promise<string> {
    return listenOn(this.http1.net, this.options.listen, { label: '', inUseHint: 'stop what uses it or choose another --listen', backlog: 1024 });
  }

  address(): string {
    return addressOf(this.http1.net);
  }

  /** Stops accepting connections; in-flight requests go on (their connections close after). */
  stopAccepting(): void {
    this.http1.stopAccepting();
  }

  whenIdle(): Promise<void> {
    return this.http1.whenIdle();
  }

  destroyAll(): void {
    this.http1.destroyAll();
    const l = this.options.listen;
    if (l.kind === 'unix') { try { fs.unlinkSync(l.path); } catch { /* gone */ } }
  }
}
