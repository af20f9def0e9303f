// What the front does before (or instead of) the app, each feature only when asked
// for: the access log and compression wrap the client exchange, /healthz and
// /readyz answer on the public listener (--health-on-public), and files are served
// from --static mounts and --try-files. Built only when one of them is on: with all
// off the front's request path tests one null and goes straight to the app.
import type { ClientConnection } from '../transport.js';
import { ACCEPTS_BR, ACCEPTS_GZIP, requestAcceptedEncodings } from './acceptEncoding.js';
import { formatAccessLine, LoggedExchange, type AccessLog } from './accessLog.js';
import { CompressingExchange, type CompressOptions } from './compress.js';
import type { ClientExchange } from './exchange.js';
import { healthPath, type FrontHealth } from './health.js';
import type { StaticFiles } from './static/staticFiles.js';

export interface EdgeOptions {
  /** --health-on-public: /healthz and /readyz answered on the public listener. */
  health: FrontHealth | null;
  files: StaticFiles | null;
  compress: CompressOptions | null;
  accessLog: AccessLog | null;
}

export class EdgeRouter {
  private readonly health: FrontHealth | null;
  private readonly files: StaticFiles | null;
  private readonly compress: CompressOptions | null;
  readonly accessLog: AccessLog | null;

  /** null when every feature is off. */
  static create(options: EdgeOptions, toApp: (ex: ClientExchange) => void): EdgeRouter | null {
    if (options.health === null && options.files === null && options.compress === null && options.accessLog === null) return null;
    return new EdgeRouter(options, toApp);
  }

  private constructor(options: EdgeOptions, private readonly toApp: (ex: ClientExchange) => void) {
    this.health = options.health;
    this.files = options.files;
    this.compress = options.compress;
    this.accessLog = options.accessLog;
  }

  route(exchange: ClientExchange): void {
    let ex = exchange;
    // Innermost first: the log counts what the client is sent (after compression).
    if (this.accessLog !== null) ex = new LoggedExchange(ex, this.accessLog);
    if (this.compress !== null && ex.method !== 'HEAD') {
      const accepted = requestAcceptedEncodings(ex.headers) & (ACCEPTS_BR | ACCEPTS_GZIP);
      if (accepted !== 0) ex = new CompressingExchange(ex, accepted, this.compress);
    }
    if (this.health !== null) {
      const p = healthPath(ex.target);
      if (p !== null) {
        const a = this.health.answer(p)!;
        ex.respond(a.status, null, ['Content-Type', 'application/json', 'Cache-Control', 'no-store'], a.body);
        return;
      }
    }
    if (this.files !== null && this.files.handle(ex, this.toApp)) return;
    this.toApp(ex);
  }

  /** A request the HTTP/1.1 layer refused by itself (malformed, too large, too slow): logged as nginx logs its 400s. */
  logRefused(status: number, conn: ClientConnection): void {
    const log = this.accessLog;
    if (log === null) return;
    log.add(formatAccessLine(log.format, {
      remoteAddr: conn.remoteAddress, method: '-', target: '-', protocol: '-', status, bytes: 0, referer: undefined, userAgent: undefined,
      host: undefined, requestTime: 0, upstreamTime: null, queueTime: null, backend: null, pid: null,
    }, Date.now()));
  }
}
