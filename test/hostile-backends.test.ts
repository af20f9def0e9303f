// Backends as adversaries (issue 13, items 4 and 8): response heads that contradict
// their bodies or the front's framing, from a FastCGI app (test/fixtures/fault-backend.mjs)
// and from a raw HTTP server (test/fixtures/hostile-http-backend.mjs), against the
// spawned CLI and read byte for byte by raw-socket clients. Whatever the backend
// sends, the client sees valid HTTP/1.1 frames only: exactly the declared length and
// then a closed connection, or 502 Bad Gateway before any head; bytes hidden after a
// body never reach a pipelining client as a response of its own; one error line
// names the backend; the front lives on with nothing left in flight.
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { alive, cliBusy, cliLines, waitForCliLine } from './cliLog.js';
import { FIXTURES, PY_HELLO, spawnCli, waitUntil, type RunningCli } from './helpers.js';
import { finals, get, header, rawExchange, type RawExchange } from './rawHttp.js';

const FAULT = path.join(FIXTURES, 'fault-backend.mjs');
const HOSTILE_HTTP = path.join(FIXTURES, 'hostile-http-backend.mjs');

let cli: RunningCli | null = null;
afterEach(async () => {
  await cli?.stop();
  cli = null;
});

/** What the client may see: see the file comment. */
type Outcome = '502' | 'declared-or-502' | 'cut-or-502' | 'ok-or-502';

function describeExchange(ex: RawExchange): string {
  return `${ex.closed ? 'closed' : 'open'} after ${ex.ms} ms, ${ex.data.length} bytes: ${JSON.stringify(ex.data.toString('latin1').slice(0, 400))}`;
}

/** Checks the bytes on one client connection; `requests`: how many it sent (pipelined). */
function expectOutcome(ex: RawExchange, outcome: Outcome, requests: number): void {
  const what = describeExchange(ex);
  expect(ex.parsed.error, `a bad frame on the client connection: ${what}`).toBeNull();
  for (const r of ex.parsed.responses) {
    expect(header(r, 'x-smuggled'), `bytes the backend hid after its body reached the client as a response: ${what}`).toBeUndefined();
    expect(r.body.includes('PWNED'), `the hidden response's body reached the client: ${what}`).toBe(false);
    // No 1xx: the client sent no Expect, and a backend's 1xx is never a final response.
    expect(r.status, `a 1xx reached the client: ${what}`).toBeGreaterThanOrEqual(200);
  }
  const f = finals(ex.parsed);
  expect(f.length, `no response at all: ${what}`).toBeGreaterThanOrEqual(1);
  const first = f[0];
  if (first.status === 502) {
    expect(first.reason, `the status line: ${what}`).toBe('Bad Gateway');
    expect(first.complete, what).toBe(true);
    // The client connection stays usable after a 502: the next pipelined request is answered too.
    if (outcome === '502') expect(f.length, `every pipelined request answered: ${what}`).toBe(requests);
    return;
  }
  expect(outcome, `expected 502 Bad Gateway: ${what}`).not.toBe('502');
  expect(first.status, what).toBe(200);
  switch (outcome) {
    case 'declared-or-502':
      // Exactly the declared bytes, then the connection closed: nothing more can be read as a response.
      expect(first.body.toString('latin1'), what).toBe('hello');
      expect(first.complete, what).toBe(true);
      expect(ex.parsed.rest.length, what).toBe(0);
      if (requests > 1 && !ex.closed) {
        // Kept open: only when the front framed the body itself and dropped the excess before
        // it (the HTTP transport does), so each request got its own whole answer.
        expect(f.map((r) => `${r.status} ${r.body.toString('latin1')} ${r.complete}`), `the connection stayed open: ${what}`)
          .toEqual(Array.from({ length: requests }, () => '200 hello true'));
      } else if (requests > 1) {
        expect(f.length, what).toBe(1);
      }
      return;
    case 'cut-or-502':
      // Fewer bytes than declared: the client must see the cut at once (a close), not wait.
      expect(first.complete, what).toBe(false);
      expect(ex.closed, `the connection must close when the backend ended short: ${what}`).toBe(true);
      expect(ex.ms, what).toBeLessThan(3000);
      return;
    case 'ok-or-502':
      expect(first.body.toString('latin1'), what).toBe('ok');
      expect(first.complete, what).toBe(true);
      return;
  }
}

/** One request alone, then two pipelined on one connection; the log and the front's state after. */
async function assault(c: RunningCli, outcome: Outcome): Promise<void> {
  const hp = c.base.replace('http://', '');
  const one = await rawExchange(hp, get('/first'), { finalResponses: 1, timeoutMs: 5000 });
  expectOutcome(one, outcome, 1);
  const two = await rawExchange(hp, get('/p1') + get('/p2'), { finalResponses: 2, timeoutMs: 5000 });
  expectOutcome(two, outcome, 2);

  // One error line for the first request, naming the backend.
  if (!(outcome === 'ok-or-502' && finals(one.parsed)[0].status === 200)) {
    const line = await waitForCliLine(c, (l) => l.level >= 50 && l.msg.includes('/first'), 'at error level about GET /first', 3000);
    expect(line.backend).toBe('b0');
    expect(cliLines(c).filter((l) => l.level >= 50 && l.msg.includes('/first')).map((l) => l.msg), 'one error line per bad response').toHaveLength(1);
  }
  expect(alive(c), `the front exited:\n${c.stderr().slice(-1500)}`).toBe(true);
  await waitUntil(async () => (await cliBusy(c)) === 0, 'no request is left in flight or queued', 5000);
}

/** A graceful stop finds no response still open (each client connection is done with). */
async function expectCleanStop(c: RunningCli): Promise<void> {
  await c.stop();
  const graceOver = cliLines(c).find((l) => /shutdown grace .* is over/.test(l.msg));
  expect(graceOver, 'the graceful stop waited out --shutdown-grace: a response never closed').toBeUndefined();
  expect(cliLines(c).some((l) => l.msg === 'stopped')).toBe(true);
}

/** The front with one backend running `command`; a short grace so a stuck stop shows in seconds. */
function front(args: string[], command: string[]): Promise<RunningCli> {
  return spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '1', '--shutdown-grace', '4000', ...args, '--', ...command]);
}

describe('a FastCGI backend whose response head contradicts its body (fault-backend.mjs)', () => {
  const cases: Array<[string, Outcome, string]> = [
    ['cl-long', 'declared-or-502', 'a body longer than its Content-Length, hiding a whole HTTP response'],
    ['cl-short', 'cut-or-502', 'a body shorter than its Content-Length, then END_REQUEST'],
    ['cl-two', '502', 'two different Content-Lengths'],
    ['cl-bad', '502', 'a Content-Length that is not a number'],
    ['status-1xx', '502', 'Status: 100 as its only head'],
    ['bad-header-char', '502', 'a NUL in a header value'],
  ];
  for (const [mode, outcome, what] of cases) {
    it(`${mode}: ${what} → ${outcome}; nothing smuggled to a pipelining client; one error line; the front lives on`, async () => {
      cli = await front([], [process.execPath, FAULT, mode]);
      await assault(cli, outcome);
      await expectCleanStop(cli);
    }, 30_000);
  }
});

describe('an HTTP backend writing crafted responses (hostile-http-backend.mjs, --protocol http)', () => {
  const cases: Array<[string, Outcome, string]> = [
    ['cl-long', 'declared-or-502', 'a body longer than its Content-Length, hiding a whole HTTP response, connection kept open'],
    ['cl-short', 'cut-or-502', 'a body shorter than its Content-Length, then a close'],
    ['cl-two', '502', 'two different Content-Lengths'],
    ['cl-bad', '502', 'a Content-Length that is not a number'],
    ['1xx-only', '502', '"HTTP/1.1 102 Processing" as its only response, then a close'],
    ['bare-lf', 'ok-or-502', 'a header line ended by a bare LF'],
    ['nul-header', '502', 'a NUL in a header value'],
  ];
  for (const [mode, outcome, what] of cases) {
    it(`${mode}: ${what} → ${outcome}; the next requests on the backend get their own answers`, async () => {
      // One slot: every request goes over the one kept connection the hostile response was on.
      cli = await front(['--protocol', 'http', '--max-requests-per-backend', '1'], [process.execPath, HOSTILE_HTTP, mode]);
      await assault(cli, outcome);
      // Whatever the backend left on its connection is not the answer to anyone's next request.
      const hp = cli.base.replace('http://', '');
      for (let i = 0; i < 5; i++) {
        const ok = await rawExchange(hp, get('/m/ok', 'Connection: close\r\n'), { timeoutMs: 5000 });
        const f = finals(ok.parsed);
        expect(f.map((r) => `${r.status} ${r.body.toString('latin1')}`), `request ${i} after ${mode}: ${describeExchange(ok)}`).toEqual(['200 ok']);
      }
      await expectCleanStop(cli);
    }, 30_000);
  }
});

describe('a 1xx from a real app is never the final response (item 8)', () => {
  it('hello.py answering Status: 100 / 102 (FastCGI) → 502 Bad Gateway; the front keeps serving', async () => {
    cli = await front([], ['python3', PY_HELLO]);
    const hp = cli.base.replace('http://', '');
    for (const code of [100, 102]) {
      const ex = await rawExchange(hp, get(`/status/${code}`), { finalResponses: 1, timeoutMs: 5000 });
      expect(ex.parsed.error, describeExchange(ex)).toBeNull();
      expect(ex.parsed.responses.map((r) => `${r.status} ${r.reason}`), describeExchange(ex)).toEqual(['502 Bad Gateway']);
      await waitForCliLine(cli, (l) => l.level >= 50 && l.msg.includes(`/status/${code}`), `about /status/${code}`);
    }
    const ok = await rawExchange(hp, get('/Hello/1', 'Connection: close\r\n'), { timeoutMs: 5000 });
    expect(finals(ok.parsed).map((r) => r.status)).toEqual([200]);
    await expectCleanStop(cli);
  }, 30_000);
});

describe('a response head in many tiny records (fault-backend.mjs tiny-records)', () => {
  it('a 600,000-byte head sent one byte per STDOUT record is answered whole, in linear time (once quadratic: about a minute of a blocked front)', async () => {
    cli = await front([], [process.execPath, FAULT, 'tiny-records']);
    const hp = cli.base.replace('http://', '');
    const ex = await rawExchange(hp, get('/m/any', 'Connection: close\r\n'), { finalResponses: 1, timeoutMs: 20_000 });
    expect(ex.parsed.error, describeExchange(ex)).toBeNull();
    const [r] = finals(ex.parsed);
    expect(r?.status, describeExchange(ex)).toBe(200);
    expect(header(r, 'x-pad')?.length).toBe(600_000);
    expect(r.body.toString('latin1')).toBe('ok');
    await expectCleanStop(cli);
  }, 30_000);
});
