// Every request counted: the failures each load tool reports, parsed from its own
// output (canned from real runs of wrk 4.1.0 and siege 4.0.7 here) and from
// autocannon's result object. Pure functions, no processes.
import { describe, expect, it } from 'vitest';
import { fromAutocannon, LoadError, parseSiegeOutput, parseWrkOutput, siegerc } from '../src/bench/load.js';

// wrk -t2 -c200 -d2s --timeout 1s --latency, against nginx over spawn-fcgi -b 4 (the 502s of 2011).
const WRK_502 = `Running 2s test @ http://127.0.0.1:45677/Hello/100
  2 threads and 200 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    49.72ms  109.96ms 693.58ms   90.76%
    Req/Sec     6.80k     2.87k   15.53k    74.29%
  Latency Distribution
     50%   13.38ms
     75%   23.68ms
     90%  128.54ms
     99%  533.87ms
  24386 requests in 2.04s, 16.43MB read
  Non-2xx or 3xx responses: 21021
Requests/sec:  11937.15
Transfer/sec:      8.04MB
`;

// The same shape with wrk's socket error line (as wrk.c prints it) and a latency in seconds.
const WRK_SOCKET_ERRORS = `Running 20s test @ http://127.0.0.1:8080/Hello/100
  2 threads and 200 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    93.17ms  201.52ms   1.99s    94.12%
    Req/Sec     2.41k   611.20     3.90k    70.25%
  Latency Distribution
     50%   40.12ms
     75%   61.03ms
     90%  150.77ms
     99%    1.21s
  96012 requests in 20.01s, 280.31MB read
  Socket errors: connect 3, read 41, write 2, timeout 187
Requests/sec:   4798.20
Transfer/sec:     14.01MB
`;

const WRK_CLEAN = `Running 2s test @ http://127.0.0.1:40125/Hello/100
  2 threads and 20 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.49ms  812.34us  11.02ms   80.10%
    Req/Sec     2.87k   140.11     3.10k    65.00%
  Latency Distribution
     50%    3.31ms
     75%    3.80ms
     90%    4.51ms
     99%    6.70ms
  11437 requests in 2.00s, 34.60MB read
Requests/sec:   5716.32
Transfer/sec:     17.30MB
`;

// siege -b -c 100 -t 2S against the same overloaded nginx: it gave up early.
const SIEGE_ABORTED = `** SIEGE 4.0.7
** Preparing 100 concurrent users for battle.
The server is now under siege...siege aborted due to excessive socket failure; you
can change the failure threshold in $HOME/.siegerc

Transactions:\t\t         601 hits
Availability:\t\t       35.50 %
Elapsed time:\t\t        0.53 secs
Data transferred:\t        1.88 MB
Response time:\t\t        0.08 secs
Transaction rate:\t     1133.96 trans/sec
Throughput:\t\t        3.55 MB/sec
Concurrency:\t\t       91.21
Successful transactions:         601
Failed transactions:\t        1092
Longest transaction:\t        0.18
Shortest transaction:\t        0.00
 
`;

// siege -b -c 200 -t 2S against lighttpd, a run that ended normally (edited: one of its transactions a 404).
const SIEGE_CLEAN = `** SIEGE 4.0.7
** Preparing 200 concurrent users for battle.
The server is now under siege...
Lifting the server siege...
Transactions:\t\t        8441 hits
Availability:\t\t      100.00 %
Elapsed time:\t\t        1.94 secs
Data transferred:\t       26.02 MB
Response time:\t\t        0.04 secs
Transaction rate:\t     4351.03 trans/sec
Throughput:\t\t       13.41 MB/sec
Concurrency:\t\t      190.08
Successful transactions:        8440
Failed transactions:\t           0
Longest transaction:\t        0.31
Shortest transaction:\t        0.00
 
`;

describe('parseWrkOutput', () => {
  it('counts non-2xx responses as failures next to the rate', () => {
    const r = parseWrkOutput(WRK_502, 2);
    expect(r).toMatchObject({ requests: 24386, durationSec: 2.04, rps: 11937.15 });
    expect(r.failures).toEqual({ connect: 0, read: 0, write: 0, timeout: 0, non2xx: 21021, other: 0, total: 21021 });
    expect(r.latencyMs).toEqual({ p50: 13.38, p90: 128.54, p99: 533.87, max: 693.58 });
  });

  it('splits socket errors by kind: connect, read, write, timeout', () => {
    const r = parseWrkOutput(WRK_SOCKET_ERRORS, 20);
    expect(r.failures).toEqual({ connect: 3, read: 41, write: 2, timeout: 187, non2xx: 0, other: 0, total: 233 });
    expect(r.latencyMs.p99).toBe(1210);
    expect(r.latencyMs.max).toBe(1990);
    expect(r.requests).toBe(96012);
  });

  it('has zero failures when wrk reports none, and µs latencies in ms', () => {
    const r = parseWrkOutput(WRK_CLEAN, 2);
    expect(r.failures.total).toBe(0);
    expect(r.latencyMs.p50).toBe(3.31);
    expect(r.rps).toBe(5716.32);
  });

  it('refuses output without a summary, naming what wrk said', () => {
    expect(() => parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused\n', 2)).toThrow(LoadError);
    expect(() => parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused\n', 2)).toThrow(/Connection refused/);
  });
});

describe('parseSiegeOutput', () => {
  it('reads the transaction rate, failed transactions, and says when siege aborted', () => {
    const r = parseSiegeOutput(SIEGE_ABORTED);
    expect(r).toMatchObject({ requests: 601, durationSec: 0.53, rps: 1133.96 });
    expect(r.failures).toEqual({ connect: 0, read: 0, write: 0, timeout: 0, non2xx: 0, other: 1092, total: 1092 });
    expect(r.notes.join()).toMatch(/siege aborted after 0\.53 s/);
  });

  it('has no percentiles (null, not 0), the longest transaction as max, 4xx as non-2xx', () => {
    const r = parseSiegeOutput(SIEGE_CLEAN);
    expect(r.latencyMs).toEqual({ p50: null, p90: null, p99: null, max: 310 });
    expect(r.failures).toMatchObject({ non2xx: 1, other: 0, total: 1 });
    expect(r.notes).toEqual([]);
  });

  it('refuses output without a summary (the run that hung and was killed)', () => {
    expect(() => parseSiegeOutput('** SIEGE 4.0.7\n** Preparing 50 concurrent users for battle.\nThe server is now under siege...\nLifting the server siege...')).toThrow(/siege printed no summary: Lifting the server siege/);
  });

  it('runs with stock settings written out, whatever ~/.siege says', () => {
    const rc = siegerc(300);
    expect(rc).toMatch(/^connection = close$/m);
    expect(rc).toMatch(/^limit = 300$/m);
    expect(rc).toMatch(/^verbose = false$/m);
    expect(siegerc(10)).toMatch(/^limit = 255$/m);
  });
});

describe('fromAutocannon', () => {
  it('counts timeouts once, other socket errors as "other", non-2xx', () => {
    const r = fromAutocannon({ requests: { total: 1000 }, duration: 2, latency: { p50: 1, p90: 2, p99: 3, max: 4 }, non2xx: 5, errors: 7, timeouts: 3 });
    expect(r.failures).toEqual({ connect: 0, read: 0, write: 0, timeout: 3, non2xx: 5, other: 4, total: 12 });
    expect(r.rps).toBe(500);
  });
});
