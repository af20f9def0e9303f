// The admin listener (never the public one): GET / (the dashboard), /stats (JSON),
// /metrics (Prometheus), /status (php-fpm's page: ?json, ?xml, ?html, ?openmetrics,
// ?full) are open; POST /scale and
// /reload act. On TCP, every request must name a loopback Host (DNS rebinding),
// a browser's foreign Origin is refused, and a POST needs the bearer token and a
// JSON body. A unix socket is mode 0600: whoever can connect could read the token
// file too, so it needs no token. Any failure ends in an answer and a log line,
// never in an exception out of the handler.
import fs from 'node:fs';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ListenAddress } from '../config/schema.js';
import type { HealthAnswer } from '../server/health.js';
import { listenOn } from '../listen.js';
import { phpFpmStatus, STATUS_CONTENT_TYPES, type StatusFormat } from '../stats/phpFpmStatus.js';
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from '../stats/prometheus.js';
import { statsSnapshot, type StatsSources } from '../stats/snapshot.js';
import { dashboardPage } from './dashboard.js';
import { bearerMatches, hostAllowed, isJsonContentType, isLoopbackName, originAllowed, queryHas, splitTarget } from './adminAccess.js';
import { generateAdminToken, loadAdminTokenFile, removeAdminToken, type AdminToken } from './adminToken.js';

export interface AdminActions {
  scale(procs: number): Promise<{ from: number; to: number }>;
  reload(): Promise<{ replaced: number; failed: number; errors?: string[] }>;
}

export interface AdminOptions {
  listen: ListenAddress;
  /** Where a generated token file goes (the socket dir). */
  tokenDir: string;
  /** --admin-token-file: the operator's token instead of a generated one. */
  tokenFile?: string;
  /** GET /healthz and /readyz (for balancers and orchestrators). */
  health?: { answer(path: string): HealthAnswer | null };
  /** Tests shorten them; ADMIN_TIMEOUTS otherwise. */
  timeouts?: AdminTimeouts;
}

export interface AdminTimeouts {
  /** From connect (or a kept connection's next request) to the end of the head: 408 and close. */
  headersMs: number;
  /** The whole request, body included: 408 and close. The answer to /scale or /reload is not bounded by it. */
  requestMs: number;
  /** An idle kept connection is closed after this. */
  keepAliveMs: number;
}

/**
 * A local API's requests are a few hundred bytes sent at once: node's defaults (60 s for
 * the head, 300 s for the request) would let a few slow clients hold sockets for minutes.
 */
export const ADMIN_TIMEOUTS: Readonly<AdminTimeouts> = Object.freeze({ headersMs: 10_000, requestMs: 30_000, keepAliveMs: 5000 });

const MAX_ADMIN_BODY = 4096;
export const MAX_ADMIN_PROCS = 1024;

type Reply = (status: number, type: string, body: string, headers?: Record<string, string>) => void;

export class AdminServer {
  readonly http: http.Server;
  private token: AdminToken | null = null;
  private readonly tcp: boolean;
  /** Bound to a loopback address (the default); anything else was warned about at start. */
  readonly loopback: boolean;

  constructor(private readonly options: AdminOptions, private readonly sources: StatsSources,
    private readonly actions: AdminActions, private readonly log: Logger) {
    this.tcp = options.listen.kind === 'tcp';
    this.loopback = options.listen.kind === 'unix' || isLoopbackName(options.listen.host);
    const t = options.timeouts ?? ADMIN_TIMEOUTS;
    this.http = http.createServer({
      headersTimeout: t.headersMs,
      requestTimeout: t.requestMs,
      keepAliveTimeout: t.keepAliveMs,
      // node checks the two bounds above only this often (30 s by default, longer than they are).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, t.headersMs / 4)),
    }, (req, res) => {
      try {
        this.route(req, res);
      } catch (err) {
        this.failed(req, res, err as Error);
      }
    });
    // CONNECT has no handler of node:http's own: it would just close the socket.
    this.http.on('connect', (req: http.IncomingMessage, socket: Duplex) => {
      socket.on('error', () => { /* the client left */ });
      socket.end('HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 27\r\nConnection: close\r\n\r\nCONNECT is not served here\n');
    });
  }

  /** The token file GET /stats names (the path only), when POSTs need one. */
  get tokenFile(): string | null {
    return this.token?.file ?? null;
  }

  private failed(req: http.IncomingMessage, res: http.ServerResponse, err: Error): void {
    this.log.error({ err, method: req.method, url: req.url }, `admin: ${req.method} ${JSON.stringify(req.url)} failed: ${err.message}`);
    if (res.headersSent) { res.destroy(); return; }
    res.writeHead(500, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store', Connection: 'close' });
    res.end(`admin: internal error: ${err.message}\n`);
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): void {
    const reply: Reply = (status, type, body, headers = {}) => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', ...headers });
      res.end(body);
    };
    const refuse = (status: number, message: string, headers?: Record<string, string>) => {
      req.resume();
      reply(status, 'text/plain', `admin: ${message}\n`, headers);
    };
    const target = splitTarget(req.url);
    if (!target) return refuse(400, `the request target must be a path such as /stats, got ${JSON.stringify(req.url)}`);
    const host = req.headers.host;
    if (this.tcp) {
      if (!hostAllowed(host, this.loopback)) {
        return refuse(421, `Host ${JSON.stringify(host ?? '')} is not ${this.loopback ? 'a loopback name' : 'an IP address'}; `
          + `use http://${this.loopback ? '127.0.0.1' : 'ADDRESS'}:${(this.http.address() as { port?: number } | null)?.port ?? 'PORT'} (names are refused: DNS rebinding)`);
      }
      if (!originAllowed(req.headers.origin, host!)) return refuse(403, `requests from web pages of other origins (${req.headers.origin}) are refused`);
    }
    const method = req.method ?? 'GET';
    if (target.path === '/scale' || target.path === '/reload') {
      if (method !== 'POST') return refuse(405, `${target.path} takes POST`, { Allow: 'POST' });
      if (this.token && !bearerMatches(req.headers.authorization, this.token.value)) {
        return refuse(401, `POST needs the header "Authorization: Bearer TOKEN"; the token is in ${this.token.file} `
          + `(readable by the user upfront runs as; upfront scale and upfront reload read it themselves)`, { 'WWW-Authenticate': 'Bearer realm="upfront admin"' });
      }
      if (!isJsonContentType(req.headers['content-type'])) return refuse(415, `POST bodies must be JSON, sent with "Content-Type: application/json"`);
      this.readBody(req, res, reply, (body) => {
        if (target.path === '/scale') this.onScale(body, reply);
        else this.onReload(reply);
      });
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') return refuse(405, 'only GET here (POST goes to /scale or /reload)', { Allow: 'GET, HEAD' });
    const json = (value: unknown) => reply(200, 'application/json', JSON.stringify(value, null, 2) + '\n');
    switch (target.path) {
      case '/': {
        const page = dashboardPage();
        reply(200, 'text/html; charset=utf-8', page.html, { 'Content-Security-Policy': page.csp, 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer' });
        return;
      }
      case '/stats': {
        const stats = statsSnapshot(this.sources, { history: queryHas(target.query, 'history') });
        json(this.token ? { ...stats, adminTokenFile: this.token.file } : stats);
        return;
      }
      case '/metrics':
        reply(200, PROMETHEUS_CONTENT_TYPE, renderPrometheus(statsSnapshot(this.sources)));
        return;
      case '/healthz':
      case '/readyz': {
        const a = this.options.health?.answer(target.path);
        if (a) reply(a.status, 'application/json', a.body);
        else refuse(404, 'no health source here');
        return;
      }
      case '/status': {
        // php-fpm's order of precedence when several are given.
        const format: StatusFormat = (['html', 'xml', 'json', 'openmetrics'] as const).find((f) => queryHas(target.query, f)) ?? 'text';
        reply(200, STATUS_CONTENT_TYPES[format], phpFpmStatus(statsSnapshot(this.sources), format, queryHas(target.query, 'full')));
        return;
      }
      default:
        refuse(404, 'not found: GET / (the dashboard), /stats, /metrics, /status, /healthz or /readyz; POST /scale or /reload');
    }
  }

  /** A small JSON body, bounded: 413 beyond MAX_ADMIN_BODY bytes. */
  private readBody(req: http.IncomingMessage, res: http.ServerResponse, reply: Reply, then: (body: string) => void): void {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let tooBig = false;
    // Bytes, not characters: 4096 of "€" are 12 KB.
    req.on('data', (c: Buffer) => {
      if (tooBig) return;
      chunks.push(c);
      bytes += c.length;
      if (bytes > MAX_ADMIN_BODY) {
        tooBig = true;
        reply(413, 'text/plain', `admin: bodies here are at most ${MAX_ADMIN_BODY} bytes\n`, { Connection: 'close' });
      }
    });
    req.on('error', () => { /* the client left; nothing to answer */ });
    req.on('end', () => {
      if (tooBig) return;
      try {
        then(Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        this.failed(req, res, err as Error);
      }
    });
  }

  /**
   * POST /scale {"procs": N} → 202 {"from", "to"} once the change is done (new processes ready,
   * retired ones drained; changes asked at once run one after another); 409 with why it failed.
   */
  private onScale(body: string, reply: Reply): void {
    const json = (status: number, value: unknown) => reply(status, 'application/json', JSON.stringify(value) + '\n');
    let procs: unknown;
    try {
      procs = (JSON.parse(body) as { procs?: unknown } | null)?.procs;
    } catch {
      json(400, { error: 'expected a JSON body such as {"procs": 4}' });
      return;
    }
    if (typeof procs !== 'number' || !Number.isInteger(procs) || procs < 1 || procs > MAX_ADMIN_PROCS) {
      json(400, { error: `procs: expected a whole number from 1 to ${MAX_ADMIN_PROCS}, got ${JSON.stringify(procs) ?? 'nothing'}` });
      return;
    }
    this.actions.scale(procs).then((r) => json(202, r), (err: Error) => json(409, { error: err.message }));
  }

  /**
   * POST /reload → answered with the outcome: 200 {"replaced", "failed": 0}; 500 when a
   * replacement did not start (its old process keeps serving); 409 when refused
   * (the config does not validate, nothing to reload).
   */
  private onReload(reply: Reply): void {
    const json = (status: number, value: unknown) => reply(status, 'application/json', JSON.stringify(value) + '\n');
    this.actions.reload().then((r) => {
      if (r.failed === 0) json(200, r);
      else json(500, { ...r, error: `${r.failed} new process(es) did not get ready${r.errors?.length ? ` (${r.errors.join('; ')})` : ''}; their old processes keep serving` });
    }, (err: Error) => json(409, { error: `reload refused: ${err.message}` }));
  }

  async listen(): Promise<string> {
    if (this.tcp) {
      // Before binding: a bad --admin-token-file stops the start here.
      this.token = this.options.tokenFile ? loadAdminTokenFile(this.options.tokenFile) : generateAdminToken(this.options.tokenDir);
    }
    // A unix socket is created with no access for others from the first moment.
    const at = this.options.listen;
    let address: string;
    try {
      address = await listenOn(this.http, at, { label: 'admin address ', inUseHint: 'choose another --admin or --admin off', umask: 0o177 });
    } catch (err) {
      removeAdminToken(this.token);
      throw err;
    }
    if (at.kind === 'unix') fs.chmodSync(at.path, 0o600);
    if (!this.loopback) {
      this.log.warn({ admin: address }, `admin listener on ${address} is reachable from other machines: GET /stats, /metrics and /status are open to them; `
        + 'POSTs still need the token. Bind it to 127.0.0.1 (or a unix socket) unless that is what you want');
    }
    if (this.token) this.log.info({ admin: address, tokenFile: this.token.file }, `admin POSTs need the token in ${this.token.file}`);
    return address;
  }

  close(): void {
    this.http.close();
    this.http.closeAllConnections();
    removeAdminToken(this.token);
    const at = this.options.listen;
    if (at.kind === 'unix') { try { fs.unlinkSync(at.path); } catch { /* gone */ } }
  }
}
