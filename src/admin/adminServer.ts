// The admin listener (never the public one): GET /stats as JSON.
import fs from 'node:fs';
import http from 'node:http';
import type { ListenAddress } from '../config/schema.js';
import { clearSocketPath } from '../supervisor/sockets.js';
import { statsSnapshot, type StatsSources } from '../stats/snapshot.js';

export class AdminServer {
  readonly http: http.Server;

  constructor(private readonly listenAt: ListenAddress, sources: StatsSources) {
    this.http = http.createServer((req, res) => {
      const url = req.url ?? '/';
      const pathOnly = url.split('?')[0];
      if (req.method === 'GET' && pathOnly === '/stats') {
        const body = JSON.stringify(statsSnapshot(sources), null, 2) + '\n';
        res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
        res.end(body);
        return;
      }
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found: try GET /stats\n');
    });
  }

  async listen(): Promise<string> {
    const l = this.listenAt;
    if (l.kind === 'unix') await clearSocketPath(l.path);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const where = l.kind === 'unix' ? `unix:${l.path}` : `${l.host}:${l.port}`;
        reject(new Error(`cannot listen on admin address ${where}: ${err.code === 'EADDRINUSE' ? 'address already in use (EADDRINUSE); choose another --admin or --admin off' : err.message}`));
      };
      this.http.once('error', onError);
      const done = () => { this.http.off('error', onError); resolve(); };
      if (l.kind === 'unix') this.http.listen({ path: l.path }, done);
      else this.http.listen({ host: l.host, port: l.port }, done);
    });
    if (l.kind === 'unix') fs.chmodSync(l.path, 0o600);
    const a = this.http.address();
    return typeof a === 'string' ? `unix:${a}` : a ? `${a.address}:${a.port}` : '';
  }

  close(): void {
    this.http.close();
    this.http.closeAllConnections();
    if (this.listenAt.kind === 'unix') { try { fs.unlinkSync(this.listenAt.path); } catch { /* gone */ } }
  }
}
