// The public listener: node:http, CGI params, and a ProxyRequest per request.
import fs from 'node:fs';
import http from 'node:http';
import type { Logger } from 'pino';
import type { ListenAddress } from '../config/schema.js';
import { BadRequestPath, CgiParamsBuilder, type CgiParamsOptions } from './cgiParams.js';
import { sendError } from './errorResponse.js';
import { addressOf, listenOn } from './listen.js';
import { ProxyRequest, type ProxyContext } from './proxyRequest.js';
import { BodySpool } from './bodySpool.js';
import { HttpProxyRequest } from './httpProxyRequest.js';
import type { Readable } from 'node:stream';

export interface FrontServerOptions {
  protocol: 'fastcgi' | 'http';
  listen: ListenAddress;
  /** Chunked request bodies up to this size are spooled in memory, larger ones to a temp file. */
  spoolMemoryBytes: number;
  cgi: CgiParamsOptions;
  proxy: ProxyContext;
}

export class FrontServer {
  readonly http: http.Server;
  private readonly params: CgiParamsBuilder;
  /** Responses not finished yet (for a graceful stop). */
  active = 0;
  acceptedConn = 0;
  draining = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: FrontServerOptions, private readonly log: Logger) {
    this.params = new CgiParamsBuilder(options.cgi);
    this.http = http.createServer({
      keepAlive: true,
      requestTimeout: 0, // uploads may take long; the backend read timeout bounds the waiting
      headersTimeout: 60_000,
    }, (req, res) => this.onRequest(req, res));
    this.http.on('connection', () => { this.acceptedConn++; });
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // Malformed HTTP from a client: answer 400 where the socket still takes it, never crash.
      if (socket.writable && err.code !== 'ECONNRESET') socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.active++;
    res.once('close', this.onResponseClose);
    if (this.draining) res.shouldKeepAlive = false;
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    if (this.options.protocol === 'http') {
      // HTTP backends take chunked bodies as they are: stream, no spooling, no CGI params.
      new HttpProxyRequest(this.options.proxy, req, res, te !== undefined || (cl !== undefined && cl !== '0'), this.options.cgi.https).start();
      return;
    }
    if (cl === undefined && te !== undefined) {
      // Chunked: read it whole first (memory, then a temp file) so CONTENT_LENGTH can be sent.
      const spool = new BodySpool(req, this.options.spoolMemoryBytes);
      spool.collect((err, length) => {
        if (err) {
          if (!res.headersSent && !res.destroyed) sendError(res, 400, err.message);
          return;
        }
        this.forward(req, res, length, length > 0 ? spool.stream() : null);
      });
      return;
    }
    this.forward(req, res, cl !== undefined ? Number(cl) : 0, null);
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, bodyLength: number, spooled: Readable | null): void {
    let params: string[];
    try {
      params = this.params.build(req, bodyLength);
    } catch (err) {
      if (err instanceof BadRequestPath) {
        req.resume();
        spooled?.destroy();
        sendError(res, 400, err.message);
        return;
      }
      throw err;
    }
    new ProxyRequest(this.options.proxy, req, res, params, bodyLength > 0, spooled).start();
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
