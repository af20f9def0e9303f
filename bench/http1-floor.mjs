// CPU per request of the bare public-side HTTP layer: a server answering a fixed
// 2,400-byte body, on the http1 layer (respond()) and on node:http, each under
// `wrk -t2 -c200 -dDs` on loopback. CPU = utime+stime of the server process from
// /proc/PID/stat over the run, divided by the requests wrk counted.
//
//   npx tsc -p tsconfig.json && node bench/http1-floor.mjs [runs=3] [seconds=8]
//   node bench/http1-floor.mjs serve layer|node PORT     (the server alone)
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BODY = Buffer.alloc(2400, 'x');

if (process.argv[2] === 'serve') {
  const [kind, port] = [process.argv[3], Number(process.argv[4])];
  const ready = () => process.stdout.write('ready\n');
  if (kind === 'layer') {
    const { Http1Server } = await import(path.join(ROOT, 'dist/server/http1/server.js'));
    const headers = ['Content-Type', 'text/plain'];
    const server = new Http1Server({}, { onRequest: (ex) => ex.respond(200, null, headers, BODY) });
    server.net.listen({ port, host: '127.0.0.1', backlog: 1024 }, ready);
  } else {
    const server = http.createServer({ keepAlive: true, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': BODY.length });
      res.end(BODY);
    });
    server.listen({ port, host: '127.0.0.1', backlog: 1024 }, ready);
  }
  process.on('SIGTERM', () => process.exit(0));
} else {
  const runs = Number(process.argv[2] ?? 3);
  const seconds = Number(process.argv[3] ?? 8);
  const tick = Number(execFileSync('getconf', ['CLK_TCK']).toString());
  const results = { layer: [], node: [] };
  let port = 18500 + (process.pid % 1000);
  for (let run = 0; run < runs; run++) {
    for (const kind of ['layer', 'node']) {
      port++;
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'serve', kind, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise((resolve) => child.stdout.once('data', resolve));
      // A short warm-up so the JIT has the hot path before counting.
      execFileSync('wrk', ['-t2', '-c200', '-d1s', `http://127.0.0.1:${port}/`], { stdio: 'ignore' });
      const cpu = () => {
        const fields = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
        return [Number(fields[11]) / tick, Number(fields[12]) / tick]; // utime, stime (fields 14, 15)
      };
      const [user0, sys0] = cpu();
      const out = execFileSync('wrk', ['-t2', '-c200', `-d${seconds}s`, `http://127.0.0.1:${port}/`]).toString();
      const [user1, sys1] = cpu();
      const before = user0 + sys0;
      const after = user1 + sys1;
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      const requests = Number(/(\d+) requests in/.exec(out)[1]);
      const errors = /Socket errors: ([^\n]*)/.exec(out)?.[1] ?? 'none';
      const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? '0';
      const r = { run: run + 1, kind, requests, rps: Math.round(requests / seconds), cpuSeconds: +(after - before).toFixed(2), usPerRequest: +(((after - before) * 1e6) / requests).toFixed(2), userUs: +(((user1 - user0) * 1e6) / requests).toFixed(2), sysUs: +(((sys1 - sys0) * 1e6) / requests).toFixed(2), errors, non2xx };
      results[kind].push(r);
      console.log(JSON.stringify(r));
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const kind of ['layer', 'node']) {
    console.log(`${kind}: median ${median(results[kind].map((r) => r.usPerRequest))} µs CPU/request, median ${median(results[kind].map((r) => r.rps))} req/s over ${runs} runs`);
  }
}
