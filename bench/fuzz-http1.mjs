// Fuzzes the http1 layer over real sockets: random bytes and mutations of valid
// requests, written whole or in pieces, against an Http1Server whose handler does
// all it may (echo, answer early, stream chunked, pause, throw, cut). Counts the
// verdicts; fails (exit 1) if the process throws, a connection ends with neither a
// response nor a close, a response is malformed, or connections/exchanges leak.
//
//   npx tsc -p tsconfig.json && node bench/fuzz-http1.mjs [seconds=60] [seed]
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { Http1Server } = await import(path.join(ROOT, 'dist/server/http1/server.js'));

const SECONDS = Number(process.argv[2] ?? 60);
const SEED = Number(process.argv[3] ?? Date.now() % 1_000_000);
const CONCURRENCY = 64;
const LIMITS = { headersTimeoutMs: 2000, bodyTimeoutMs: 2000, keepAliveTimeoutMs: 1000, sendTimeoutMs: 2000, maxBodyBytes: 1_000_000 };
/** No connection may stay without a response or a close longer than this. */
const HANG_MS = LIMITS.headersTimeoutMs + LIMITS.bodyTimeoutMs + 3000;

let uncaught = 0;
process.on('uncaughtException', (err) => { uncaught++; console.error('UNCAUGHT', err); });
process.on('unhandledRejection', (err) => { uncaught++; console.error('UNHANDLED', err); });

// ---- seeded randomness
let state = SEED >>> 0 || 1;
function rand() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const chance = (p) => rand() < p;
const bytes = (n) => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = int(0, 255); return b; };

// ---- the server, with a handler that exercises the exchange API
const counters = { requests: 0, refused: {}, handlerErrors: 0 };
const server = new Http1Server(LIMITS, {
  onRequest(ex) {
    counters.requests++;
    const mode = ex.target.length % 8;
    switch (mode) {
      case 0: case 1: case 2: { // echo the body length
        let n = 0;
        ex.readBody({ onBodyData: (c) => { n += c.length; return true; }, onBodyEnd: () => ex.respond(200, null, ['Content-Type', 'text/plain'], `got ${n}`), onBodyError: () => {} });
        break;
      }
      case 3: // answer at once, body unread
        ex.respond(200, null, [], 'early');
        break;
      case 4: { // stream chunked, with pauses of the body
        ex.writeHead(200, null, [], -1);
        ex.setClientEvents({ onClientDrain: () => ex.resumeBody(), onClientClose: () => {} });
        ex.readBody({
          onBodyData: (c) => { if (!ex.write(Buffer.from(c))) return false; if (chance(0.3)) { setTimeout(() => ex.resumeBody(), int(0, 20)); return false; } return true; },
          onBodyEnd: () => setTimeout(() => ex.end(Buffer.from('end')), int(0, 10)),
          onBodyError: () => {},
        });
        break;
      }
      case 5: // throw (sometimes after reading starts)
        if (chance(0.5)) ex.readBody({ onBodyData: () => { throw new Error('sink throws'); }, onBodyEnd: () => { throw new Error('end throws'); }, onBodyError: () => {} });
        else throw new Error('handler throws');
        break;
      case 6: // cut, or a wrong length
        if (chance(0.5)) setTimeout(() => ex.destroy(), int(0, 5));
        else { ex.writeHead(200, null, [], 10); ex.end(Buffer.from('short')); }
        break;
      default: // answer later
        setTimeout(() => ex.respond(int(0, 1) ? 200 : 404, null, ['X-Later', '1'], 'later'), int(0, 30));
    }
  },
  onRefused(status) { counters.refused[status] = (counters.refused[status] ?? 0) + 1; },
  onHandlerError() { counters.handlerErrors++; },
});
await new Promise((resolve) => server.net.listen(0, '127.0.0.1', resolve));
const port = server.net.address().port;

// ---- requests: valid ones, mutated ones, random bytes
const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'PATCH', 'CONNECT', 'PRI', 'get', 'FOO'];
function validRequest() {
  const method = pick(METHODS.slice(0, 7));
  const target = '/' + 'abcdefgh/?=&%'.split('').filter(() => chance(0.5)).join('') + 'x'.repeat(int(0, 7));
  const lines = [`${method} ${target} HTTP/1.${chance(0.9) ? 1 : 0}`, 'Host: fuzz'];
  for (let i = int(0, 5); i > 0; i--) lines.push(`X-${int(0, 99)}: ${'v'.repeat(int(0, 40))}`);
  let body = Buffer.alloc(0);
  if (chance(0.5)) {
    const data = bytes(chance(0.1) ? int(10_000, 200_000) : int(0, 3000));
    if (chance(0.5)) {
      lines.push('Transfer-Encoding: chunked');
      const parts = [];
      for (let pos = 0; pos < data.length;) {
        const n = Math.min(data.length - pos, int(1, 5000));
        parts.push(Buffer.from(`${n.toString(16)}${chance(0.1) ? ';e=1' : ''}\r\n`), data.subarray(pos, pos + n), Buffer.from('\r\n'));
        pos += n;
      }
      parts.push(Buffer.from(chance(0.1) ? '0\r\nX-T: 1\r\n\r\n' : '0\r\n\r\n'));
      body = Buffer.concat(parts);
    } else {
      lines.push(`Content-Length: ${data.length}`);
      body = data;
    }
  }
  if (chance(0.1)) lines.push('Expect: 100-continue');
  if (chance(0.1)) lines.push('Connection: close');
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), body]);
}

const SPECIAL = [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x3a, 0x3b, 0x22, 0x7f, 0x80, 0xff, 0x30, 0x66];
function mutate(buf) {
  let b = Buffer.from(buf);
  for (let k = int(1, 4); k > 0; k--) {
    const at = int(0, Math.max(0, b.length - 1));
    switch (int(0, 7)) {
      case 0: if (b.length) b[at] = int(0, 255); break;
      case 1: b = Buffer.concat([b.subarray(0, at), Buffer.from([pick(SPECIAL)]), b.subarray(at)]); break;
      case 2: b = Buffer.concat([b.subarray(0, at), b.subarray(at + int(1, 5))]); break;
      case 3: b = b.subarray(0, at); break;
      case 4: { const len = int(1, 50); b = Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]); break; }
      case 5: b = Buffer.concat([b.subarray(0, at), Buffer.from(pick(['\r\n', '\n', '\r', ': ', ' ', '\r\n\r\n', 'Content-Length: 5\r\n', 'Transfer-Encoding: chunked\r\n', 'Host: x\r\n', 'ffffffffffff\r\n', ';\r\n'])), b.subarray(at)]); break;
      case 6: b = Buffer.concat([b.subarray(0, at), Buffer.alloc(int(1, 20_000), pick(['a', ' ', ':', '\r\n'])), b.subarray(at)]); break;
      default: b = Buffer.concat([b, validRequest()]);
    }
  }
  return b;
}

function nextInput() {
  const roll = rand();
  if (roll < 0.15) return bytes(int(1, 2000));
  if (roll < 0.3) return Buffer.concat([validRequest(), validRequest(), validRequest()]);
  if (roll < 0.4) return validRequest();
  return mutate(validRequest());
}

// ---- one connection: write the input (whole or in pieces), wait for a response or a close
const verdicts = {};
const violations = [];
let connections = 0;
let bytesSent = 0;
const count = (k) => { verdicts[k] = (verdicts[k] ?? 0) + 1; };

function runOne() {
  const input = nextInput();
  bytesSent += input.length;
  connections++;
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let settled = false;
    const started = Date.now();
    const hang = setTimeout(() => finish('hung'), HANG_MS);
    function finish(how) {
      if (settled) return;
      settled = true;
      clearTimeout(hang);
      socket.destroy();
      if (how === 'hung') {
        violations.push(`no response and no close after ${Date.now() - started} ms for ${JSON.stringify(input.toString('latin1').slice(0, 200))}`);
        count('hung');
      } else count(how);
      resolve();
    }
    socket.on('data', (d) => {
      received = Buffer.concat([received, d]);
      const text = received.toString('latin1', 0, Math.min(received.length, 64));
      if (received.length >= 12) {
        const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
        if (!m) {
          violations.push(`malformed response start ${JSON.stringify(text)}`);
          return finish('malformed');
        }
        // A response began: the connection ended in a response. Finish once its head is whole.
        let status = Number(m[1]);
        let headEnd = received.indexOf('\r\n\r\n');
        let from = 0;
        while (status === 100 && headEnd !== -1 && received.length > headEnd + 16) {
          from = headEnd + 4;
          const next = /^HTTP\/1\.1 (\d{3}) /.exec(received.toString('latin1', from, from + 20));
          if (!next) break;
          status = Number(next[1]);
          headEnd = received.indexOf('\r\n\r\n', from);
        }
        if (headEnd !== -1 && status !== 100) finish(`status ${status}`);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => finish(received.length ? 'closed mid-response' : 'closed without response'));
    socket.on('connect', async () => {
      if (chance(0.7)) socket.write(input);
      else {
        // In pieces, sometimes with pauses.
        let pos = 0;
        while (pos < input.length && !settled) {
          const n = Math.min(input.length - pos, int(1, 3000));
          socket.write(input.subarray(pos, pos + n));
          pos += n;
          if (chance(0.2)) await new Promise((r) => setTimeout(r, int(0, 30)));
        }
      }
      if (chance(0.05)) socket.end(); // half-close now and then
    });
  });
}

const deadline = Date.now() + SECONDS * 1000;
const started = Date.now();
await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
  while (Date.now() < deadline) await runOne();
}));

// Everything must drain: no connection, no exchange left over.
const drainBy = Date.now() + 5000;
while ((server.connections > 0 || server.activeExchanges > 0) && Date.now() < drainBy) await new Promise((r) => setTimeout(r, 50));
if (server.connections > 0) violations.push(`${server.connections} connections left open on the server`);
if (server.activeExchanges > 0) violations.push(`${server.activeExchanges} exchanges never ended`);
if (uncaught > 0) violations.push(`${uncaught} uncaught exceptions / unhandled rejections`);
server.destroyAll();

const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(JSON.stringify({ seed: SEED, seconds: Number(seconds), connections, bytesSent, requestsHandedOut: counters.requests, handlerErrors: counters.handlerErrors, refusedByLayer: counters.refused, verdicts, violations: violations.length }, null, 2));
for (const v of violations.slice(0, 20)) console.log('VIOLATION', v);
process.exit(violations.length > 0 ? 1 : 0);
