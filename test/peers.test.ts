// Integration against real FastCGI peers: php-cgi and fcgiwrap (Debian) and the
// node-fastcgi example spawned on fd 0 as spawn-fcgi would, and the Python example
// as an --upstream that binds its own socket. Every test is bounded in time and
// stops what it started.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, getStats, peer, request, sha256, startTestFront, tmpDir, type TestFront } from './helpers.js';

// php-cgi forks a manager and N workers when PHP_FCGI_CHILDREN is set; we want one process per backend.
delete process.env.PHP_FCGI_CHILDREN;

const PHP_CGI = peer('php-cgi');
const FCGIWRAP = peer('fcgiwrap');
const NODE_APP = path.join(ROOT, 'examples/node/fcgi-app.cjs');
// node-fastcgi 2.0.0 tests `flags & BeginRequest.flags.KEEP_CONN`, a constant fastcgi-stream
// names KEEPCONN: undefined, so it closes every connection after END_REQUEST (see
// examples/node/README.md). True unless someone patched node_modules.
const NODE_FASTCGI_CLOSES = /flags\.KEEP_CONN\b/.test(fs.readFileSync(path.join(ROOT, 'node_modules/node-fastcgi/lib/server.js'), 'utf8'));
const PY_HELLO = path.join(ROOT, 'examples/python/hello.py');

let front: TestFront | null = null;
const dirs: string[] = [];

afterEach(async () => {
  const f = front;
  front = null;
  if (f) await f.stop();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function docRoot(files: Record<string, { text: string; mode?: number }>): string {
  const dir = tmpDir('upfront-peers-');
  dirs.push(dir);
  for (const [name, f] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, name), f.text);
    if (f.mode !== undefined) fs.chmodSync(path.join(dir, name), f.mode);
  }
  return dir;
}

/** Deterministic bytes (every value 0-255, CR/LF and NUL included). */
function bytes(n: number, seed = 7): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) & 0x7fffffff; b[i] = x >> 16; }
  return b;
}

function lines(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of body.toString('utf8').split('\n')) {
    const eq = l.indexOf('=');
    if (eq > 0) out[l.slice(0, eq)] = l.slice(eq + 1);
  }
  return out;
}

function logTail(f: TestFront | null, n = 15): string {
  return f ? f.log.lines.slice(-n).map((l) => JSON.stringify(l)).join('\n') : '';
}

/** Fails (with the front's state and last log lines) instead of hanging until the test timeout. */
async function within<T>(ms: number, what: string, f: TestFront | null, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const backends = f ? f.pool.backends.map((b) => `${b.id} ${b.state} inflight=${b.inflight} slots=${b.slots} conns=${b.transport.figures.openConnections}`).join('; ') : '';
      reject(new Error(`${what}: not done within ${ms} ms; queue=${f?.pool.queue.length} backends: ${backends}\n${logTail(f, 25)}`));
    }, ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A front whose stop() does not wait long for requests a failed test left in flight. */
function start(options: Record<string, unknown>): Promise<TestFront> {
  return startTestFront({ 'shutdown-grace': 2000, 'kill-timeout': 2000, ...options });
}

const INDEX_PHP = `<?php
$route = $_SERVER['PATH_INFO'] ?? '';
if ($route === '/created') {
  header('Status: 201 Created');
  header('X-Peer: php');
  echo "made\\n";
  exit;
}
header('Content-Type: text/plain');
header('X-Peer: php');
echo 'SCRIPT_NAME=', $_SERVER['SCRIPT_NAME'] ?? '', "\\n";
echo 'PATH_INFO=', $route, "\\n";
echo 'REQUEST_METHOD=', $_SERVER['REQUEST_METHOD'] ?? '', "\\n";
echo 'QUERY_STRING=', $_SERVER['QUERY_STRING'] ?? '', "\\n";
$body = file_get_contents('php://input');
echo 'BODY_BYTES=', strlen($body), "\\n";
echo 'BODY_SHA256=', hash('sha256', $body), "\\n";
echo 'PID=', getmypid(), "\\n";
`;

describe.skipIf(!PHP_CGI)('php-cgi on fd 0', () => {
  async function startPhp(procs = 2): Promise<{ f: TestFront; dir: string }> {
    const dir = docRoot({ 'index.php': { text: INDEX_PHP } });
    front = await start({ procs, 'document-root': dir, command: [PHP_CGI!] });
    return { f: front, dir };
  }

  it('splits SCRIPT_NAME / PATH_INFO and passes method and query', async () => {
    const { f } = await startPhp();
    const r = await request(`${f.url}/index.php/a/b?x=1&y=2`);
    expect(r.status, `${r.body}\n${logTail(f)}`).toBe(200);
    expect(r.headers['x-peer']).toBe('php');
    const v = lines(r.body);
    expect(v.SCRIPT_NAME).toBe('/index.php');
    expect(v.PATH_INFO).toBe('/a/b');
    expect(v.REQUEST_METHOD).toBe('GET');
    expect(v.QUERY_STRING).toBe('x=1&y=2');
    expect(v.BODY_BYTES).toBe('0');
  }, 30_000);

  it('takes Status: from the script', async () => {
    const { f } = await startPhp();
    const r = await request(`${f.url}/index.php/created`);
    expect(r.status).toBe(201);
    expect(r.headers['x-peer']).toBe('php');
    expect(r.body.toString()).toBe('made\n');
  }, 30_000);

  it('receives a POST body of a few hundred KB byte-exact', async () => {
    const { f } = await startPhp();
    const body = bytes(300 * 1024 + 17);
    const r = await request(`${f.url}/index.php/upload`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    expect(r.status, `${r.body}\n${logTail(f)}`).toBe(200);
    const v = lines(r.body);
    expect(v.REQUEST_METHOD).toBe('POST');
    expect(v.BODY_BYTES).toBe(String(body.length));
    expect(v.BODY_SHA256).toBe(sha256(body));
  }, 30_000);

  it('receives a chunked upload (no Content-Length) byte-exact: spooled, sent with CONTENT_LENGTH, temp file removed', async () => {
    const { f } = await startPhp();
    const spoolFiles = () => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`upfront-body-${process.pid}-`));
    for (const size of [1000, 3 * 1024 * 1024 + 5]) { // in memory, then through a temp file
      const body = bytes(size);
      async function* chunks() { for (let i = 0; i < body.length; i += 100_000) yield body.subarray(i, i + 100_000); }
      const r = await request(`${f.url}/index.php/upload`, { method: 'POST', body: chunks() });
      expect(r.status, `${r.body}\n${logTail(f)}`).toBe(200);
      const v = lines(r.body);
      expect(v.BODY_BYTES).toBe(String(size));
      expect(v.BODY_SHA256).toBe(sha256(body));
    }
    expect(spoolFiles()).toEqual([]);
  }, 30_000);

  it('answers 404 for a missing script (php-cgi: "No input file specified.")', async () => {
    const { f } = await startPhp();
    const r = await request(`${f.url}/missing.php`);
    expect(r.status).toBe(404);
    expect(r.body.toString()).toMatch(/No input file specified/);
    // The backend is still fine afterwards.
    expect((await request(`${f.url}/index.php`)).status).toBe(200);
  }, 30_000);

  it('serves 50 concurrent requests, all 200, on both processes', async () => {
    const { f } = await startPhp(2);
    const replies = await within(20_000, '50 concurrent requests to php-cgi', f,
      Promise.all(Array.from({ length: 50 }, (_, i) => request(`${f.url}/index.php/c/${i}`))));
    const bad = replies.filter((r) => r.status !== 200);
    expect(bad.map((r) => `${r.status} ${r.body.toString().slice(0, 200)}`), logTail(f)).toEqual([]);
    for (const [i, r] of replies.entries()) expect(lines(r.body).PATH_INFO).toBe(`/c/${i}`);
    const pids = new Set(replies.map((r) => lines(r.body).PID));
    expect(pids.size).toBe(2);
    expect(f.log.count((l) => l.level >= 50)).toBe(0); // no error lines
  }, 40_000);

  // php-cgi serves one connection at a time and, with FCGI_KEEP_CONN, stays on it
  // waiting for the next request: a request written on a second connection to
  // the same process waits in its accept queue until the first one is closed.
  // The front must never open more connections to it than it has slots.
  it('first burst on a fresh single-process php-cgi: no request stuck behind a kept connection', async () => {
    for (let round = 0; round < 4; round++) {
      const dir = docRoot({ 'index.php': { text: INDEX_PHP } });
      const f = front = await start({ procs: 1, 'document-root': dir, command: [PHP_CGI!], 'read-timeout': 3000 });
      const replies = await within(10_000, `round ${round}: first 40 concurrent requests`, f,
        Promise.all(Array.from({ length: 40 }, (_, i) => request(`${f.url}/index.php/burst/${i}`))));
      const b = f.pool.backends[0];
      expect(replies.map((r) => r.status), `round ${round}: connections opened to the one php-cgi: ${b.transport.figures.connectionsOpened}\n${logTail(f)}`)
        .toEqual(Array(40).fill(200));
      expect(b.transport.figures.connectionsOpened, `round ${round}`).toBe(1);
      await f.stop();
      front = null;
    }
  }, 40_000);

  it('reports what php-cgi answers to GET_VALUES', async () => {
    const { f } = await startPhp(2);
    // php-cgi (8.2, no PHP_FCGI_CHILDREN) answers FCGI_MAX_CONNS=1, FCGI_MAX_REQS=1, FCGI_MPXS_CONNS=0:
    // one request at a time, not multiplexed.
    const ready = f.log.lines.filter((l) => typeof l.backend === 'string' && /ready/.test(l.msg));
    expect(ready.length).toBe(2);
    for (const l of ready) expect(l.getValues).toEqual({ FCGI_MAX_CONNS: '1', FCGI_MAX_REQS: '1', FCGI_MPXS_CONNS: '0' });
    for (const b of f.pool.backends) {
      expect(b.caps).toMatchObject({ multithreaded: false, multiplexed: false, slots: 1, source: 'GET_VALUES' });
    }
    const stats = await getStats(f);
    expect(stats.pools[0].backends.map((b: any) => [b.multithreaded, b.multiplexed, b.slots, b.switchesFrom]))
      .toEqual([[false, false, 1, 'GET_VALUES'], [false, false, 1, 'GET_VALUES']]);
    // php-cgi honours FCGI_KEEP_CONN: sequential requests reuse one connection per backend.
    for (let i = 0; i < 10; i++) expect((await within(10_000, `request ${i}`, f, request(`${f.url}/index.php`))).status).toBe(200);
    const opened = f.pool.backends.reduce((n, b) => n + b.transport.figures.connectionsOpened, 0);
    expect(opened).toBeLessThanOrEqual(f.pool.backends.length);
  }, 30_000);
});

// fcgiwrap reads the whole FastCGI STDIN into the script's stdin pipe before it
// reads the script's stdout: a script that echoes as it reads (`cat`) deadlocks
// once the body outgrows the two pipe buffers (~128 KB; seen with fcgiwrap 1.1.0
// and no front at all). So /spool reads the body whole first, as a real CGI would.
const ECHO_CGI = `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n'
printf 'X-Peer: fcgiwrap\\r\\n'
printf '\\r\\n'
printf 'PATH_INFO=%s\\n' "$PATH_INFO"
printf 'SCRIPT_NAME=%s\\n' "$SCRIPT_NAME"
printf 'SCRIPT_FILENAME=%s\\n' "$SCRIPT_FILENAME"
printf 'REQUEST_METHOD=%s\\n' "$REQUEST_METHOD"
printf -- '--body--\\n'
if [ "$PATH_INFO" = /spool ]; then
  t=$(mktemp) && cat > "$t" && cat "$t"
  rm -f "$t"
else
  cat
fi
`;

describe.skipIf(!FCGIWRAP)('fcgiwrap on fd 0', () => {
  let wrapDir = '';
  async function startWrap(): Promise<TestFront> {
    wrapDir = docRoot({ 'echo.cgi': { text: ECHO_CGI, mode: 0o755 } });
    // fcgiwrap does not answer FCGI_GET_VALUES: it is ready once it accepted the probe (after get-values-timeout).
    front = await start({ procs: 1, 'document-root': wrapDir, command: [FCGIWRAP!] });
    return front;
  }

  it('runs SCRIPT_FILENAME with PATH_INFO', async () => {
    const f = await startWrap();
    expect(f.pool.backends[0].caps.source).toBe('fallback: no GET_VALUES answer');
    const r = await request(`${f.url}/echo.cgi/x`);
    expect(r.status, `${r.body}\n${logTail(f)}`).toBe(200);
    expect(r.headers['x-peer']).toBe('fcgiwrap');
    const v = lines(r.body);
    expect(v.PATH_INFO).toBe('/x');
    expect(v.SCRIPT_NAME).toBe('/echo.cgi');
    expect(v.SCRIPT_FILENAME).toBe(path.join(wrapDir, 'echo.cgi'));
    expect(v.REQUEST_METHOD).toBe('GET');
  }, 30_000);

  async function postEcho(f: TestFront, route: string, body: Buffer): Promise<void> {
    const r = await request(`${f.url}/echo.cgi${route}`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    expect(r.status, `${r.body.subarray(0, 300)}\n${logTail(f)}`).toBe(200);
    const marker = r.body.indexOf('--body--\n');
    expect(marker).toBeGreaterThan(0);
    const v = lines(r.body.subarray(0, marker));
    expect(v.PATH_INFO).toBe(route);
    expect(v.REQUEST_METHOD).toBe('POST');
    const echoed = r.body.subarray(marker + '--body--\n'.length);
    expect(echoed.length).toBe(body.length);
    expect(sha256(echoed)).toBe(sha256(body));
  }

  it('passes a POSTed body through the script byte-exact (streamed by cat)', async () => {
    const f = await startWrap();
    await postEcho(f, '/stream', bytes(48 * 1024 + 3, 99)); // under the pipe buffers: see ECHO_CGI
  }, 30_000);

  it('passes a 1 MB POSTed body through the script byte-exact (spooled)', async () => {
    const f = await startWrap();
    await postEcho(f, '/spool', bytes(1024 * 1024 + 11, 5));
  }, 30_000);
});

describe('node-fastcgi example on fd 0', () => {
  async function startNode(): Promise<TestFront> {
    front = await start({ procs: 2, command: [process.execPath, NODE_APP] });
    return front;
  }

  it('serves /Hello/100', async () => {
    const f = await startNode();
    const r = await request(`${f.url}/Hello/100`);
    expect(r.status, `${r.body}\n${logTail(f)}`).toBe(200);
    const hello = r.body.toString('utf8').split('\n').filter((l) => l.includes('Hello, World!'));
    expect(hello.length).toBe(100);
    // node's http.ServerResponse adds "Connection: close" to its CGI head; the front must not pass it on.
    expect(r.headers.connection).not.toBe('close');
  }, 30_000);

  it('copes with an app that closes the connection after every request: 30 sequential requests', async () => {
    const f = await startNode();
    const statuses: number[] = [];
    await within(20_000, '30 sequential requests', f, (async () => {
      for (let i = 0; i < 30; i++) statuses.push((await request(`${f.url}/Hello/3`)).status);
    })());
    expect(statuses, logTail(f)).toEqual(Array(30).fill(200));
    if (NODE_FASTCGI_CLOSES) {
      // Each request needed a connection of its own.
      const opened = f.pool.backends.reduce((n, b) => n + b.transport.figures.connectionsOpened, 0);
      expect(opened).toBeGreaterThanOrEqual(30);
      // The client noticed (warn line) and no longer pipelines to it.
      expect(f.log.count((l) => typeof l.change === 'string' && l.change.includes('keepConn true → false'))).toBeGreaterThan(0);
    }
  }, 40_000);

  // A POST is not retried once its body went out, so it shows whether the front
  // ever writes a request on an idle kept connection the app is already closing
  // (END_REQUEST read, its EOF not yet): the GETs above could be saved by a retry.
  // One client, one request at a time (no multiplexing involved); the window is
  // short, so 120 requests give it many chances.
  it('120 sequential POSTs all 200, none written on a connection the app is closing', async () => {
    const f = await startNode();
    const failed: string[] = [];
    await within(25_000, '120 sequential POSTs', f, (async () => {
      for (let i = 0; i < 120; i++) {
        const body = bytes(100 + i, i);
        try {
          const r = await request(`${f.url}/echo`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
          if (r.status !== 200 || !r.body.equals(body)) failed.push(`#${i}: ${r.status} ${r.body.subarray(0, 120)}`);
        } catch (err) {
          failed.push(`#${i}: ${(err as Error).message}`);
        }
      }
    })());
    const opened = f.pool.backends.reduce((n, b) => n + b.transport.figures.connectionsOpened, 0);
    expect(failed, `${failed.length} of 120 failed; ${opened} connections opened\n${logTail(f)}`).toEqual([]);
  }, 40_000);

  // node-fastcgi answers FCGI_MPXS_CONNS=1, FCGI_MAX_REQS=2000 (so the front
  // multiplexes), then closes the connection after the first END_REQUEST on it:
  // the other requests on that connection must not be lost to that.
  it('3 rounds of 50 concurrent requests, all 200', async () => {
    const f = await startNode();
    for (let round = 0; round < 3; round++) {
      const replies = await within(10_000, `round ${round} of 50 concurrent requests`, f,
        Promise.all(Array.from({ length: 50 }, (_, i) => request(`${f.url}/Hello/${i + 1}`))));
      expect(replies.map((r) => r.status), `round ${round}\n${logTail(f)}`).toEqual(Array(50).fill(200));
      for (const [i, r] of replies.entries()) expect(r.body.toString().split('\n').filter((l) => l.includes('Hello, World!')).length).toBe(i + 1);
    }
  }, 40_000);

  it('echoes a POSTed body byte-exact', async () => {
    const f = await startNode();
    const body = bytes(256 * 1024 + 5, 3);
    const r = await request(`${f.url}/echo`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    expect(r.status, logTail(f)).toBe(200);
    expect(r.body.length).toBe(body.length);
    expect(sha256(r.body)).toBe(sha256(body));
  }, 30_000);

  it('exposes the CGI params on /env and answers /pid', async () => {
    const f = await startNode();
    const env = JSON.parse((await request(`${f.url}/env?q=1`)).body.toString());
    expect(env.REQUEST_METHOD).toBe('GET');
    expect(env.REQUEST_URI).toBe('/env?q=1');
    expect(env.QUERY_STRING).toBe('q=1');
    const pid = Number((await request(`${f.url}/pid`)).body.toString());
    expect(f.supervisor!.pids()).toContain(pid);
  }, 30_000);
});

async function canConnect(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: socketPath });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

describe('a backend on --upstream', () => {
  it('proxies to the Python example bound on its own socket', async () => {
    const sock = path.join(os.tmpdir(), `upfront-up-${process.pid}-${Date.now() % 100000}.sock`);
    let py: ChildProcess | null = null;
    const output: string[] = [];
    try {
      py = spawn('python3', [PY_HELLO, '--bind', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
      py.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
      py.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
      // No event says "listening": poll, bounded.
      const deadline = Date.now() + 10_000;
      let up = false;
      while (!up && Date.now() < deadline && py.exitCode === null) {
        up = fs.existsSync(sock) && await canConnect(sock);
        if (!up) await new Promise((r) => setTimeout(r, 50));
      }
      expect(up, `python did not listen on ${sock}:\n${output.join('')}`).toBe(true);

      front = await start({ procs: 0, upstream: [`unix:${sock}`] });
      await front.log.waitFor((l) => /upstream u0 .* ready/.test(l.msg), 'upstream ready', 10_000);
      const r = await request(`${front.url}/Hello/5`);
      expect(r.status, logTail(front)).toBe(200);
      expect(r.body.toString('utf8').split('\n').filter((l) => l.includes('Hello, World!')).length).toBe(5);
    } finally {
      if (front) { await front.stop(); front = null; }
      if (py && py.exitCode === null && py.signalCode === null) {
        const gone = new Promise<void>((r) => py!.once('exit', () => r()));
        py.kill('SIGTERM');
        const t = setTimeout(() => py!.kill('SIGKILL'), 3000);
        await gone;
        clearTimeout(t);
      }
      fs.rmSync(sock, { force: true });
    }
  }, 30_000);
});
