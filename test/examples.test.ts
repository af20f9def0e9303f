// The README's examples run as written: each `npx upfront run …` line of its
// "Examples" block and each config/*.yaml file, from the repository root, with only
// the listeners moved to free ports (flags override the file). A request for the
// Hello/N page goes through each.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, peer, request, spawnCli, type RunningCli } from './helpers.js';

const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const PHP_CGI = peer('php-cgi');
/** Debian's python3 with python3-gunicorn (the python3 on PATH may lack it). */
const GUNICORN = fs.existsSync('/usr/bin/python3') && (() => {
  try { execFileSync('/usr/bin/python3', ['-c', 'import gunicorn'], { stdio: 'ignore' }); return true; } catch { return false; }
})();
if (!GUNICORN && process.env.CI) throw new Error('python3-gunicorn is not installed; .ci/run should have installed it');

let running: RunningCli | null = null;
afterEach(async () => { await running?.stop(); running = null; });

/** Starts `upfront run ARGS` with the listeners on free loopback ports; GET `page` must show `lines` Hello lines. */
async function serves(args: string[], page: string, lines: number): Promise<void> {
  running = await spawnCli(['--listen', '127.0.0.1:0', '--admin', 'off', ...args]);
  const r = await request(`${running.base}${page}`, { agent: false });
  expect(r.status, `${r.body}\n${running.stderr()}`).toBe(200);
  expect(r.body.toString().match(/Hello, World!/g)).toHaveLength(lines);
}

const lines: Array<{ line: string; page: string; skip?: boolean }> = [
  { line: 'npx upfront run -n 2 -- python3 examples/python/hello.py', page: '/Hello/3' },
  { line: 'npx upfront run -n 2 --document-root examples/php --script-ext php -- php-cgi', page: '/hello.php/3', skip: !PHP_CGI },
  { line: 'npx upfront run --protocol http -- /usr/bin/python3 -m gunicorn --workers 4 --bind unix:{socket} --chdir examples/python hello:application', page: '/Hello/3', skip: !GUNICORN },
  { line: 'npx upfront run --protocol http -n 2 -- node examples/node/http-app.mjs', page: '/Hello/3' },
];

describe('the README\'s example lines', () => {
  for (const { line, page, skip } of lines) {
    it.skipIf(skip)(line, async () => {
      expect(README).toContain(`\n${line}`);
      const args = line.split(/\s+/).slice(3); // after "npx upfront run"
      await serves(args, page, 3);
    }, 30_000);
  }
});

describe('config/*.yaml', () => {
  const configs: Array<{ file: string; page: string; skip?: boolean }> = [
    { file: 'config/python-hello.yaml', page: '/Hello/3' },
    { file: 'config/shared-socket.yaml', page: '/Hello/3' },
    { file: 'config/php-cgi.yaml', page: '/hello.php/3', skip: !PHP_CGI },
    { file: 'config/gunicorn-http.yaml', page: '/Hello/3', skip: !GUNICORN },
    { file: 'config/node-http.yaml', page: '/Hello/3' },
    { file: 'config/static.yaml', page: '/Hello/3' },
    { file: 'config/docker.yaml', page: '/Hello/3' },
  ];
  // These need what only their host has (upstreams already running, systemd's socket and
  // /opt/app, a certificate in /tmp): upstreams.yaml is started below, and every one is
  // validated by deploy.test.ts.
  const forTheirHost = ['config/upstreams.yaml', 'config/health.yaml', 'config/systemd.yaml', 'config/tls.yaml'];

  it('each is named in the README and tested here', () => {
    const files = fs.readdirSync(path.join(ROOT, 'config')).filter((f) => f.endsWith('.yaml')).map((f) => `config/${f}`).sort();
    expect(files).toEqual([...configs.map((c) => c.file), ...forTheirHost].sort());
    for (const f of files) expect(README).toContain(f);
  });

  for (const { file, page, skip } of configs) {
    it.skipIf(skip)(`${file} serves ${page}`, async () => {
      await serves(['-c', file], page, 3);
    }, 30_000);
  }

  it('config/upstreams.yaml starts, and says the upstreams it cannot reach (no php-fpm here)', async () => {
    running = await spawnCli(['--listen', '127.0.0.1:0', '--admin', 'off', '--start-timeout', '200', '-c', 'config/upstreams.yaml']);
    expect(running.stderr()).toMatch(/no backend is ready yet: u0 \w+ \(not reachable: .*\); u1 \w+ \(not reachable/);
    const r = await request(`${running.base}/index.php`, { agent: false });
    expect(r.status).toBe(503);
  }, 30_000);
});
