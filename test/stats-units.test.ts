// The pure parts of the figures: window percentiles follow HDR's rule, Prometheus
// buckets from HDR counts, the causes of front-generated responses, php-fpm's
// page formats, the exposition's conventions, and `upfront top`'s highlighting.
import { describe, expect, it } from 'vitest';
import { FRONT_RESPONSE_CAUSES, FrontResponses } from '../src/stats/frontResponses.js';
import { createHistogram, HistogramWindow, percentilesMs, secondsHistogram, SECONDS_BUCKETS } from '../src/stats/histogram.js';
import { InService } from '../src/stats/inService.js';
import { fpmTime, phpFpmStatus, PROCESS_FIELDS } from '../src/stats/phpFpmStatus.js';
import { KNOWN_CONNECT_ERRNOS, KNOWN_FAILURE_KINDS, renderPrometheus } from '../src/stats/prometheus.js';
import type { BackendStats, Stats } from '../src/stats/snapshot.js';
import { renderTop, topLines } from '../src/admin/top.js';

/** A deterministic pseudo-random sequence (values in µs). */
function* values(n: number, seed = 7): Generator<number> {
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    yield 50 + (x % 2_000_000) * (i % 7 === 0 ? 5 : 1);
  }
}

describe('HistogramWindow', () => {
  it('a window covering every tick gives the lifetime percentiles exactly', () => {
    const h = createHistogram();
    const w = new HistogramWindow(h, 60);
    let ticks = 0;
    const all = [...values(5000)];
    for (let i = 0; i < all.length; i++) {
      h.recordValue(all[i]);
      if (i % 600 === 599) { w.tick(); ticks++; }
    }
    w.tick(); ticks++;
    const ps = [0.5, 50, 90, 99, 99.9, 100];
    expect(w.percentilesMs(ticks, ps)).toEqual(percentilesMs(h, ps));
    expect(w.count(ticks)).toBe(5000);
  });

  it('a shorter window holds only what its ticks recorded, and forgets beyond its depth', () => {
    const h = createHistogram();
    const w = new HistogramWindow(h, 3);
    h.recordValue(1_000_000); // 1 s, in the first tick only
    w.tick();
    for (let t = 0; t < 3; t++) {
      for (let i = 0; i < 100; i++) h.recordValue(2000); // 2 ms
      w.tick();
    }
    expect(w.count(3)).toBe(300);
    expect(w.percentilesMs(3, [100]).p100).toBeCloseTo(2, 1);
    expect(w.percentilesMs(60, [100]).p100).toBeCloseTo(2, 1); // the 1 s value left the 3-tick ring
    expect(percentilesMs(h, [100]).p100).toBeGreaterThan(990);
    w.tick(); // nothing new
    expect(w.count(1)).toBe(0);
    expect(w.percentilesMs(1, [99])).toEqual({ p99: 0 });
  });
});

describe('secondsHistogram', () => {
  it('cumulative buckets in increasing order, +Inf = count, sum within HDR precision', () => {
    const h = createHistogram();
    let sum = 0;
    for (const v of values(3000)) { h.recordValue(v); sum += v; }
    const s = secondsHistogram(h);
    expect(s.buckets.map(([le]) => le)).toEqual([...SECONDS_BUCKETS.map(String), '+Inf']);
    for (let i = 1; i < s.buckets.length; i++) expect(s.buckets[i][1]).toBeGreaterThanOrEqual(s.buckets[i - 1][1]);
    expect(s.count).toBe(3000);
    expect(s.buckets.at(-1)![1]).toBe(3000);
    expect(Math.abs(s.sum - sum / 1e6) / (sum / 1e6)).toBeLessThan(0.01);
    // the bucket edges: values well inside a bucket land in it
    const g = createHistogram();
    g.recordValue(400); g.recordValue(800); g.recordValue(3_000_000);
    const b = Object.fromEntries(secondsHistogram(g).buckets);
    expect(b['0.0005']).toBe(1);
    expect(b['0.001']).toBe(2);
    expect(b['2.5']).toBe(2);
    expect(b['5']).toBe(3);
  });
});

describe('FrontResponses', () => {
  it('maps pool refusals and request refusals to their causes', () => {
    const f = new FrontResponses();
    for (const r of ['full', 'full', 'timeout', 'shed', 'no-backend', 'shutdown']) f.refused(r);
    for (const s of [413, 408, 404, 400, 414, 431, 505, 500]) f.rejected(s);
    f.backendFailed();
    expect(f.counts).toEqual({
      'queue-full': 2, 'queue-timeout': 1, shed: 1, 'no-backend': 1, shutdown: 1, 'backend-failed': 1,
      'body-too-large': 1, 'client-timeout': 1, 'not-found': 1, 'bad-request': 4, 'internal-error': 1,
    });
    expect(Object.keys(f.counts)).toEqual([...FRONT_RESPONSE_CAUSES]);
  });
});

describe('InService', () => {
  it('shows the oldest request in service, then the last one finished', () => {
    const s = new InService();
    const backend = {};
    const a = { head: { method: 'GET', target: '/a?x=1' }, bodyLength: 0 };
    const b = { head: { method: 'POST', target: '/b' }, bodyLength: 12 };
    expect(s.current(backend)).toBeNull();
    s.begin(backend, a, 100);
    s.begin(backend, b, 150);
    expect(s.current(backend, 400)).toEqual({ method: 'GET', uri: '/a?x=1', contentLength: 0, durationMs: 300 });
    s.end(backend, a);
    expect(s.current(backend, 400)).toEqual({ method: 'POST', uri: '/b', contentLength: 12, durationMs: 250 });
    expect(s.last(backend)?.method).toBe('GET');
    s.end(backend, b);
    expect(s.current(backend)).toBeNull();
    expect(s.count(backend)).toBe(0);
    expect(s.last(backend)?.uri).toBe('/b');
  });
});

/** A snapshot as statsSnapshot() gives it (two backends, one busy with a pipelined request). */
function stats(over: { queue?: number; acceptQueue?: number } = {}): Stats {
  const hist = secondsHistogram(createHistogram());
  const backend = (id: string, pid: number, busy: boolean): BackendStats => ({
    id, address: `unix:/tmp/x/${id}.sock`, pid, state: busy ? 'busy' : 'ready', slots: 1, slotsClaimed: 1, slotsLearned: null,
    inflight: busy ? 2 : 0, pipelined: busy ? 1 : 0, maxInflight: 2, requests: busy ? 120 : 80,
    responses: { '1xx': 0, '2xx': busy ? 110 : 80, '3xx': 0, '4xx': 0, '5xx': busy ? 8 : 0 }, connectErrors: busy ? { EAGAIN: 3, EPIPE: 1 } : {},
    failures: busy ? { closed: 2 } : {}, retried: 1, acceptQueue: { current: busy ? (over.acceptQueue ?? 0) : 0, max: 5, backlog: 4 }, restarts: 0,
    multithreaded: false, multiplexed: false, switchesFrom: 'GET_VALUES', pipelineDepth: 2, connectionsOpened: 1, slowRequests: busy ? 1 : 0,
    latencyMs: { p50: 1, p90: 2, p99: 3 }, latencySeconds: hist,
    process: { pid, rssBytes: 20 << 20, cpuSeconds: 1.5, cpuPercent: 12.5, startTime: 1_700_000_000, uptimeSec: 60 },
    current: busy ? { method: 'GET', uri: '/slow?a=<b>', contentLength: 0, durationMs: 1234.5 } : null,
    last: busy ? null : { method: 'HEAD', uri: '/last', contentLength: 0, durationMs: 2 },
    rates: null, down: null,
  });
  return {
    uptimeSec: 60, startTime: 1_700_000_000, sampledAt: 1_700_000_060_000, acceptedConn: 42,
    listenQueue: { current: (over.queue ?? 0) + (over.acceptQueue ?? 0), max: 9, len: 1032, frontQueue: over.queue ?? 0, acceptQueues: over.acceptQueue ?? 0 },
    frontResponses: { ...Object.fromEntries(FRONT_RESPONSE_CAUSES.map((c) => [c, 0])), 'queue-full': 5 } as Stats['frontResponses'],
    rates: null, processManager: 'static', front: { pid: 1, rssBytes: 80 << 20, cpuSeconds: 3, cpuPercent: 40, startTime: 1_699_999_999, uptimeSec: 61 },
    children: [{ id: 'b0', pid: 101, backend: 'b0', state: 'ready', restarts: 0 }, { id: 'b1', pid: 102, backend: 'b1', state: 'ready', restarts: 0 }], processes: { recycles: 0, reloads: 0, scaleChanges: 0 },
    pools: [{
      name: 'app', policy: 'least-conn', overflow: 'queue',
      queue: { current: over.queue ?? 0, max: 7, size: 8, timeouts: 0, full: 5, waitMs: { p50: 1, p99: 2 }, waitSeconds: hist },
      slotsExhausted: 11, activeBackends: 1, maxActiveBackends: 2, rates: null,
      backends: [backend('b0', 101, true), backend('b1', 102, false)],
    }],
  };
}

describe('phpFpmStatus', () => {
  const now = 1_700_000_060;
  it('text: php-fpm\'s names, padding and order; ?full adds a block per process', () => {
    const text = phpFpmStatus(stats({ queue: 3 }), 'text', true, now);
    const lines = text.split('\n');
    expect(lines.slice(0, 14)).toEqual([
      'pool:                 app', 'process manager:      static', `start time:           ${fpmTime(1_700_000_000)}`, 'start since:          60',
      'accepted conn:        42', 'listen queue:         3', 'max listen queue:     9', 'listen queue len:     1032', 'idle processes:       1',
      'active processes:     1', 'total processes:      2', 'max active processes: 2', 'max children reached: 11', 'slow requests:        1',
    ]);
    expect(text).toContain('\n************************\npid:                  101\nstate:                Running\n');
    expect(text).toMatch(/^request URI:          \/slow\?a=<b>$/m);
    expect(text).toMatch(/^request duration:     1234500$/m);
    expect(text).toMatch(/^last request cpu:     12\.50$/m);
    expect(text).toMatch(/^state:                Idle\nstart time:[^\n]+\nstart since:          60\nrequests:             80\nrequest duration:     2000\nrequest method:       HEAD$/m);
    expect(fpmTime(0)).toMatch(/^\d\d\/[A-Z][a-z]{2}\/19(69|70):\d\d:\d\d:\d\d [+-]\d{4}$/);
  });

  it('json, xml, html and openmetrics carry the same figures', () => {
    const s = stats({ queue: 3 });
    const json = JSON.parse(phpFpmStatus(s, 'json', true, now));
    expect(json).toMatchObject({ pool: 'app', 'listen queue': 3, 'start time': 1_700_000_000, 'slow requests': 1 });
    expect(json.processes).toHaveLength(2);
    expect(Object.keys(json.processes[0])).toEqual([...PROCESS_FIELDS]);
    expect(JSON.parse(phpFpmStatus(s, 'json', false, now)).processes).toBeUndefined();
    const xml = phpFpmStatus(s, 'xml', true, now);
    expect(xml).toMatch(/^<\?xml version="1\.0" \?>\n<status>\n<pool>app<\/pool>\n<process-manager>static<\/process-manager>\n/);
    expect(xml).toContain('<listen-queue>3</listen-queue>');
    expect(xml).toContain('<request-uri>/slow?a=&lt;b&gt;</request-uri>');
    expect(xml).toMatch(/<\/processes>\n<\/status>$/);
    const html = phpFpmStatus(s, 'html', true, now);
    expect(html).toContain('<tr><th>listen queue</th><td>3</td></tr>');
    expect(html).toContain('<td>/slow?a=&lt;b&gt;</td>');
    expect(html).not.toContain('<b>');
    const om = phpFpmStatus(s, 'openmetrics', true, now);
    expect(om).toMatch(/^# HELP phpfpm_up Could pool app using a static PM on PHP-FPM be reached\?\n# TYPE phpfpm_up gauge\nphpfpm_up 1\n/);
    expect(om).toContain('\nphpfpm_listen_queue 3\n');
    expect(om).toContain('\nphpfpm_max_children_reached 11\n');
    expect(om.endsWith('# EOF\n')).toBe(true);
    expect(om).not.toContain('101'); // php-fpm's openmetrics has no per-process lines, even with ?full
  });
});

describe('renderPrometheus', () => {
  const text = renderPrometheus(stats());
  const lines = text.trimEnd().split('\n');
  it('one HELP and TYPE per family, before its samples; counters end in _total', () => {
    const types = new Map<string, string>();
    let family = '';
    for (const l of lines) {
      const t = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(l);
      if (t) { expect(types.has(t[1]), t[1]).toBe(false); types.set(t[1], t[2]); family = t[1]; continue; }
      if (l.startsWith('# HELP ')) continue;
      const name = /^([a-z_:][a-z0-9_:]*)[{ ]/.exec(l)![1];
      expect(name === family || name.startsWith(`${family}_`), `${name} under ${family}`).toBe(true);
    }
    for (const [name, type] of types) if (type === 'counter') expect(name).toMatch(/_total$/);
    for (const [name, type] of types) if (type === 'histogram') expect(name).toMatch(/_seconds$/);
  });

  it('every cause, known errno and failure kind is there at 0 until it happens', () => {
    for (const c of FRONT_RESPONSE_CAUSES) expect(text).toMatch(new RegExp(`^upfront_front_responses_total\\{cause="${c}",code="\\d{3}"\\} \\d+$`, 'm'));
    for (const b of ['b0', 'b1']) {
      for (const e of KNOWN_CONNECT_ERRNOS) expect(text).toMatch(new RegExp(`^upfront_backend_connect_errors_total\\{pool="app",backend="${b}",errno="${e}"\\} \\d+$`, 'm'));
      for (const k of KNOWN_FAILURE_KINDS) expect(text).toMatch(new RegExp(`^upfront_backend_failures_total\\{pool="app",backend="${b}",kind="${k}"\\} \\d+$`, 'm'));
    }
    expect(text).toMatch(/^upfront_backend_connect_errors_total\{pool="app",backend="b0",errno="EPIPE"\} 1$/m); // one not in the list still shows
    expect(text).toMatch(/^upfront_backend_connect_errors_total\{pool="app",backend="b1",errno="EAGAIN"\} 0$/m);
  });

  it('histograms: _bucket in increasing le ending in +Inf, then _sum and _count', () => {
    const b = lines.filter((l) => l.startsWith('upfront_queue_wait_seconds'));
    expect(b.map((l) => /le="([^"]+)"/.exec(l)?.[1] ?? l.split(/[{ ]/)[0])).toEqual([...SECONDS_BUCKETS.map(String), '+Inf', 'upfront_queue_wait_seconds_sum', 'upfront_queue_wait_seconds_count']);
  });
});

describe('upfront top', () => {
  const view = { width: 200, height: 50, color: true, admin: '127.0.0.1:8081', now: new Date(0) };
  it('rates are differences between two snapshots over the time between them', () => {
    const prev = stats();
    const cur = stats();
    cur.pools[0].backends[0].requests += 50;
    cur.pools[0].backends[0].responses['5xx'] += 4;
    cur.frontResponses['queue-full'] += 10;
    const lines = topLines(cur, prev, 2, view).map((l) => l.text);
    expect(lines.find((l) => l.startsWith('POOL app'))).toMatch(/ 25\.0 req\/s  5xx 2\.00\/s$/);
    expect(lines.find((l) => l.startsWith('front-generated'))).toBe('front-generated 5.00/s: queue-full 5.00/s (15)');
    expect(lines.find((l) => l.startsWith('b0 '))).toMatch(/^b0\s+101\s+busy\s+2\/1 \+1p\s+0\/4\s+5\s+25\.0\s+170\s/);
    expect(topLines(cur, null, 0, view).find((l) => l.text.startsWith('b0 '))!.text).toMatch(/busy\s+2\/1 \+1p\s+0\/4\s+5\s+0\.00\s/);
  });

  it('highlights the pool line while its queue is not empty, a backend while its accept queue holds 80 % of its backlog', () => {
    const calm = topLines(stats(), null, 1, view);
    expect(calm.filter((l) => l.hot)).toEqual([]);
    const queued = topLines(stats({ queue: 2 }), null, 1, view);
    expect(queued.find((l) => l.text.startsWith('POOL'))!.hot).toBe(true);
    expect(queued.find((l) => l.text.startsWith('b0 '))!.hot).toBe(false);
    const almost = topLines(stats({ acceptQueue: 3 }), null, 1, view); // 3 of 4: 75 %
    expect(almost.find((l) => l.text.startsWith('b0 '))!.hot).toBe(false);
    const full = topLines(stats({ acceptQueue: 4 }), null, 1, view); // 4 of 4
    expect(full.find((l) => l.text.startsWith('b0 '))!.hot).toBe(true);
    expect(full.find((l) => l.text.startsWith('b1 '))!.hot).toBe(false);
    expect(full.find((l) => l.text.startsWith('POOL'))!.hot).toBe(false);
    // in colour: black on yellow, padded to the width; without: a leading "!"
    expect(renderTop(stats({ acceptQueue: 4 }), null, 1, view)).toMatch(/\x1b\[30;43mb0 .*\x1b\[0m/);
    expect(renderTop(stats({ acceptQueue: 4 }), null, 1, { ...view, color: false })).toMatch(/^!b0 /m);
    // cut to the terminal's width and height
    const small = renderTop(stats(), null, 1, { ...view, color: false, width: 30, height: 4 }).split('\n');
    expect(small).toHaveLength(4);
    expect(Math.max(...small.map((l) => l.length))).toBeLessThanOrEqual(30);
  });
});

describe('the histograms\' fast index', () => {
  it('finds the same counts index as hdr-histogram-js for every value it is given', async () => {
    const hdr = await import('hdr-histogram-js');
    const { createHistogram } = await import('../src/stats/histogram.js');
    const reference = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2, bitBucketSize: 32, autoResize: true }) as any;
    const fast = createHistogram() as any;
    const values = [0, 0.3, 1, 1.5, 2, 127, 128, 255, 256, 1000, 12345.6, 2 ** 20, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 3.5e9];
    let seed = 7;
    for (let i = 0; i < 50_000; i++) { seed = (seed * 1103515245 + 12345) & 0x7fffffff; values.push((seed / 0x7fffffff) * 10 ** ((seed % 1000) / 100)); }
    const differ = values.filter((v) => reference.countsArrayIndex(v) !== fast.countsArrayIndex(v));
    expect(differ).toEqual([]);
  });
});
