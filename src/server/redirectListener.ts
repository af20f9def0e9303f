// --redirect-http: a plain listener that sends every request to https on the public
// listener (301 for GET and HEAD, 308 for the rest so the method and body are kept),
// as nginx's `return 301 https://$host$request_uri;`. It runs on the HTTP/1.1 layer.
import type { Logger } from 'pino';
import type { ListenAddress } from '../config/schema.js';
import { Http1Server, type Http1Exchange, type Http1Limits } from './http1/server.js';
import { addressOf, listenOn } from '../listen.js';

const HOSTNAME = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?|\[[0-9A-Fa-f:.]+\])$/;

/** The https URL for a request: its host without the port, the public TLS port unless 443, the target. */
export function httpsLocation(host: string | undefined, fallbackHost: string, httpsPort: number, target: string): string | null {
  let name = host ?? fallbackHost;
  const colon = name.lastIndexOf(':');
  if (colon > 0 && name.indexOf(']') < colon) name = name.slice(0, colon);
  if (!HOSTNAME.test(name)) return null;
  return `https://${name}${httpsPort === 443 ? '' : `:${httpsPort}`}${target}`;
}

export class RedirectListener {
  readonly http1: Http1Server;

  constructor(private readonly at: ListenAddress, private readonly httpsPort: () => number, limits: Partial<Http1Limits>, log: Logger) {
    this.http1 = new Http1Server({ ...limits, maxBodyBytes: 0 }, {
      onRequest: (ex) => this.onRequest(ex),
      onHandlerError: (err) => log.error({ err: (err as Error)?.message }, `redirect listener: ${(err as Error)?.message}`),
    });
  }

  private onRequest(ex: Http1Exchange): void {
    const plain = ['Content-Type', 'text/plain; charset=utf-8'];
    if (ex.target.charCodeAt(0) !== 47) return ex.respond(400, null, plain, '400 Bad Request: the request target is not a path\n');
    const location = httpsLocation(ex.host, ex.connection.localAddress.includes(':') ? `[${ex.connection.localAddress}]` : ex.connection.localAddress, this.httpsPort(), ex.target);
    if (location === null) return ex.respond(400, null, plain, '400 Bad Request: the Host field is not a host name\n');
    const status = ex.method === 'GET' || ex.method === 'HEAD' ? 301 : 308;
    ex.respond(status, null, ['Location', location, ...plain], `${status === 301 ? '301 Moved Permanently' : '308 Permanent Redirect'}: ${location}\n`);
  }

  listen(): Promise<string> {
    return listenOn(this.http1.net, this.at, { label: 'redirect-http address ', inUseHint: 'choose another --redirect-http' });
  }

  address(): string {
    return addressOf(this.http1.net);
  }

  close(): void {
    this.http1.destroyAll();
  }
}
