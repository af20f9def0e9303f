// A minimal reverse proxy to a unix-socket HTTP backend, with one of two libraries,
// for bench/http-transport.sh: `node bench/http-proxies.mjs undici|http-proxy PORT SOCKET`.
import http from 'node:http';
import { createRequire } from 'node:module';

const [kind, port, socketPath] = process.argv.slice(2);
const require = createRequire(import.meta.url);
let handler;
if (kind === 'undici') {
  const { Pool } = require('undici');
  const pool = new Pool('http://localhost', { socketPath, connections: 64, pipelining: 1 });
  handler = (req, res) => {
    pool.request({ method: req.method, path: req.url, headers: req.headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req })
      .then(({ statusCode, headers, body }) => { res.writeHead(statusCode, headers); body.pipe(res); },
        () => { res.writeHead(502); res.end(); });
  };
} else if (kind === 'http-proxy') {
  const httpProxy = require('http-proxy');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64, socketPath });
  const proxy = httpProxy.createProxyServer({ target: { socketPath }, agent });
  proxy.on('error', (_err, _req, res) => { res.writeHead?.(502); res.end(); });
  handler = (req, res) => proxy.web(req, res);
} else {
  process.stderr.write('usage: http-proxies.mjs undici|http-proxy PORT SOCKET\n');
  process.exit(2);
}
http.createServer(handler).listen(Number(port), '127.0.0.1', () => process.stderr.write(`${kind} proxy on ${port}\n`));
process.on('SIGTERM', () => process.exit(0));
