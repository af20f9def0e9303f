// Backends whose timing is hostile (test/fixtures/timing-backend.mjs, FastCGI;
// test/fixtures/interim-http-backend.mjs, HTTP), against the spawned CLI with raw
// clients. A request body the app never read does not stand before the next request;
// an app that ignores FCGI_ABORT_REQUEST loses its connection, not the slot; bytes the
// client never sees (stderr, 1xx) do not hold the read timeout off.
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { alive, cliBusy, cliLines, cliStats, waitForCliLine } from './cliLog.js';
import { FIXTURES, spawnCli, waitUntil, type RunningCli } from './helpers.js';
import { finals, get, rawExchange, type RawExchange } from './rawHttp.js';

const TIMING = path.join(FIXTURES, 'timing-backend.mjs');
const INTERIM_HTTP = path.join(FIXTURES, 'interim-http-backend.mjs');

let cli: RunningCli | null = null;
afterEach(async () => {
  await cli?.stop();
  cli = null;
});

function front(args: string[], command: string[]): Promise<RunningCli> {
  return spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '1', '--shutdown-grace', '4000', ...args, '--', ...command]);
}

function hostPort(c: RunningCli): string {
  return c.base.replace('http://', '');
}

function show(ex: RawExchange): string {
  return `${ex.closed ? 'closed' : 'open'} after ${ex.ms} ms, ${ex.data.length} bytes: ${JSON.stringify(ex.data.toString('latin1').slice(0, 300))}`;
}

function statusAndBody(ex: RawExchange): string[] {
  return finals(ex.parsed).map((r) => `${r.status} ${r.body.toString('latin1')}`);
}

async function expectSettled(c: RunningCli): Promise<void> {
  expect(alive(c), `the front exited:\n${c.stderr().slice(-1500)}`).toBe(true);
  await waitUntil(async () => (await cliBusy(c)) === 0, 'no request is left in flight or queued', 5000);
}

describe('FastCGI: END_REQUEST before the request body was sent whole (A)', () => {
  it('a POST of 4 MB answered at once by an app that stops reading → 200; the next GET gets a fresh connection and 200, not 504', async () => {
    cli = await front(['--read-timeout', '1000'], [process.execPath, TIMING]);
    const hp = hostPort(cli);
    const size = 4 * 1024 * 1024;
    const post = Buffer.concat([Buffer.from(`POST /noread-answer HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`), Buffer.alloc(size, 66)]);
    const first = await rawExchange(hp, post, { finalResponses: 1, timeoutMs: 5000 });
    expect(statusAndBody(first), show(first)).toEqual(['200 early answer']);
    for (let i = 0; i < 3; i++) {
      // Behind 4 MB of unsent STDIN on a reused connection this would be 504 after --read-timeout.
      const next = await rawExchange(hp, get('/ok', 'Connection: close\r\n'), { finalResponses: 1, timeoutMs: 5000 });
      expect(statusAndBody(next), `request ${i}: ${show(next)}`).toEqual(['200 ok']);
    }
    await expectSettled(cli);
  }, 30_000);
});

describe('FastCGI: a client leaves an endless response and the app ignores FCGI_ABORT_REQUEST (B)', () => {
  it('with one slot, the next request is answered 200 within seconds, well before --queue-timeout; a warning names the backend', async () => {
    // The read timeout (30 s) and the queue timeout (10 s) are far off: only the abort grace frees the slot.
    cli = await front(['--read-timeout', '30000', '--queue-timeout', '10000', '--log-format', 'json'], [process.execPath, TIMING]);
    const hp = hostPort(cli);
    const colon = hp.lastIndexOf(':');
    // Read part of the stream (a few events), then leave.
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(Number(hp.slice(colon + 1)), hp.slice(0, colon));
      let got = '';
      const timer = setTimeout(() => { s.destroy(); reject(new Error(`no events within 5 s: ${JSON.stringify(got)}`)); }, 5000);
      s.on('error', () => {});
      s.on('data', (c: Buffer) => {
        got += c.toString('latin1');
        if (/data: 2\n/.test(got)) { clearTimeout(timer); s.destroy(); resolve(); }
      });
      s.write(get('/stream-forever'));
    });
    const t0 = Date.now();
    const next = await rawExchange(hp, get('/ok', 'Connection: close\r\n'), { finalResponses: 1, timeoutMs: 9000 });
    const waited = Date.now() - t0;
    expect(statusAndBody(next), show(next)).toEqual(['200 ok']);
    // The grace (1 s) plus a sweep interval (1 s); with the slot held, 503 would come at 10 s.
    expect(waited, show(next)).toBeLessThan(9000);
    const line = await waitForCliLine(cli, (l) => /ignores aborts/.test(l.msg), 'a warning about the ignored abort', 2000);
    expect(line.level).toBe(40);
    expect(line.backend).toBeDefined();
    expect(typeof line.pid).toBe('number');
    await expectSettled(cli);
  }, 30_000);
});

describe('FastCGI: a client leaves a request the app is silently busy with', () => {
  it('the slot is held until the app ends it (it is busy), past the 1 s grace of a still-writing app; no connection closed, nothing counted', async () => {
    cli = await front(['--read-timeout', '30000', '--log-format', 'json'], [process.execPath, TIMING]);
    const hp = hostPort(cli);
    const colon = hp.lastIndexOf(':');
    const s = net.connect(Number(hp.slice(colon + 1)), hp.slice(0, colon));
    s.on('error', () => {});
    s.write(get('/busy-2500'));
    await waitUntil(async () => (await cliBusy(cli!)) === 1, 'the request is in flight');
    s.destroy(); // the client leaves; the app ignores the abort and stays silent
    const next = await rawExchange(hp, get('/ok', 'Connection: close\r\n'), { finalResponses: 1, timeoutMs: 8000 });
    expect(statusAndBody(next), show(next)).toEqual(['200 ok']);
    expect((await cliStats(cli)).pools[0].backends[0].failures['abort-ignored']).toBeUndefined();
    expect(cliLines(cli).filter((l) => /ignores aborts/.test(l.msg))).toEqual([]);
    await expectSettled(cli);
  }, 30_000);
});

describe('the read timeout counts only bytes the client gets (C)', () => {
  it('FastCGI: an app trickling FCGI_STDERR every 100 ms and no STDOUT → 504 after about --read-timeout', async () => {
    cli = await front(['--read-timeout', '1000'], [process.execPath, TIMING]);
    const ex = await rawExchange(hostPort(cli), get('/stderr-trickle', 'Connection: close\r\n'), { finalResponses: 1, timeoutMs: 8000 });
    expect(finals(ex.parsed).map((r) => r.status), show(ex)).toEqual([504]);
    // The app trickles for 30 s: a 504 within a few seconds came while it still was.
    expect(ex.ms, show(ex)).toBeGreaterThanOrEqual(900);
    expect(ex.ms, show(ex)).toBeLessThan(7500); // the trickle goes on for 30 s
    await waitForCliLine(cli, (l) => /tick \d+/.test(l.msg) || /tick \d+/.test(JSON.stringify(l)), 'the app\'s stderr lines in the log', 2000);
    await expectSettled(cli);
  }, 30_000);

  it('FastCGI: an app sending its head a header line every 100 ms, never ended → 504 after about --read-timeout (a head is progress once whole)', async () => {
    cli = await front(['--read-timeout', '1000'], [process.execPath, TIMING]);
    const ex = await rawExchange(hostPort(cli), get('/head-trickle', 'Connection: close\r\n'), { finalResponses: 1, timeoutMs: 8000 });
    expect(finals(ex.parsed).map((r) => r.status), show(ex)).toEqual([504]);
    expect(ex.ms, show(ex)).toBeGreaterThanOrEqual(900);
    expect(ex.ms, show(ex)).toBeLessThan(7500); // the trickle goes on for 30 s
    await expectSettled(cli);
  }, 30_000);

  it('FastCGI: an app sending empty FCGI_STDOUT records every 100 ms after a head and one byte, never ending → cut after about --read-timeout', async () => {
    cli = await front(['--read-timeout', '1000'], [process.execPath, TIMING]);
    const ex = await rawExchange(hostPort(cli), get('/empty-trickle', 'Connection: close\r\n'), { timeoutMs: 8000 });
    // Whatever the client got (a 504, or the head and "a" then a cut), the exchange ended while the app still trickled.
    expect(ex.closed, show(ex)).toBe(true);
    expect(ex.ms, show(ex)).toBeGreaterThanOrEqual(900);
    expect(ex.ms, show(ex)).toBeLessThan(7500); // the trickle goes on for 30 s
    const f = finals(ex.parsed);
    expect(f.length === 1 && (f[0].status === 504 || !f[0].complete), show(ex)).toBe(true);
    await expectSettled(cli);
  }, 30_000);

  it('HTTP: a backend sending "102 Processing" every 100 ms and no final response → 504 after about --read-timeout', async () => {
    cli = await front(['--protocol', 'http', '--read-timeout', '1000'], [process.execPath, INTERIM_HTTP]);
    const ex = await rawExchange(hostPort(cli), get('/', 'Connection: close\r\n'), { finalResponses: 1, timeoutMs: 8000 });
    expect(finals(ex.parsed).map((r) => r.status), show(ex)).toEqual([504]);
    expect(ex.ms, show(ex)).toBeGreaterThanOrEqual(900);
    expect(ex.ms, show(ex)).toBeLessThan(7500); // the trickle goes on for 30 s
    await expectSettled(cli);
  }, 30_000);
});

describe('FastCGI: a protocol error breaks a connection that other requests share', () => {
  it('a GET pipelined beside a broken response, with no byte of its answer yet, is retried and answered 200; the broken one gets 502', async () => {
    cli = await front([], [process.execPath, TIMING]);
    const hp = hostPort(cli);
    // A first answer proves the connection kept: the next requests are pipelined on it.
    const warm = await rawExchange(hp, get('/ok', 'Connection: close\r\n'), { finalResponses: 1, timeoutMs: 5000 });
    expect(statusAndBody(warm), show(warm)).toEqual(['200 ok']);
    const slow = rawExchange(hp, get('/slow-ok', 'Connection: close\r\n'), { finalResponses: 1, timeoutMs: 8000 });
    await waitUntil(async () => (await cliBusy(cli!)) === 1, 'the slow request is in flight');
    const broken = await rawExchange(hp, get('/bad-record', 'Connection: close\r\n'), { finalResponses: 1, timeoutMs: 8000 });
    expect(finals(broken.parsed).map((r) => r.status), show(broken)).toEqual([502]);
    const innocent = await slow;
    expect(statusAndBody(innocent), show(innocent)).toEqual(['200 slow ok']);
    await waitForCliLine(cli, (l) => /retrying the request elsewhere/.test(l.msg) && /slow-ok|version/.test(JSON.stringify(l)), 'the retry of the innocent request', 3000);
    await expectSettled(cli);
  }, 30_000);
});
