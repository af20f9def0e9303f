// deploy/ and config/ stay true to the code: every example config validates, the
// Kubernetes manifest probes the paths and ports the config serves, the Dockerfile
// copies what exists, and the preStop hook drains a real upfront.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../src/config/load.js';
import { validateRunConfig } from '../src/config/schema.js';
import { PY_HELLO, ROOT, request, spawnCli, waitUntil } from './helpers.js';

describe('config/ and deploy/', () => {
  it('every example config validates', () => {
    const files = fs.readdirSync(path.join(ROOT, 'config')).filter((f) => /\.(ya?ml|json)$/.test(f));
    expect(files.length).toBeGreaterThanOrEqual(10);
    // systemd.yaml is for the host it deploys to: its cwd (/opt/app) is checked to exist there, as
    // any cwd is at start; here that one refusal is expected, and the rest validates without it.
    const elsewhere: Record<string, { cwd: string }> = { 'systemd.yaml': { cwd: '/opt/app' } };
    for (const f of files) {
      const raw = loadConfigFile(path.join(ROOT, 'config', f));
      const other = elsewhere[f];
      if (other && !fs.existsSync(other.cwd)) {
        expect(() => validateRunConfig(raw), f).toThrow(`cwd: ${other.cwd}: no such directory (ENOENT)`);
        delete raw.cwd;
      }
      expect(() => validateRunConfig(raw), f).not.toThrow();
    }
  });

  it('the Kubernetes manifest probes /readyz and /healthz on the admin port of the config its image runs; preStop runs the drain hook', () => {
    const docs = YAML.parseAllDocuments(fs.readFileSync(path.join(ROOT, 'deploy/kubernetes/upfront.yaml'), 'utf8')).map((d) => d.toJS());
    const deployment = docs.find((d) => d.kind === 'Deployment');
    const service = docs.find((d) => d.kind === 'Service');
    const c = deployment.spec.template.spec.containers[0];
    const configFile = c.args[c.args.indexOf('-c') + 1];
    const config = validateRunConfig(loadConfigFile(path.join(ROOT, configFile)));
    const port = (name: string) => c.ports.find((p: { name: string }) => p.name === name).containerPort;
    expect(config.admin).toMatchObject({ kind: 'tcp', host: '0.0.0.0', port: port('admin') });
    expect(config.listen).toMatchObject({ kind: 'tcp', host: '0.0.0.0', port: port('http') });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    const hook = c.lifecycle.preStop.exec.command;
    expect(fs.existsSync(path.join(ROOT, hook[1]))).toBe(true);
    // The hook's timeout and the config's stop fit in the grace period.
    const timeout = Number(hook[hook.indexOf('--timeout') + 1]);
    expect(timeout).toBeLessThan(deployment.spec.template.spec.terminationGracePeriodSeconds);
    expect((config.shutdownDelay + config.shutdownGrace) / 1000).toBeLessThanOrEqual(timeout);
    expect(deployment.spec.template.metadata.annotations['prometheus.io/port']).toBe(String(port('admin')));
    expect(service.spec.ports[0].targetPort).toBe('http');
  });

  it('the Dockerfile copies files that exist and runs a config that validates', () => {
    const text = fs.readFileSync(path.join(ROOT, 'deploy/docker/Dockerfile'), 'utf8');
    for (const m of text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1].split(/\s+/)) expect(fs.existsSync(path.join(ROOT, src)), src).toBe(true);
    }
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(text)![1]) as string[];
    expect(() => validateRunConfig(loadConfigFile(path.join(ROOT, cmd[cmd.indexOf('-c') + 1])))).not.toThrow();
  });

  it('the systemd units: upfront takes the socket unit\'s socket itself', () => {
    const service = fs.readFileSync(path.join(ROOT, 'deploy/systemd/upfront.service'), 'utf8');
    const socket = fs.readFileSync(path.join(ROOT, 'deploy/systemd/upfront.socket'), 'utf8');
    // The CLI file itself (its shebang's node flags), not `node FILE`.
    expect(service).toMatch(/^ExecStart=\/\S+\/dist\/cli\.js run .*--listen systemd$/m);
    expect(service).toMatch(/^Requires=upfront\.socket$/m);
    expect(socket).toMatch(/^Accept=no$/m);
  });
});

describe('preStop hook', () => {
  it('starts the graceful stop, waits while a request is in flight, returns once upfront is gone', async () => {
    const cli = await spawnCli(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--shutdown-delay', '300ms', '--', 'python3', PY_HELLO]);
    try {
      const slow = request(`${cli.base}/sleep/1200`, { agent: false });
      // The request is in flight before the hook starts.
      await waitUntil(async () => {
        const stats = JSON.parse((await request(`http://${cli.admin}/stats`, { agent: false })).body.toString());
        return stats.pools[0].backends[0].inflight === 1;
      }, 'the slow request reaches the backend');
      const hook = spawn(process.execPath, [path.join(ROOT, 'deploy/prestop.mjs'), '--pid', String(cli.proc.pid), '--admin', cli.admin!, '--timeout', '20'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      hook.stdout!.on('data', (c) => { out += c; });
      const code = await new Promise<number | null>((r) => hook.once('exit', r));
      expect(code).toBe(0);
      expect(out).toMatch(/1 request\(s\) in flight/);
      expect(out).toMatch(/drained and stopped/);
      expect((await slow).status).toBe(200);
      expect(cli.proc.exitCode ?? (await new Promise((r) => cli.proc.once('exit', r)))).toBe(0);
    } finally {
      await cli.stop();
    }
  });
});
