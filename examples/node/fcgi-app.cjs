#!/usr/bin/env node
// A node-fastcgi 2.0.0 application, served on fd 0 (FCGI_LISTENSOCK_FILENO) as
// spawn-fcgi and upfront hand it over: `fcgi.createServer(handler).listen()`.
//
//   upfront run --procs 2 -- node examples/node/fcgi-app.cjs
//   spawn-fcgi -s /tmp/node-app.sock -F 2 -- /usr/bin/node examples/node/fcgi-app.cjs
//
// Routes:
//   /Hello/N  N lines `<p>Hello, World! line i</p>` (default 100), as the Python example
//   /echo     streams the request body back, with its Content-Type
//   /env      JSON of the CGI params the front sent (node-fastcgi keeps them on
//             req.socket.params; req.cgiParams is the same object)
//   /pid      the process id
// Anything else: 404.
'use strict';

const fcgi = require('node-fastcgi');

const MAX_LINES = 1_000_000;

function cgiParams(req) {
  // lib/request.js: the FastCGI request object (req.socket) collects PARAMS in
  // `.params`; `_createReqRes` also sets req.cgiParams to the same object.
  return (req.socket && req.socket.params) || req.cgiParams || {};
}

function routePath(req) {
  // node-fastcgi builds req.url from REQUEST_URI (else SCRIPT_NAME + PATH_INFO + ?QUERY_STRING).
  const url = req.url || '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

function handler(req, res) {
  const path = routePath(req);
  let m;
  if (path === '/' || path === '/Hello' || (m = /^\/Hello\/(\d+)$/.exec(path))) {
    const n = m ? Math.min(Number(m[1]), MAX_LINES) : 100;
    const parts = [];
    for (let i = 0; i < n; i++) parts.push(`<p>Hello, World! line ${i}</p>\n`);
    const body = Buffer.from(`<!doctype html>\n<title>Hello</title>\n${parts.join('')}`, 'utf8');
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': body.length });
    res.end(body);
    return;
  }
  if (path === '/echo') {
    const headers = { 'Content-Type': req.headers['content-type'] || 'application/octet-stream' };
    if (req.headers['content-length']) headers['Content-Length'] = req.headers['content-length'];
    res.writeHead(200, headers);
    req.pipe(res); // streams, with backpressure both ways
    req.on('error', () => res.destroy());
    return;
  }
  if (path === '/env') {
    const body = Buffer.from(JSON.stringify(cgiParams(req), null, 1) + '\n', 'utf8');
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
    res.end(body);
    return;
  }
  if (path === '/pid') {
    const body = `${process.pid}\n`;
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  const body = `not found: ${path}\n`;
  res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const server = fcgi.createServer(handler);
server.on('clientError', (err, socket) => { socket.destroy(); });
server.on('protocolError', (err) => { process.stderr.write(`fcgi-app: ${err.message}\n`); });
server.listen(); // no arguments: fd 0, the listening socket the spawner handed over

// The spawner stops us with SIGTERM: finish what is in flight, then exit.
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
