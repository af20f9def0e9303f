// Every figure in /stats, /metrics and /status agrees, read under load: wrk drives
// a real front (dist/cli.js, two Python backends, a queue of 8) until the queue is
// full and requests are refused; then the backends and wrk are stopped (SIGSTOP)
// with that load in flight — requests on the wire, the queue full — so that the
// three endpoints can be read at one moment. Each figure of /metrics and of every
// php-fpm format is checked against /stats, and /metrics has nothing /stats lacks.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { CAUSE_STATUS, FRONT_RESPONSE_CAUSES } from '../src/stats/frontResponses.js';
import { fpmTime, PROCESS_FIELDS } from '../src/stats/phpFpmStatus.js';
import { KNOWN_CONNECT_ERRNOS, KNOWN_FAILURE_KINDS } from '../src/stats/prometheus.js';
import type { Stats } from '../src/stats/snapshot.js';
import { PY_HELLO, peer, request, spawnCli, waitUntil, type RunningCli } from './helpers.js';

const WRK = peer('wrk');

type Sample = { name: string; labels: Record<string, string>; value: number };

function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[\d.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const key = (name: string, labels: Record<string, string | number>) =>
  `${name}{${Object.entries(labels).map(([k, v]) => `${k}=${v}`).sort().join(',')}}`;

/** What /metrics must hold, derived from a /stats document: name{labels} → value. */
function expectedMetrics(s: Stats): Map<string, number> {
  const m = new Map<string, number>();
  const put = (name: string, labels: Record<string, string | number>, v: number) => m.set(key(name, labels), v);
  put('upfront_start_time_seconds', {}, s.startTime);
  put('upfront_uptime_seconds', {}, s.uptimeSec);
  put('upfront_accepted_connections_total', {}, s.acceptedConn);
  put('upfront_listen_queue', {}, s.listenQueue.current);
  put('upfront_listen_queue_max', {}, s.listenQueue.max);
  put('upfront_listen_queue_length', {}, s.listenQueue.len);
  for (const c of FRONT_RESPONSE_CAUSES) put('upfront_front_responses_total', { cause: c, code: CAUSE_STATUS[c] }, s.frontResponses[c]);
  put('upfront_process_recycles_total', {}, s.processes.recycles);
  put('upfront_process_reloads_total', {}, s.processes.reloads);
  put('upfront_process_scale_changes_total', {}, s.processes.scaleChanges);
  put('process_cpu_seconds_total', {}, s.front!.cpuSeconds);
  put('process_resident_memory_bytes', {}, s.front!.rssBytes);
  put('process_start_time_seconds', {}, s.front!.startTime);
  const histogram = (name: string, labels: Record<string, string>, h: { buckets: Array<[string, number]>; sum: number; count: number }) => {
    for (const [le, n] of h.buckets) put(`${name}_bucket`, { ...labels, le }, n);
    put(`${name}_sum`, labels, h.sum);
    put(`${name}_count`, labels, h.count);
  };
  for (const p of s.pools) {
    const pl = { pool: p.name };
    put('upfront_queue_requests', pl, p.queue.current);
    put('upfront_queue_requests_max', pl, p.queue.max);
    put('upfront_queue_size', pl, p.queue.size);
    put('upfront_queue_timeouts_total', pl, p.queue.timeouts);
    put('upfront_queue_full_total', pl, p.queue.full);
    histogram('upfront_queue_wait_seconds', pl, p.queue.waitSeconds);
    put('upfront_slots_exhausted_total', pl, p.slotsExhausted);
    put('upfront_active_backends', pl, p.activeBackends);
    put('upfront_active_backends_max', pl, p.maxActiveBackends);
    for (const b of p.backends) {
      const bl = { pool: p.name, backend: b.id };
      put('upfront_backend_up', bl, b.state === 'ready' || b.state === 'busy' ? 1 : 0);
      put('upfront_backend_slots', bl, b.slots);
      put('upfront_backend_slots_claimed', bl, b.slotsClaimed);
      if (b.slotsLearned !== null) put('upfront_backend_slots_learned', bl, b.slotsLearned);
      put('upfront_backend_inflight', bl, b.inflight);
      put('upfront_backend_pipelined', bl, b.pipelined);
      put('upfront_backend_inflight_max', bl, b.maxInflight);
      put('upfront_backend_requests_total', bl, b.requests);
      for (const [code, v] of Object.entries(b.responses)) put('upfront_backend_responses_total', { ...bl, code }, v);
      for (const e of new Set([...KNOWN_CONNECT_ERRNOS, ...Object.keys(b.connectErrors)])) put('upfront_backend_connect_errors_total', { ...bl, errno: e }, b.connectErrors[e] ?? 0);
      for (const k of new Set([...KNOWN_FAILURE_KINDS, ...Object.keys(b.failures)])) put('upfront_backend_failures_total', { ...bl, kind: k }, b.failures[k] ?? 0);
      put('upfront_backend_retries_total', bl, b.retried);
      put('upfront_backend_restarts_total', bl, b.restarts);
      put('upfront_backend_slow_requests_total', bl, b.slowRequests);
      put('upfront_backend_connections_opened_total', bl, b.connectionsOpened);
      put('upfront_backend_accept_queue', bl, b.acceptQueue!.current);
      put('upfront_backend_accept_queue_max', bl, b.acceptQueue!.max);
      put('upfront_backend_accept_queue_backlog', bl, b.acceptQueue!.backlog);
      histogram('upfront_backend_response_seconds', bl, b.latencySeconds);
      put('upfront_backend_process_cpu_seconds_total', bl, b.process!.cpuSeconds);
      put('upfront_backend_process_resident_memory_bytes', bl, b.process!.rssBytes);
      put('upfront_backend_process_start_time_seconds', bl, b.process!.startTime);
    }
  }
  return m;
}

/** php-fpm's text, XML and HTML pages back into name → text (the pool's fields, then one map per process). */
function parseText(text: string): { pool: Record<string, string>; procs: Array<Record<string, string>> } {
  const [head, ...blocks] = text.split('\n************************\n');
  const kv = (t: string) => Object.fromEntries(t.split('\n').filter(Boolean).map((l) => { const i = l.indexOf(':'); return [l.slice(0, i).replace('request URI', 'request uri'), l.slice(i + 1).trim()]; }));
  return { pool: kv(head), procs: blocks.map(kv) };
}

function parseXml(xml: string): { pool: Record<string, string>; procs: Array<Record<string, string>> } {
  const unesc = (v: string) => v.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&');
  const tags = (t: string) => Object.fromEntries([...t.matchAll(/<([a-z-]+)>([^<]*)<\/\1>/g)].map((m) => [m[1].replace(/-/g, ' '), unesc(m[2])]));
  const [head, rest = ''] = xml.split('<processes>');
  return { pool: tags(head), procs: [...rest.matchAll(/<process>(.*?)<\/process>/g)].map((m) => tags(m[1])) };
}

function parseHtml(html: string): { pool: Record<string, string>; procs: Array<Record<string, string>> } {
  const unesc = (v: string) => v.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&');
  const [head, rest = ''] = html.split('<table border="1">');
  const pool = Object.fromEntries([...head.matchAll(/<tr><th>([^<]+)<\/th><td>([^<]*)<\/td><\/tr>/g)].map((m) => [m[1], unesc(m[2])]));
  const rows = [...rest.matchAll(/<tr>(.*?)<\/tr>/g)].map((m) => m[1]);
  const cols = [...rows[0].matchAll(/<th>([^<]+)<\/th>/g)].map((m) => m[1]);
  const procs = rows.slice(1).map((r) => Object.fromEntries([...r.matchAll(/<td>([^<]*)<\/td>/g)].map((m, i) => [cols[i], unesc(m[1])])));
  return { pool, procs };
}

/** A /stats document without what moves while nothing else does: the age of the requests in service. */
function still(s: Stats): unknown {
  return { ...s, pools: s.pools.map((p) => ({ ...p, backends: p.backends.map((b) => ({ ...b, current: b.current && { ...b.current, durationMs: 0 } })) })) };
}

describe('figures that agree', () => {
  let cli: RunningCli | null = null;
  let wrk: ChildProcess | null = null;
  const held: number[] = [];

  afterAll(async () => {
    for (const pid of held) { try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ } }
    if (wrk && wrk.exitCode === null) { wrk.kill('SIGCONT'); wrk.kill('SIGKILL'); }
    await cli?.stop();
  });

  it.skipIf(!WRK)('every figure in /stats, /metrics and /status is the same, under load', async () => {
    cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '-n', '2', '--queue-size', '8', '--queue-timeout', '60000',
      '--slow-request', '50', '--max-body-size', '1k', '--', 'python3', PY_HELLO]);
    const admin = `http://${cli.admin}`;
    const get = async (p: string) => {
      const r = await request(`${admin}${p}`, { agent: false });
      expect(r.status, p).toBe(200);
      return r.body.toString();
    };
    const stats = async () => JSON.parse(await get('/stats')) as Stats;

    // Front-generated responses of two more causes, and two slow requests.
    expect((await request(`${cli.base}/Hello/1`, { method: 'POST', body: Buffer.alloc(2048, 97), headers: { 'Content-Type': 'text/plain' }, agent: false })).status).toBe(413);
    const refused = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(Number(cli!.base.split(':').pop()), '127.0.0.1', () => sock.end('GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n'));
      let got = '';
      sock.on('data', (c) => { got += c; });
      sock.on('close', () => resolve(got));
      sock.on('error', reject);
    });
    expect(refused).toMatch(/^HTTP\/1\.1 400 /);
    await Promise.all([request(`${cli.base}/sleep/80`, { agent: false }), request(`${cli.base}/sleep/80`, { agent: false })]);
    await waitUntil(() => cli!.stdout().split('"slow":true').length === 3, 'the two slow requests are logged');
    const slow = cli.stdout().split('\n').filter((l) => l.includes('"slow":true')).map((l) => JSON.parse(l));
    expect(slow).toHaveLength(2);
    for (const l of slow) {
      expect(l).toMatchObject({ level: 40, method: 'GET', uri: '/sleep/80', backend: expect.stringMatching(/^b[01]$/), connectMs: null });
      expect(l.backendMs).toBeGreaterThanOrEqual(80);
      expect(l.queueMs).toBeGreaterThanOrEqual(0);
      expect(l.msg).toMatch(/^slow request "GET \/sleep\/80" on backend b[01]: [\d.]+ ms \(queue [\d.]+ ms, connect \+ backend [\d.]+ ms\)$/);
    }

    // The load: 64 connections against two single-slot backends (up to 16 pipelined on each) and a queue of 8.
    wrk = spawn(WRK!, ['-t1', '-c64', '-d60s', `${cli.base}/Hello/20`], { stdio: 'ignore' });
    await waitUntil(async () => (await stats()).frontResponses['queue-full'] > 50, 'the queue is full and refuses', 20_000);
    const warned = await (async () => {
      await waitUntil(() => /front queue full/.test(cli!.stdout()), 'the queue-full warning', 5000);
      return JSON.parse(cli!.stdout().split('\n').find((l) => l.includes('front queue full'))!);
    })();
    expect(warned).toMatchObject({ level: 40, cause: 'queue-full', queueSize: 8, status: 503 });
    expect(warned.refused).toBeGreaterThan(0);
    expect(warned.msg).toMatch(/^front queue full: \d+ requests? answered 503 in the last \d+ s \(\d+ since start\); it holds 8 requests \(--queue-size\): raise it, or add processes/);

    // Hold the moment: the backends first (the queue stays full), then wrk.
    const pids = (await stats()).children.map((c) => c.pid!);
    for (const pid of pids) { process.kill(pid, 'SIGSTOP'); held.push(pid); }
    await waitUntil(async () => (await stats()).pools[0].queue.current === 8, 'the queue is full', 10_000);
    wrk.kill('SIGSTOP');

    // Read everything at one moment: /stats before and after the rest must be the same.
    let s!: Stats;
    let pages!: Record<string, string>;
    let between = { before: 0, after: 0 };
    for (let attempt = 0; ; attempt++) {
      const t0 = Date.now();
      const first = await stats();
      pages = {
        metrics: await get('/metrics'), json: await get('/status?json&full'), text: await get('/status?full'), xml: await get('/status?xml&full'),
        html: await get('/status?html&full'), openmetrics: await get('/status?openmetrics'), plain: await get('/status'),
      };
      const last = await stats();
      between = { before: 0, after: Date.now() - t0 };
      if (JSON.stringify(still(first)) === JSON.stringify(still(last))) { s = first; break; }
      if (attempt === 10) expect(still(last)).toEqual(still(first));
    }

    // The moment is one of load: requests refused and waiting, backends in the middle of requests.
    const pool = s.pools[0];
    expect(pool.queue.current).toBe(8);
    expect(s.frontResponses['queue-full']).toBeGreaterThan(50);
    expect(s.frontResponses['body-too-large']).toBe(1);
    expect(s.frontResponses['bad-request']).toBe(1);
    expect(pool.backends.reduce((a, b) => a + b.responses['5xx'], 0)).toBe(0); // the front's 503s are not the backends'
    expect(pool.rates!['10s'].requestsPerSec).toBeGreaterThan(0);
    expect(s.rates!['10s'].frontResponsesPerSec['queue-full']).toBeGreaterThan(0);
    const slowTotal = pool.backends.reduce((a, b) => a + b.slowRequests, 0);
    expect(slowTotal).toBeGreaterThanOrEqual(2); // and any request of the load slower than 50 ms
    for (const b of pool.backends) {
      expect(b.process).toMatchObject({ pid: b.pid });
      expect(b.process!.rssBytes).toBeGreaterThan(1 << 20);
      expect(b.current).toMatchObject({ method: 'GET', uri: '/Hello/20', contentLength: 0 });
      expect(b.inflight).toBeGreaterThanOrEqual(1);
      expect(b.latencySeconds.count).toBeGreaterThan(0);
    }
    // "listen queue" is one figure: the front queue plus the kernel accept queues.
    expect(s.listenQueue.current).toBe(pool.queue.current + pool.backends.reduce((a, b) => a + b.acceptQueue!.current, 0));
    expect(s.listenQueue.len).toBe(8 + pool.backends.reduce((a, b) => a + b.acceptQueue!.backlog, 0));

    // /metrics: every sample is a /stats figure with the same value, and every figure is there.
    const expected = expectedMetrics(s);
    const got = new Map(parsePrometheus(pages.metrics).map((x) => [key(x.name, x.labels), x.value]));
    expect([...got.keys()].filter((k) => !expected.has(k))).toEqual([]);
    expect([...expected.keys()].filter((k) => !got.has(k))).toEqual([]);
    for (const [k, v] of expected) expect(got.get(k), k).toBe(v);

    // /status?json&full against /stats.
    const json = JSON.parse(pages.json);
    const nowSec = Date.now() / 1000;
    expect(json).toEqual({
      pool: 'app', 'process manager': 'static', 'start time': s.startTime, 'start since': s.uptimeSec, 'accepted conn': s.acceptedConn,
      'listen queue': s.listenQueue.current, 'max listen queue': s.listenQueue.max, 'listen queue len': s.listenQueue.len,
      'idle processes': pool.backends.filter((b) => b.inflight === 0).length, 'active processes': pool.backends.filter((b) => b.inflight > 0).length,
      'total processes': pool.backends.length, 'max active processes': pool.maxActiveBackends, 'max children reached': pool.slotsExhausted,
      'slow requests': slowTotal, processes: expect.any(Array),
    });
    expect(json.processes).toHaveLength(pool.backends.length);
    pool.backends.forEach((b, i) => {
      const p = json.processes[i];
      const { 'request duration': duration, ...rest } = p;
      expect(rest).toEqual({
        pid: b.pid, state: 'Running', 'start time': Math.floor(b.process!.startTime), 'start since': b.process!.uptimeSec, requests: b.requests,
        'request method': 'GET', 'request uri': '/Hello/20', 'content length': 0, user: '-', script: '-',
        'last request cpu': b.process!.cpuPercent, 'last request memory': b.process!.rssBytes,
      });
      // The request in service keeps ageing: its duration lies between the two /stats reads'.
      expect(duration).toBeGreaterThanOrEqual(Math.round(b.current!.durationMs * 1000));
      expect(duration).toBeLessThanOrEqual(Math.round((b.current!.durationMs + between.after + 5) * 1000));
      expect(Math.abs(p['start since'] - (nowSec - b.process!.startTime))).toBeLessThan(2 + between.after / 1000);
    });

    // The other formats say what the JSON says, field for field.
    const asText = (k: string, v: unknown) => (k === 'start time' ? fpmTime(v as number) : k === 'last request cpu' ? (v as number).toFixed(2) : String(v));
    const poolKeys = Object.keys(json).filter((k) => k !== 'processes');
    for (const [name, parsed, fmtTime] of [['text', parseText(pages.text), true], ['xml', parseXml(pages.xml), false], ['html', parseHtml(pages.html), true]] as const) {
      expect(Object.keys(parsed.pool), name).toEqual(poolKeys);
      for (const k of poolKeys) expect(parsed.pool[k], `${name} ${k}`).toBe(fmtTime ? asText(k, json[k]) : String(json[k]));
      expect(parsed.procs, name).toHaveLength(json.processes.length);
      json.processes.forEach((p: Record<string, unknown>, i: number) => {
        expect(Object.keys(parsed.procs[i]), name).toEqual([...PROCESS_FIELDS]);
        for (const k of PROCESS_FIELDS) {
          if (k === 'request duration') continue; // ageing, checked above
          const want = k === 'start time' && fmtTime ? fpmTime(p[k] as number) : k === 'last request cpu' ? (p[k] as number).toFixed(2) : String(p[k]);
          expect(parsed.procs[i][k], `${name} process ${i} ${k}`).toBe(want);
        }
      });
    }
    expect(parseText(pages.plain)).toEqual({ pool: parseText(pages.text).pool, procs: [] });
    const om = Object.fromEntries(pages.openmetrics.split('\n').filter((l) => /^phpfpm_/.test(l)).map((l) => l.split(' ')).map(([k, v]) => [k, Number(v)]));
    expect(om).toEqual({
      phpfpm_up: 1, phpfpm_start_since: json['start since'], phpfpm_accepted_connections: json['accepted conn'], phpfpm_listen_queue: json['listen queue'],
      phpfpm_max_listen_queue: json['max listen queue'], phpfpm_listen_queue_length: json['listen queue len'], phpfpm_idle_processes: json['idle processes'],
      phpfpm_active_processes: json['active processes'], phpfpm_total_processes: json['total processes'], phpfpm_max_active_processes: json['max active processes'],
      phpfpm_max_children_reached: json['max children reached'], phpfpm_slow_requests: json['slow requests'],
    });
  }, 60_000);
});
