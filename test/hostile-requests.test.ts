// Requests as adversaries (issue 13, items 5, 7, 10): paths that would run what is not
// a script, bodies over --max-body-size, and a Proxy header that must reach only the
// backends of a front that asked for it.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cliStats } from './cliLog.js';
import { PY_HELLO, ROOT, patternChunks, hashOfChunks, peer, request, spawnCli, startTestFront, tmpDir, waitUntil, type RunningCli, type TestFront } from './helpers.js';
import { finals, get, parseResponses, rawExchange, type RawExchange } from './rawHttp.js';

// php-cgi forks a manager and N workers when PHP_FCGI_CHILDREN is set; we want one process per backend.
delete process.env.PHP_FCGI_CHILDREN;
const PHP_CGI = peer('php-cgi');
const NODE_APP = path.join(ROOT, 'examples/node/http-app.mjs');

function describeExchange(ex: RawExchange): string {
  return `${ex.closed ? 'closed' : 'open'} after ${ex.ms} ms, ${ex.data.length} bytes: ${JSON.stringify(ex.data.toString('latin1').slice(0, 300))}`;
}

// --- item 5: what runs as a script ---

/** Responses the backends sent (a request the front refused itself adds none). */
function backendResponses(f: TestFront): number {
  let n = 0;
  for (const b of f.pool.backends) for (const v of Object.values(b.counters.responses)) n += v as number;
  return n;
}

describe.skipIf(!PHP_CGI)('php-cgi with --script-ext php: an upload is never run as PHP (item 5)', () => {
  let front: TestFront;
  let dir: string;
  beforeAll(async () => {
    dir = tmpDir('upfront-hostile-php-');
    fs.writeFileSync(path.join(dir, 'info.php'), '<?php header("X-Ran: info.php"); echo "info ", $_SERVER["SCRIPT_NAME"], " ", $_SERVER["PATH_INFO"] ?? "", "\\n";');
    // What an upload form lets anyone put under the document root.
    fs.writeFileSync(path.join(dir, 'evil.jpg'), '<?php echo "pwned";');
    front = await startTestFront({ procs: 1, 'document-root': dir, 'script-ext': 'php', command: [PHP_CGI!], 'shutdown-grace': 2000 });
  });
  afterAll(async () => {
    await front?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('/info.php and /info.php/extra run; /evil.jpg, /evil.jpg/x.php and /missing.php are 404 and never reach PHP', async () => {
    const info = await request(`${front.url}/info.php`);
    expect(info.status).toBe(200);
    expect(info.headers['x-ran']).toBe('info.php');
    expect(info.body.toString()).toBe('info /info.php \n');
    expect((await request(`${front.url}/info.php/extra`)).body.toString()).toBe('info /info.php /extra\n');
    const before = backendResponses(front);
    for (const p of ['/evil.jpg', '/evil.jpg/x.php', '/missing.php', '/']) {
      const r = await request(`${front.url}${p}`);
      expect(r.status, p).toBe(404);
      expect(r.body.toString(), p).not.toMatch(/pwned/);
    }
    expect(backendResponses(front), 'responses php-cgi gave for the 404s').toBe(before);
  });

  it('a NUL in the path (%00) → 400: /info.php%00.jpg, /evil.jpg%00.php', async () => {
    const hp = front.url.replace('http://', '');
    for (const p of ['/info.php%00.jpg', '/evil.jpg%00.php', '/a%00b']) {
      const ex = await rawExchange(hp, get(p, 'Connection: close\r\n'), { timeoutMs: 5000 });
      const f = finals(ex.parsed);
      expect(f.map((r) => r.status), `${p}: ${describeExchange(ex)}`).toEqual([400]);
      expect(f[0].body.toString(), p).not.toMatch(/pwned|^info /);
    }
  });
});

describe('a NUL in the path with any FastCGI app (item 5)', () => {
  let front: TestFront;
  beforeAll(async () => { front = await startTestFront({ procs: 1, command: ['python3', PY_HELLO] }); });
  afterAll(async () => { await front?.stop(); });

  it('/env%00.jpg → 400 and the backend gets nothing', async () => {
    const before = backendResponses(front);
    const ex = await rawExchange(front.url.replace('http://', ''), get('/env%00.jpg', 'Connection: close\r\n'), { timeoutMs: 5000 });
    expect(finals(ex.parsed).map((r) => r.status), describeExchange(ex)).toEqual([400]);
    expect(backendResponses(front)).toBe(before);
  });
});

// --- item 7: --max-body-size ---

/**
 * A chunked upload of `total` bytes on a raw socket, written with backpressure until the
 * front answers (it may answer before the body is complete) or the body is sent.
 */
function chunkedUpload(hostPort: string, target: string, total: number, timeoutMs = 15_000): Promise<RawExchange & { sent: number }> {
  const colon = hostPort.lastIndexOf(':');
  const started = Date.now();
  return new Promise((resolve) => {
    const s = net.connect(Number(hostPort.slice(colon + 1)), hostPort.slice(0, colon));
    const chunks: Buffer[] = [];
    let sent = 0;
    let done = false;
    let answered = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const data = Buffer.concat(chunks);
      resolve({ data, closed, parsed: parseResponses(data, closed), ms: Date.now() - started, sent });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      answered = true;
      const p = parseResponses(Buffer.concat(chunks), false);
      if (finals(p).some((r) => r.complete)) finish(false);
    });
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    const piece = Buffer.alloc(64 * 1024, 0x61);
    const pump = () => {
      while (!answered && !done && sent < total) {
        const n = Math.min(piece.length, total - sent);
        sent += n;
        s.write(`${n.toString(16)}\r\n`);
        s.write(n === piece.length ? piece : piece.subarray(0, n));
        const ok = s.write(sent >= total ? '\r\n0\r\n\r\n' : '\r\n');
        if (!ok) { s.once('drain', pump); return; }
      }
    };
    s.on('connect', () => {
      s.write(`POST ${target} HTTP/1.1\r\nHost: ${hostPort}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`);
      pump();
    });
  });
}

function spoolFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.startsWith('upfront-body-'));
}

const LIMIT = 3 * 1024 * 1024;

for (const row of [
  { name: 'FastCGI (hello.py: chunked bodies are spooled first)', args: [] as string[], command: ['python3', PY_HELLO] },
  { name: 'HTTP (http-app.mjs: chunked bodies stream)', args: ['--protocol', 'http'], command: [process.execPath, NODE_APP] },
]) {
  describe(`--max-body-size 3m, ${row.name} (item 7)`, () => {
    let cli: RunningCli;
    let tmp: string;
    beforeAll(async () => {
      // The front's temp dir (spooled bodies) is ours alone, to see what it leaves there.
      tmp = tmpDir('upfront-hostile-tmp-');
      cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '1', '--max-body-size', '3m', '--shutdown-grace', '3000', ...row.args, '--', ...row.command],
        { env: { ...process.env, TMPDIR: tmp } });
    }, 30_000);
    afterAll(async () => {
      await cli?.stop();
      fs.rmSync(tmp, { recursive: true, force: true });
    });
    const backendRequests = async () => (await cliStats(cli)).pools[0].backends[0].requests as number;

    it('a Content-Length above the limit → 413 at once, without the body being read, and the backend gets nothing', async () => {
      const before = await backendRequests();
      const head = `POST /sha256 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: ${LIMIT + 1}\r\n\r\n`;
      // Only the head is sent: the answer must not wait for a body.
      const ex = await rawExchange(cli.base.replace('http://', ''), head, { finalResponses: 1, timeoutMs: 5000 });
      const f = finals(ex.parsed);
      expect(f.map((r) => `${r.status} ${r.reason}`), describeExchange(ex)).toEqual(['413 Payload Too Large']);
      expect(ex.ms).toBeLessThan(2000);
      expect(await backendRequests()).toBe(before);
    });

    it('a body exactly at the limit passes, byte-exact (Content-Length and chunked)', async () => {
      const want = await hashOfChunks(patternChunks(LIMIT));
      const whole: Buffer[] = [];
      for await (const c of patternChunks(LIMIT)) whole.push(c);
      const cl = await request(`${cli.base}/sha256`, { method: 'POST', body: Buffer.concat(whole) });
      expect(cl.status).toBe(200);
      expect(JSON.parse(cl.body.toString())).toEqual({ bytes: LIMIT, sha256: want });
      const chunked = await request(`${cli.base}/sha256`, { method: 'POST', body: patternChunks(LIMIT) });
      expect(chunked.status).toBe(200);
      expect(JSON.parse(chunked.body.toString())).toEqual({ bytes: LIMIT, sha256: want });
      await waitUntil(() => spoolFiles(tmp).length === 0, `no spooled body is left in the temp dir (${spoolFiles(tmp).join(', ')})`, 5000);
    });

    it('a chunked body crossing the limit → 413, the backend does not answer it, and no temp file is left', async () => {
      const before = await backendRequests();
      const ex = await chunkedUpload(cli.base.replace('http://', ''), '/sha256', 5 * 1024 * 1024);
      const f = finals(ex.parsed);
      expect(f.map((r) => `${r.status} ${r.reason}`), `sent ${ex.sent} bytes: ${describeExchange(ex)}`).toEqual(['413 Payload Too Large']);
      if (row.args.length === 0) expect(await backendRequests(), 'FastCGI: the spooled body never reaches the backend').toBe(before);
      await waitUntil(() => spoolFiles(tmp).length === 0, `no spooled body is left in the temp dir (${spoolFiles(tmp).join(', ')})`, 5000);
    });

    it('20 chunked bodies crossing the limit at once, their clients leaving: no temp file is left', async () => {
      const hp = cli.base.replace('http://', '');
      await Promise.all(Array.from({ length: 20 }, () => chunkedUpload(hp, '/sha256', 4 * 1024 * 1024)));
      // And clients that leave mid-body, after the spool went to a file (beyond 1 MiB).
      await Promise.all(Array.from({ length: 20 }, () => new Promise<void>((resolve) => {
        const s = net.connect(Number(hp.slice(hp.lastIndexOf(':') + 1)), '127.0.0.1');
        s.on('error', () => {});
        s.on('close', () => resolve());
        s.on('connect', () => {
          s.write(`POST /sha256 HTTP/1.1\r\nHost: ${hp}\r\nTransfer-Encoding: chunked\r\n\r\n`);
          const piece = Buffer.alloc(2 * 1024 * 1024, 0x62);
          s.write(`${piece.length.toString(16)}\r\n`);
          s.write(piece, () => s.resetAndDestroy());
        });
      })));
      await waitUntil(() => spoolFiles(tmp).length === 0, `no spooled body is left in the temp dir (${spoolFiles(tmp).join(', ')})`, 5000);
    }, 30_000);
  });
}

// --- item 10: the HTTP_* name cache and httpoxy ---

describe('two fronts in one process: Proxy reaches only the one with pass-proxy-header (item 10)', () => {
  const fronts: TestFront[] = [];
  afterEach(async () => {
    for (const f of fronts.splice(0)) await f.stop();
  });
  const env = async (f: TestFront) => JSON.parse((await request(`${f.url}/env`, { headers: { Proxy: 'http://evil.example:3128' } })).body.toString());

  it('the passing front first, then the default one', async () => {
    const passing = await startTestFront({ procs: 1, command: ['python3', PY_HELLO], 'pass-proxy-header': true });
    fronts.push(passing);
    const plain = await startTestFront({ procs: 1, command: ['python3', PY_HELLO] });
    fronts.push(plain);
    expect((await env(passing)).HTTP_PROXY).toBe('http://evil.example:3128');
    expect((await env(plain)).HTTP_PROXY).toBeUndefined();
    expect((await env(passing)).HTTP_PROXY).toBe('http://evil.example:3128');
  });

  it('the default front first, then the passing one', async () => {
    const plain = await startTestFront({ procs: 1, command: ['python3', PY_HELLO] });
    fronts.push(plain);
    const passing = await startTestFront({ procs: 1, command: ['python3', PY_HELLO], 'pass-proxy-header': true });
    fronts.push(passing);
    expect((await env(plain)).HTTP_PROXY).toBeUndefined();
    expect((await env(passing)).HTTP_PROXY).toBe('http://evil.example:3128');
    expect((await env(plain)).HTTP_PROXY).toBeUndefined();
  });
});
