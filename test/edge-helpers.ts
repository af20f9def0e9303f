// Helpers for the edge features' tests (TLS, HTTP/2, files, compression, logs):
// curl with its response head parsed, a self-signed certificate made by openssl.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { which } from './helpers.js';

export interface CurlResult {
  code: number;
  status: number;
  /** Lowercase name → values (the last response's head). */
  headers: Map<string, string[]>;
  httpVersion: string;
  body: Buffer;
  stderr: string;
}

/** Runs curl with -sS and -D (the head to a temp file), bounded to 30 s. */
export function curl(args: string[], opts: { input?: Buffer; timeoutMs?: number } = {}): Promise<CurlResult> {
  const bin = which('curl');
  if (!bin) throw new Error('curl is not installed');
  const headFile = path.join(fs.mkdtempSync('/tmp/upfront-curl-'), 'head');
  return new Promise((resolve) => {
    const child = execFile(bin, ['-sS', '-D', headFile, ...args], { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024, timeout: opts.timeoutMs ?? 30_000 }, (err, stdout, stderr) => {
      let head = '';
      try { head = fs.readFileSync(headFile, 'latin1'); } catch { /* none */ }
      fs.rmSync(path.dirname(headFile), { recursive: true, force: true });
      // The last head (after 100 Continue or redirects).
      const blocks = head.split(/\r?\n\r?\n/).filter((b) => /^HTTP\//.test(b));
      const last = blocks[blocks.length - 1] ?? '';
      const lines = last.split(/\r?\n/);
      const m = /^HTTP\/([\d.]+) (\d{3})/.exec(lines[0] ?? '');
      const headers = new Map<string, string[]>();
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const name = line.slice(0, colon).toLowerCase();
        headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
      }
      resolve({
        code: err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0,
        status: m ? Number(m[2]) : 0, httpVersion: m ? m[1] : '', headers, body: stdout, stderr: stderr.toString(),
      });
    });
    if (opts.input) child.stdin!.end(opts.input);
    else child.stdin?.end();
  });
}

export function header(r: CurlResult, name: string): string | undefined {
  return r.headers.get(name)?.[0];
}

/** A self-signed P-256 certificate for localhost (and 127.0.0.1), valid one day: [cert, key] paths in `dir`. */
export function makeCertificate(dir: string, name = 'server', cn = 'localhost'): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore', timeout: 20_000 });
  return { cert, key };
}
