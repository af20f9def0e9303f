// The admin listener (never the public one): GET /stats (JSON), /metrics
// (Prometheus), /status (php-fpm's fields; ?json). A unix socket is mode 0600.
import fs from 'node:fs';
import http from 'node:http';
import type { ListenAddress } from '../config/schema.js';
import { listenOn } from '../server/listen.js';
import { phpFpmStatus } from '../stats/phpFpmStatus.js';
import { PrometheusExporter } from '../stats/prometheus.js';
import { statsSnapshot, type StatsSources } from '../stats/snapshot.js';

export interface AdminActions {
  scale(procs: number): Promise<{ from: number; to: number }>;
  reload(): Promise<{ replaced: number; failed: number }>;
}

const MAX_ADMIN_BODY = 4096;

export class AdminServer {
  readonly http: http.Server;
  private readonly prometheus = new PrometheusExporter();

  constructor(private readonly listenAt: ListenAddress, sources: StatsSources, private readonly actions: AdminActions) {
    this.http = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://admin');
      if (req.method === 'POST' && url.pathname === '/scale') {
        this.onScale(req, res);
        return;
      }
      if (req.method === 'POST' && url.pathname === '/reload') {
        // Answered at once; the rolling reload goes on (watch /stats or the log).
        req.resume();
        this.actions.reload().catch(() => { /* logged by the supervisor */ });
        res.writeHead(202, { 'Content-Type': 'application/json' });
        res.end('{"reloading":true}\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { 'Content-Type': 'text/plain', Allow: 'GET, HEAD' });
        res.end('only GET here\n');
        return;
      }
      const reply = (type: string, body: string) => {
        res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' });
        res.end(body);
      };
      switch (url.pathname) {
        case '/stats':
          reply('application/json', JSON.stringify(statsSnapshot(sources), null, 2) + '\n');
          return;
        case '/metrics':
          this.prometheus.render(statsSnapshot(sources)).then((text) => reply(this.prometheus.contentType, text),
            (err: Error) => { res.writeHead(500); res.end(`metrics failed: ${err.message}\n`); });
          return;
        case '/status': {
          const json = url.searchParams.has('json');
          reply(json ? 'application/json' : 'text/plain', phpFpmStatus(statsSnapshot(sources), json ? 'json' : 'text'));
          return;
        }
        default:
          res.writeHead(404, { 'Content-Type': 'text/plain' });
          res.end('not found: GET /stats, /metrics or /status\n');
      }
    });
  }

  /** POST /scale {"procs": N} → 202 {"from", "to"}; the change goes on in the background. */
  private onScale(req: http.IncomingMessage, res: http.ServerResponse): void {
    let body = '';
    let tooBig = false;
    req.setEncoding('utf8');
    req.on('data', (c: string) => { body += c; if (body.length > MAX_ADMIN_BODY) { tooBig = true; req.destroy(); } });
    req.on('end', () => {
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(value) + '\n');
      };
      if (tooBig) return;
      let procs: unknown;
      try {
        procs = (JSON.parse(body) as { procs?: unknown }).procs;
      } catch {
        json(400, { error: 'expected a JSON body such as {"procs": 4}' });
        return;
      }
      this.actions.scale(procs as number).then((r) => json(202, r), (err: Error) => json(400, { error: err.message }));
    });
  }

  async listen(): Promise<string> {
    // A unix socket is created with no access for others from the first moment.
    const address = await listenOn(this.http, this.listenAt, { label: 'admin address ', inUseHint: 'choose another --admin or --admin off', umask: 0o177 });
    if (this.listenAt.kind === 'unix') fs.chmodSync(this.listenAt.path, 0o600);
    return address;
  }

  close(): void {
    this.http.close();
    this.http.closeAllConnections();
    if (this.listenAt.kind === 'unix') { try { fs.unlinkSync(this.listenAt.path); } catch { /* gone */ } }
  }
}
