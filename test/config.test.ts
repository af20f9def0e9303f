// The run config: validation names the option and the problem; defaults; the one
// kebab → camel mapping. Pure logic (the file system only for --cwd and COMMAND).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, RUN_OPTION_NAMES, camelCase, didYouMean, parseAddress, validateRunConfig } from '../src/config/schema.js';
import { PY_HELLO } from './helpers.js';

const cmd = ['python3', PY_HELLO];

function refusal(input: Record<string, unknown>): string {
  try {
    validateRunConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(input)}`);
}

describe('validateRunConfig', () => {
  it('camelCases every option once, with the defaults', () => {
    const c = validateRunConfig({ command: cmd, 'read-timeout': '2s', 'max-body-size': '1m', 'queue-size': '8' });
    expect(c).toMatchObject({
      readTimeout: 2000, maxBodySize: 1024 * 1024, queueSize: 8, procs: 1, maxProcs: 1, socket: 'per-process',
      overflow: 'queue', policy: 'least-conn', keepConn: true, pipelineDepth: 16, env: {}, upstream: [], schedPolicy: 'batch', frontSchedPolicy: 'batch',
      listen: { kind: 'tcp', host: '127.0.0.1', port: 8080 }, admin: { kind: 'tcp', host: '127.0.0.1', port: 8081 },
    });
    expect(c.socketDir).toBe(path.join(os.tmpdir(), `upfront-${process.pid}`));
    expect(Object.keys(c).filter((k) => k.includes('-'))).toEqual([]);
  });

  it('a port alone means 127.0.0.1:PORT (listen: 8290 in YAML is a number)', () => {
    expect(validateRunConfig({ command: cmd, listen: 8290, admin: '8291' })).toMatchObject({
      listen: { kind: 'tcp', host: '127.0.0.1', port: 8290 }, admin: { kind: 'tcp', host: '127.0.0.1', port: 8291 },
    });
    expect(parseAddress('[::1]:80')).toEqual({ kind: 'tcp', host: '::1', port: 80 });
    expect(parseAddress('70000')).toBe('port 70000 is out of range (0-65535)');
    expect(refusal({ command: cmd, listen: 'nowhere' })).toBe('listen: expected HOST:PORT, PORT or unix:PATH, got "nowhere", systemd or fd:N');
  });

  it('--upstream alone needs no --procs 0; a command without --procs is one process', () => {
    expect(validateRunConfig({ upstream: ['127.0.0.1:9000'] })).toMatchObject({ procs: 0, maxProcs: 0 });
    expect(validateRunConfig({ upstream: ['127.0.0.1:9000'], command: cmd })).toMatchObject({ procs: 1 });
    expect(refusal({})).toMatch(/^command: --procs needs a backend command/);
    expect(refusal({ procs: 0 })).toBe('procs: 0 processes and no --upstream: nothing to serve');
  });

  for (const [input, message] of [
    [{ command: cmd, env: ['FOO'] }, 'env: expected KEY=VALUE, got "FOO"'],
    [{ command: cmd, env: '=x' }, 'env: expected KEY=VALUE, got "=x"'],
    [{ command: cmd, env: { A: { nested: 1 } } }, 'env: A: expected a string, number or boolean, got {"nested":1}'],
    [{ command: cmd, cwd: '/nonexistent' }, 'cwd: /nonexistent: no such directory (ENOENT)'],
    [{ command: cmd, cwd: PY_HELLO }, `cwd: ${PY_HELLO} is not a directory (ENOTDIR)`],
    [{ command: ['no-such-backend-cmd'] }, 'backend command no-such-backend-cmd not found in PATH (ENOENT); install it or give its full path'],
    [{ command: cmd, baclog: 10 }, '(config): unknown option "baclog" (did you mean "backlog"?)'],
    [{ command: cmd, 'read_timeout': 10, zzz: 1 }, '(config): unknown options "read_timeout" (did you mean "read-timeout"?), "zzz"'],
    [{ command: cmd, socket: 'shared', 'max-requests': 10 }, expect.stringMatching(/^max-requests: counts requests per process/)],
    [{ command: cmd, group: 'root' }, 'group: --group needs --user'],
    [{ command: cmd, user: 'nosuchuser-upfront' }, expect.stringMatching(/^user: --user nosuchuser-upfront/)],
    [{ command: cmd, procs: '3:2' }, expect.stringMatching(/^procs: expected a whole number from 0 to 1024, or MIN:MAX/)],
    [{ command: cmd, 'sched-policy': 'fifo' }, 'sched-policy: expected batch or other'],
    [{ command: cmd, 'front-sched-policy': 'idle' }, 'front-sched-policy: expected batch or other'],
    [{ command: cmd, 'front-nice': 30 }, 'front-nice: expected a whole number from -20 to 19, got 30'],
    [{ command: cmd, 'front-nice': 'high' }, 'front-nice: expected a whole number from -20 to 19, got "high"'],
    [{ command: cmd, 'cpu-affinity': '0-1' }, 'cpu-affinity: expected auto or none'],
  ] as const) {
    it(`refuses ${JSON.stringify(input)}`, () => {
      expect(refusal(input as Record<string, unknown>)).toEqual(message);
    });
  }

  it('env: KEY=VALUE strings (flags) and a mapping (file)', () => {
    expect(validateRunConfig({ command: cmd, env: ['A=1', 'B=x=y'] }).env).toEqual({ A: '1', B: 'x=y' });
    expect(validateRunConfig({ command: cmd, env: { A: 1, B: true } }).env).toEqual({ A: '1', B: 'true' });
  });

  it('--cwd is made absolute and COMMAND is found relative to it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'upfront-test-'));
    try {
      fs.writeFileSync(path.join(dir, 'app.sh'), '#!/bin/sh\n', { mode: 0o755 });
      const c = validateRunConfig({ command: ['./app.sh'], cwd: path.relative(process.cwd(), dir) });
      expect(c.cwd).toBe(dir);
      expect(refusal({ command: ['./app.sh'] })).toBe('backend command ./app.sh not found (ENOENT)');
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });
});

describe('option names', () => {
  it('camelCase and did-you-mean', () => {
    expect(camelCase('max-requests-per-backend')).toBe('maxRequestsPerBackend');
    expect(didYouMean('pipline-depth')).toBe('pipeline-depth');
    expect(didYouMean('procs')).toBe('procs');
    expect(didYouMean('completely-different')).toBeNull();
    expect(RUN_OPTION_NAMES).toContain('command');
  });
});
