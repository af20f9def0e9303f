// A plain Node HTTP app for `upfront run --protocol http`: it listens on the unix
// socket path upfront gives it in UPFRONT_SOCKET (or a port, run by hand).
//   upfront run --protocol http -n 2 -- node examples/node/http-app.mjs
import crypto from 'node:crypto';
import http from 'node:http';

let connections = 0;
const PATTERN = Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 31 + 7) & 255));
const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://app');
  const hello = /^\/Hello(?:\/(\d+))?$/.exec(url.pathname);
  if (hello) {
    const n = Number(hello[1] ?? 100);
    let body = '<!DOCTYPE html>\n<html><body>\n';
    for (let i = 1; i <= n; i++) body += `<p>Hello, World! line ${i}</p>\n`;
    body += '</body></html>\n';
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  const bytes = /^\/bytes\/(\d+)$/.exec(url.pathname);
  if (bytes) {
    // N bytes of ((i*31+7) & 255), as the Python example's /bytes/N, streamed with backpressure.
    let left = Number(bytes[1]);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': left });
    const more = () => {
      while (left > 0) {
        const chunk = left >= PATTERN.length ? PATTERN : PATTERN.subarray(0, left);
        left -= chunk.length;
        if (!res.write(chunk)) { res.once('drain', more); return; }
      }
      res.end();
    };
    res.on('close', () => { left = 0; });
    more();
    return;
  }
  switch (url.pathname) {
    case '/echo':
      res.writeHead(200, { 'Content-Type': req.headers['content-type'] ?? 'application/octet-stream' });
      req.pipe(res); // streamed, with backpressure
      return;
    case '/sha256': {
      const h = crypto.createHash('sha256');
      let bytes = 0;
      req.on('data', (c) => { h.update(c); bytes += c.length; });
      req.on('end', () => { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end(JSON.stringify({ bytes, sha256: h.digest('hex') })); });
      return;
    }
    case '/headers':
      res.writeHead(200, { 'Content-Type': 'application/json', Connection: 'keep-alive', 'X-Hop': 'kept' });
      res.end(JSON.stringify(req.headers));
      return;
    case '/connections':
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(`${connections}\n`);
      return;
    case '/pid':
      res.end(`${process.pid}\n`);
      return;
    default:
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found\n');
  }
});
server.on('connection', () => { connections++; });
server.listen(process.env.UPFRONT_SOCKET ?? Number(process.env.PORT ?? 8000), () => {
  process.stderr.write(`http-app: listening on ${process.env.UPFRONT_SOCKET ?? process.env.PORT ?? 8000} pid=${process.pid}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
