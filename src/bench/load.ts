// Load generation: autocannon (built in), or wrk when installed. Both bounded in time.
import { spawn } from 'node:child_process';
// autocannon ships no types; the part used here is small.
import { createRequire } from 'node:module';

interface AutocannonResult {
  requests: { total: number };
  duration: number;
  latency: { p50: number; p90: number; p99: number; max: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Autocannon = (opts: { url: string; connections: number; duration: number; timeout: number }, cb: (err: Error | null, r: AutocannonResult) => void) => unknown;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface LoadResult {
  requests: number;
  durationSec: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  non2xx: number;
  socketErrors: number;
}

export type LoadTool = 'autocannon' | 'wrk';

export function runLoad(tool: LoadTool, url: string, connections: number, durationSec: number): Promise<LoadResult> {
  return tool === 'wrk' ? runWrk(url, connections, durationSec) : runAutocannon(url, connections, durationSec);
}

function runAutocannon(url: string, connections: number, durationSec: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections, duration: durationSec, timeout: 10 }, (err, r) => {
      if (err) return reject(err);
      resolve({
        requests: r.requests.total,
        durationSec: r.duration,
        latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
        non2xx: r.non2xx,
        socketErrors: r.errors + r.timeouts,
      });
    });
  });
}

function ms(text: string | undefined): number {
  if (!text) return 0;
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return 0;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : m[2] === 'm' ? v * 60_000 : v;
}

function runWrk(url: string, connections: number, wantedSec: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const p = spawn('wrk', ['-t2', `-c${connections}`, `-d${wantedSec}s`, '--latency', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c) => { out += c; });
    p.on('error', (err) => reject(new Error(`wrk: ${err.message} (apt-get install wrk)`)));
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`wrk exited with code ${code}`));
      const total = Number(/(\d+) requests in ([\d.]+)(m?s)/.exec(out)?.[1] ?? 0);
      const dur = /(\d+) requests in ([\d.]+)(ms|s|m)/.exec(out);
      const durationSec = dur ? ms(`${dur[2]}${dur[3]}`) / 1000 : wantedSec;
      const pct = (p: string) => ms(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1]);
      const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      resolve({
        requests: total,
        durationSec,
        latencyMs: { p50: pct('50'), p90: pct('90'), p99: pct('99'), max: ms(/Latency\s+\S+\s+\S+\s+(\S+)/.exec(out)?.[1]) },
        non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
        socketErrors: errs ? errs.slice(1).reduce((a, v) => a + Number(v), 0) : 0,
      });
    });
  });
}
