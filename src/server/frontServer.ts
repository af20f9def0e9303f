// The public listener: the lean HTTP/1.1 layer (server/http1), one ProxyRequest per
// request whatever the backend protocol. The layer answers malformed requests itself.
// With TLS, one TLS listener feeds HTTP/1.1 connections to the same layer and h2
// sessions to server/h2; files, compression, the access log and public health
// checks (edgeRouter.ts) run before the app only when one of them is on.
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { PublicListenAddress } from '../config/schema.js';
import { BodySpool, BodyTooLarge } from './bodySpool.js';
import { EdgeRouter, type EdgeOptions } from './edgeRouter.js';
import { sendError } from './errorResponse.js';
import type { ClientExchange } from './exchange.js';
import { H2Server } from './h2/server.js';
import { BodyError, DEFAULT_HTTP1_LIMITS, Http1Server, type Http1Connection, type Http1Limits } from './http1/server.js';
import { addressOf, listenOn } from '../listen.js';
import { ProxyRequest, type ProxyContext } from './proxyRequest.js';
import { takeSystemdSocket } from './systemdSocket.js';
import { TlsListener, type LoadedCertificate, type TlsFiles } from './tls/tlsListener.js';

export interface FrontServerOptions {
  listen: PublicListenAddress;
  /** TLS on the public listener (h2 and http/1.1 by ALPN); absent: plain HTTP/1.1. */
  tls?: TlsFiles | null;
  /** Files, compression, access log, public health: absent or all off costs nothing per request. */
  edge?: EdgeOptions | null;
  /** Limits and timeouts of the HTTP/1.1 layer (maxBodyBytes: 413 beyond; 0: no limit). */
  limits: Partial<Http1Limits>;
  /** The backends need a request body's length before it is sent (FastCGI): chunked bodies are spooled first. */
  needsBodyLength: boolean;
  /** Read every request body whole before the request takes a backend slot (a slow uploader never pins a backend). */
  requestBuffering: boolean;
  /** Chunked request bodies up to this size are spooled in memory, larger ones to a temp file. */
  spoolMemoryBytes: number;
  proxy: ProxyContext;
}

export class FrontServer {
  readonly http1: Http1Server;
  /** HTTP/2 sessions and the TLS listener, with --tls-cert / --tls-key. */
  readonly h2: H2Server | null = null;
  readonly tls: TlsListener | null = null;
  private readonly edge: EdgeRouter | null;
  private readonly maxBodyBytes: number;

  constructor(private readonly options: FrontServerOptions, private readonly log: Logger) {
    this.maxBodyBytes = options.limits.maxBodyBytes ?? 0;
    const onHandlerError = (err: unknown, exchange: ClientExchange | null) => {
      const e = err as Error;
      log.error({ err: e?.message, stack: e?.stack }, `internal error answering "${exchange?.method} ${exchange?.target.slice(0, 200)}": ${e?.message}`);
    };
    this.http1 = new Http1Server(options.limits, {
      onRequest: (exchange) => this.onRequest(exchange),
      onRefused: (status, reason, conn) => this.onRefused(status, reason, conn),
      onHandlerError,
    });
    this.edge = options.edge ? EdgeRouter.create(options.edge, this.toApp) : null;
    if (options.tls) {
      const limits: Http1Limits = { ...DEFAULT_HTTP1_LIMITS, ...options.limits };
      this.h2 = new H2Server(limits, { onRequest: (exchange) => this.onRequest(exchange), onHandlerError });
      this.tls = new TlsListener({ ...options.tls, handshakeTimeoutMs: limits.headersTimeoutMs }, this.http1, this.h2, log);
    }
  }

  get acceptedConn(): number {
    return this.http1.acceptedConn + (this.h2 === null ? 0 : this.h2.acceptedSessions);
  }

  /** Responses not finished yet. */
  get active(): number {
    return this.http1.activeExchanges + (this.h2 === null ? 0 : this.h2.activeExchanges);
  }

  private onRefused(status: number, reason: string, conn: Http1Connection): void {
    // A client's malformed request: worth a debug line, not a flood of warnings under attack.
    this.options.proxy.frontResponses?.rejected(status);
    this.log.debug({ status, client: conn.remoteAddress }, `refused a request: ${status} ${reason}`);
    this.edge?.logRefused(status, conn);
  }

  private onRequest(ex: ClientExchange): void {
    if (ex.target.charCodeAt(0) !== 47 /* / */) {
      // `*` (OPTIONS *) or an absolute-form target: nothing here serves those.
      this.options.proxy.frontResponses?.rejected(400);
      sendError(ex, 400, `request target ${JSON.stringify(ex.target.slice(0, 100))} is not a path`);
      return;
    }
    if (this.edge !== null) return this.edge.route(ex);
    this.toApp(ex);
  }

  /** The request goes to the backends. */
  private readonly toApp = (ex: ClientExchange): void => {
    const o = this.options;
    const length = ex.contentLength;
    if (length !== 0 && (o.requestBuffering || (length < 0 && o.needsBodyLength))) {
      // Read it whole first (memory, then a temp file): a slow upload holds no backend slot,
      // and a chunked one gets the length CGI needs.
      const spool = new BodySpool(ex, o.spoolMemoryBytes, this.maxBodyBytes);
      spool.collect((err, total) => {
        if (err) {
          // The layer answers its own body errors (413, 400, 408); a client gone needs none.
          if (!ex.finished && !(err instanceof BodyError)) {
            o.proxy.frontResponses?.rejected(err instanceof BodyTooLarge ? 413 : 400);
            sendError(ex, err instanceof BodyTooLarge ? 413 : 400, err.message);
          }
          return;
        }
        new ProxyRequest(o.proxy, ex, total, spool).start();
      });
      return;
    }
    new ProxyRequest(o.proxy, ex, length, ex).start();
  };

  listen(): Promise<string> {
    const at = this.options.listen;
    // systemd socket activation: the socket is fd 3 if LISTEN_PID/LISTEN_FDS say it is ours.
    if (at.kind === 'fd' && at.systemd) takeSystemdSocket();
    return listenOn(this.tls?.server ?? this.http1.net, at, { label: '', inUseHint: 'stop what uses it or choose another --listen', backlog: 1024 });
  }

  address(): string {
    return addressOf(this.tls?.server ?? this.http1.net);
  }

  /** Re-reads the TLS certificate and key (reload); throws, keeping the one in use, when they are not good. */
  reloadCertificate(): LoadedCertificate | null {
    return this.tls === null ? null : this.tls.reload();
  }

  /** Stops accepting connections; in-flight requests go on (their connections close after; h2: GOAWAY). */
  stopAccepting(): void {
    if (this.tls !== null && this.tls.server.listening) this.tls.server.close();
    this.http1.stopAccepting();
    this.h2?.stopAccepting();
  }

  whenIdle(): Promise<void> {
    return this.h2 === null ? this.http1.whenIdle() : Promise.all([this.http1.whenIdle(), this.h2.whenIdle()]).then(() => {});
  }

  destroyAll(): void {
    if (this.tls !== null && this.tls.server.listening) this.tls.server.close();
    this.h2?.destroyAll();
    this.http1.destroyAll();
    const l = this.options.listen;
    if (l.kind === 'unix') { try { fs.unlinkSync(l.path); } catch { /* gone */ } }
  }
}
