// Clients that do not take what the front sends, or announce more than it accepts,
// against a real front (in-process) and the Python example on raw sockets:
//   - a client that pipelines requests and never reads: the front stops starting
//     requests (and reading) while its last answer waits for a drain, as nginx does,
//     instead of buffering every answer; when the client reads, every answer comes, in order;
//     a client that never reads is still cut by --send-timeout;
//   - a chunk size over --max-body-size: 413 at its size line, not a wait for the body timeout.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PY_HELLO, getStats, startTestFront, waitUntil, type TestFront } from './helpers.js';
import { finals, get, header, parseResponses, rawExchange } from './rawHttp.js';

let front: TestFront | null = null;
let client: net.Socket | null = null;
afterEach(async () => {
  client?.destroy();
  client = null;
  await front?.stop();
  front = null;
});

/** Requests the backends were handed (each one the front started). */
async function served(f: TestFront): Promise<number> {
  const stats = await getStats(f);
  return stats.pools[0].backends.reduce((a: number, b: { requests: number }) => a + b.requests, 0);
}

/** Resolves once `served` has not moved for `quietMs` (bounded): the front stopped taking requests. */
async function servedSettles(f: TestFront, quietMs: number, timeoutMs: number): Promise<number> {
  let last = -1;
  let since = Date.now();
  await waitUntil(async () => {
    const n = await served(f);
    if (n !== last) {
      last = n;
      since = Date.now();
    }
    return n > 0 && Date.now() - since >= quietMs;
  }, 'the backend request count stops rising', timeoutMs);
  return last;
}

/** A connection whose client takes nothing it is sent (paused before connecting, so node reads nothing either). */
async function nonReadingClient(f: TestFront): Promise<net.Socket> {
  const [host, port] = [f.address.slice(0, f.address.lastIndexOf(':')), Number(f.address.slice(f.address.lastIndexOf(':') + 1))];
  const s = net.connect(port, host);
  s.pause();
  s.on('error', () => {});
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
  return s;
}

/** `n` GETs of /bytes/(8000+i), 100 per write: each answer comes from the backend in one piece, and its length says its place. */
function pipeline(s: net.Socket, n: number): void {
  for (let i = 0; i < n; i += 100) {
    let batch = '';
    for (let j = i; j < Math.min(n, i + 100); j++) batch += `GET /bytes/${8000 + j} HTTP/1.1\r\nHost: x\r\n\r\n`;
    s.write(batch);
  }
}

/** A number from a sysctl file of three (min, default, max), or `fallback`. */
function sysctl(file: string, index: number, fallback: number): number {
  try {
    const v = Number(fs.readFileSync(file, 'utf8').trim().split(/\s+/)[index]);
    return Number.isFinite(v) && v > 0 ? v : fallback;
  } catch {
    return fallback;
  }
}

/**
 * Answers that fit where the front may rightly put them while the client reads nothing:
 * the front's send buffer (grown up to tcp_wmem's max), the client's receive buffer (at
 * tcp_rmem's default: never grown for an application that does not read), and a slack
 * for the front's own write queue (its high-water mark, one answer, one read).
 */
const KERNEL_HELD = Math.ceil((sysctl('/proc/sys/net/ipv4/tcp_wmem', 2, 4 << 20) + sysctl('/proc/sys/net/ipv4/tcp_rmem', 1, 128 << 10) + (256 << 10)) / 8000);
/** Well above that, so that a front that buffers answers shows it. */
const N = Math.max(2000, Math.ceil((3 * KERNEL_HELD) / 100) * 100);

describe('a client that pipelines and does not read', () => {
  it(`${N} pipelined requests: the front stops taking them while its answers wait for a drain, then answers all, in order, complete`, async () => {
    // Head and keep-alive timeouts shorter than the quiet wait below: a connection parked
    // for a drain is under the send timeout only, never closed as idle or slow.
    front = await startTestFront({ procs: 1, command: ['python3', PY_HELLO], 'send-timeout': 30_000, 'client-header-timeout': 1000, 'keepalive-timeout': 1000 });
    client = await nonReadingClient(front);
    const s = client;
    pipeline(s, N);
    // Before the fix every one was served within a second or two (and buffered in the front).
    const stalled = await servedSettles(front, 1500, 15_000);
    expect(stalled, `requests the backend served while the client read nothing (of ${N}; the kernel's buffers hold ${KERNEL_HELD} answers)`).toBeLessThanOrEqual(KERNEL_HELD);
    expect(front.server.http1.connections, 'the parked connection is still open').toBe(1);

    // Now the client reads: every answer arrives, in request order, complete.
    let buf: Buffer = Buffer.alloc(0);
    let got = 0;
    const wrong: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${got} of ${N} responses within 20 s`)), 20_000);
      s.on('close', () => { clearTimeout(timer); reject(new Error(`the front closed the connection after ${got} of ${N} responses`)); });
      s.on('data', (c: Buffer) => {
        buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
        // Cut one whole response at a time off the front (they carry Content-Length), each parsed strictly.
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) break;
          const length = /\r\ncontent-length: *(\d+)\r\n/i.exec(buf.subarray(0, end + 2).toString('latin1'));
          if (length === null) { wrong.push(`#${got}: no Content-Length: ${JSON.stringify(buf.subarray(0, 200).toString('latin1'))}`); buf = Buffer.alloc(0); break; }
          const size = end + 4 + Number(length[1]);
          if (buf.length < size) break;
          const p = parseResponses(buf.subarray(0, size), false);
          const r = p.responses[0];
          const want = 8000 + got;
          if (p.error !== null || p.responses.length !== 1 || !r.complete || r.status !== 200 || r.body.length !== want
            || header(r, 'x-sha256') !== crypto.createHash('sha256').update(r.body).digest('hex')) {
            if (wrong.length < 5) wrong.push(`#${got}: ${p.error ?? ''} ${r?.status} ${r?.body.length} bytes (want ${want})`);
          }
          got++;
          buf = buf.subarray(size);
        }
        if (got >= N) { clearTimeout(timer); resolve(); }
      });
      s.resume();
    });
    expect(buf.length, 'no bytes after the last response').toBe(0);
    expect(wrong).toEqual([]);
    expect(got).toBe(N);
    expect(await served(front)).toBe(N);
    expect(front.server.http1.connections, 'keep-alive: the connection stays').toBe(1);
  }, 60_000);

  it('one that never reads is still cut by --send-timeout, having been served only what the kernel holds', async () => {
    front = await startTestFront({ procs: 1, command: ['python3', PY_HELLO], 'send-timeout': 1000 });
    client = await nonReadingClient(front);
    pipeline(client, N);
    const f = front;
    await waitUntil(async () => (await served(f)) > 0, 'the front starts answering', 10_000);
    // The parked connection's deadline is the send timeout's (1 s): it goes, and nothing keeps it.
    await waitUntil(() => f.server.http1.connections === 0, 'the front cuts the connection that takes nothing', 10_000);
    expect(await served(f)).toBeLessThanOrEqual(KERNEL_HELD);
    expect(f.server.active, 'no response left in progress').toBe(0);
    const next = await rawExchange(f.address, get('/Hello/1', 'Connection: close\r\n'), { timeoutMs: 5000 });
    expect(finals(next.parsed).map((r) => r.status), 'the next client is served').toEqual([200]);
  }, 30_000);
});

describe('a chunk size over --max-body-size', () => {
  // Body timeout long, test bounded short: only a refusal at the size line passes.
  const options = { procs: 1, command: ['python3', PY_HELLO], 'max-body-size': '1m', 'client-body-timeout': 30_000 };
  const chunked = (chunks: string): string => `POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`;

  for (const [what, chunks] of [
    ['one chunk of 0x10000000000000 bytes (2^52), a few of them sent', '10000000000000\r\nabc'],
    ['a second chunk whose size takes the body past 1 MiB', `80000\r\n${'a'.repeat(0x80000)}\r\n80001\r\nabc`],
  ] as const) {
    it(`${what}: 413 at once, counted as body-too-large; the next client is served`, async () => {
      front = await startTestFront(options);
      const before = (await getStats(front)).frontResponses['body-too-large'] as number;
      const ex = await rawExchange(front.address, chunked(chunks), { timeoutMs: 5000 });
      expect(finals(ex.parsed).map((r) => r.status), ex.data.toString('latin1').slice(0, 300)).toEqual([413]);
      expect(ex.closed, 'the front closes after its refusal').toBe(true);
      expect(ex.ms, 'answered at the size line, not after the body timeout').toBeLessThan(3000);
      expect((await getStats(front)).frontResponses['body-too-large']).toBe(before + 1);
      const next = await rawExchange(front.address, get('/Hello/1', 'Connection: close\r\n'), { timeoutMs: 5000 });
      expect(finals(next.parsed).map((r) => r.status), 'the next client is served').toEqual([200]);
    }, 20_000);
  }

  it('a body of exactly 1 MiB in chunks is still taken', async () => {
    front = await startTestFront(options);
    const body = 'a'.repeat(0x80000);
    const ex = await rawExchange(front.address, chunked(`80000\r\n${body}\r\n80000\r\n${body}\r\n0\r\n\r\n`), { finalResponses: 1, timeoutMs: 10_000 });
    const r = finals(ex.parsed);
    expect(r.map((x) => x.status), ex.data.toString('latin1').slice(0, 300)).toEqual([200]);
    expect(JSON.parse(r[0].body.toString()).bytes).toBe(0x100000);
  }, 20_000);
});
