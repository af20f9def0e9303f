// CGI params as nginx's fastcgi_params sets them, plus SCRIPT_NAME / PATH_INFO and
// HTTP_* for the request headers. Strings stay latin1 so request bytes pass unchanged.
import type { IncomingMessage } from 'node:http';
import { ScriptResolver, normalizePath } from './scriptResolver.js';

export interface CgiParamsOptions {
  documentRoot: string;
  serverSoftware: string;
  /** Forward headers whose names contain "_" (they collide with "-" in HTTP_*). */
  passUnderscoreHeaders: boolean;
  /** Forward the Proxy header (httpoxy: it would become HTTP_PROXY). */
  passProxyHeader: boolean;
  /** Extra fixed params (name, value) from the config. */
  extra: readonly string[];
  https: boolean;
}

export class BadRequestPath extends Error {}

const headerNames = new Map<string, string | null>();

/** HTTP_* name of a header, or null when it must not be forwarded. */
function envName(raw: string, opts: CgiParamsOptions): string | null {
  let name = headerNames.get(raw);
  if (name !== undefined) return name;
  const lower = raw.toLowerCase();
  if (lower === 'content-type' || lower === 'content-length') name = null; // sent as CONTENT_TYPE / CONTENT_LENGTH
  else if (lower === 'proxy' && !opts.passProxyHeader) name = null;
  else if (raw.includes('_') && !opts.passUnderscoreHeaders) name = null;
  else name = 'HTTP_' + raw.toUpperCase().replace(/-/g, '_');
  if (headerNames.size < 2000) headerNames.set(raw, name);
  return name;
}

export class CgiParamsBuilder {
  private readonly resolver: ScriptResolver;
  private readonly docRoot: string;

  constructor(private readonly opts: CgiParamsOptions) {
    // latin1 view of the UTF-8 bytes of the path, like every other param string.
    this.docRoot = Buffer.from(opts.documentRoot.replace(/\/+$/, ''), 'utf8').toString('latin1');
    this.resolver = new ScriptResolver(opts.documentRoot.replace(/\/+$/, ''));
  }

  build(req: IncomingMessage, bodyLength: number | null): string[] {
    const url = req.url || '/';
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '' : url.slice(q + 1);
    const path = normalizePath(rawPath);
    if (path === null) throw new BadRequestPath(`request path ${JSON.stringify(rawPath.slice(0, 200))} is not a valid absolute path`);
    const scriptLen = this.resolver.scriptLength(path);
    const scriptName = scriptLen > 0 ? path.slice(0, scriptLen) : '';
    const pathInfo = scriptLen > 0 ? path.slice(scriptLen) : path;
    const socket = req.socket;
    const host = req.headers.host;
    let serverName = host || socket.localAddress || '';
    if (host) {
      const colon = host.lastIndexOf(':');
      if (colon > 0 && host.indexOf(']') < colon) serverName = host.slice(0, colon);
    }
    const o = this.opts;
    const p: string[] = [
      'GATEWAY_INTERFACE', 'CGI/1.1',
      'SERVER_SOFTWARE', o.serverSoftware,
      'QUERY_STRING', query,
      'REQUEST_METHOD', req.method || 'GET',
      'CONTENT_TYPE', (req.headers['content-type'] as string | undefined) ?? '',
      'CONTENT_LENGTH', bodyLength === null ? '' : String(bodyLength),
      'SCRIPT_NAME', scriptName,
      'SCRIPT_FILENAME', this.docRoot + (scriptName || path),
      'PATH_INFO', pathInfo,
      'REQUEST_URI', url,
      'DOCUMENT_URI', path,
      'DOCUMENT_ROOT', this.docRoot,
      'SERVER_PROTOCOL', 'HTTP/' + req.httpVersion,
      'REQUEST_SCHEME', o.https ? 'https' : 'http',
      'REMOTE_ADDR', socket.remoteAddress || '',
      'REMOTE_PORT', socket.remotePort === undefined ? '' : String(socket.remotePort),
      'SERVER_ADDR', socket.localAddress || '',
      'SERVER_PORT', socket.localPort === undefined ? '' : String(socket.localPort),
      'SERVER_NAME', serverName,
      'REDIRECT_STATUS', '200',
    ];
    if (o.https) p.push('HTTPS', 'on');
    if (pathInfo && scriptName) p.push('PATH_TRANSLATED', this.docRoot + pathInfo);
    for (let i = 0; i < o.extra.length; i++) p.push(o.extra[i]);
    const raw = req.rawHeaders;
    const firstHeader = p.length;
    for (let i = 0; i < raw.length; i += 2) {
      const name = envName(raw[i], o);
      if (name === null) continue;
      // Repeated headers are joined, as nginx does (cookies with "; ").
      let dup = -1;
      for (let j = firstHeader; j < p.length; j += 2) if (p[j] === name) { dup = j; break; }
      if (dup < 0) p.push(name, raw[i + 1]);
      else p[dup + 1] += (name === 'HTTP_COOKIE' ? '; ' : ', ') + raw[i + 1];
    }
    return p;
  }
}
