// HTTP/1.1 to a backend on a unix socket or TCP, through undici's Pool: kept-alive
// connections (at most one per slot), bodies streamed both ways. Same bookkeeping
// surface as the FastCGI client, so the pool and supervisor treat both alike.
import { Pool } from 'undici';
import type { FcgiAddress } from '../fastcgi/client.js';

export interface HttpClientOptions {
  address: FcgiAddress;
  maxConns: number;
  readTimeoutMs: number;
  connectTimeoutMs: number;
  // Present for the shared bookkeeping surface; HTTP/1.1 here never multiplexes or pipelines.
  multiplexed: boolean;
  keepConn: boolean;
  pipelineDepth: number;
  onConnectError?(code: string): void;
}

export class HttpClient {
  readonly kind = 'http' as const;
  private pool: Pool | null = null;
  private poolConns = 0;
  connectionsOpened = 0;
  suspended = false;

  constructor(readonly options: HttpClientOptions) {}

  /** The undici pool, (re)created when the slot count changed or after a suspend. */
  get undici(): Pool {
    if (this.pool && this.poolConns === this.options.maxConns) return this.pool;
    if (this.pool) void this.pool.close().catch(() => {});
    const a = this.options.address;
    const origin = 'path' in a ? 'http://localhost' : `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
    this.pool = new Pool(origin, {
      connections: this.options.maxConns,
      pipelining: 1,
      headersTimeout: this.options.readTimeoutMs,
      bodyTimeout: this.options.readTimeoutMs,
      keepAliveTimeout: 30_000,
      connect: { timeout: this.options.connectTimeoutMs, ...('path' in a ? { socketPath: a.path } : {}) },
    });
    this.pool.on('connect', () => { this.connectionsOpened++; });
    this.poolConns = this.options.maxConns;
    return this.pool;
  }

  suspend(): void {
    this.suspended = true;
    if (this.pool) void this.pool.destroy().catch(() => {});
    this.pool = null;
  }

  resume(): void {
    this.suspended = false;
  }

  close(force = false): void {
    if (!this.pool) return;
    const p = this.pool;
    this.pool = null;
    void (force ? p.destroy() : p.close()).catch(() => {});
  }

  stopPipelining(): void { /* never pipelines */ }
}
