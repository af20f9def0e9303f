// The CLI's side of the admin listener: `upfront stats` reads GET /stats;
// `upfront scale` and `upfront reload` POST with the token, which they find
// themselves (--admin-token-file, else the file the running upfront names in /stats).
import http from 'node:http';
import { parseAddress, type ListenAddress } from '../config/schema.js';
import type { Stats } from '../stats/snapshot.js';
import { readTokenForClient } from './adminToken.js';

/** An admin request that failed; `badInput` when the admin refused what we sent (exit 2), else exit 1. */
export class AdminRequestError extends Error {
  constructor(message: string, readonly badInput = false) {
    super(message);
  }
}

function target(admin: string): { a: ListenAddress; where: string; conn: http.RequestOptions } {
  const a = parseAddress(admin);
  if (typeof a === 'string') throw new AdminRequestError(`--admin: ${a}`, true);
  const where = a.kind === 'unix' ? `unix:${a.path}` : `${a.host}:${a.port}`;
  return { a, where, conn: a.kind === 'unix' ? { socketPath: a.path } : { host: a.host, port: a.port } };
}

function call(admin: string, method: string, urlPath: string, opts: { body?: string; token?: string | null; timeoutMs: number }): Promise<{ status: number; text: string }> {
  let t: ReturnType<typeof target>;
  try { t = target(admin); } catch (err) { return Promise.reject(err); }
  const headers: Record<string, string> = {};
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = String(Buffer.byteLength(opts.body));
  }
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  return new Promise((resolve, reject) => {
    const req = http.request({ ...t.conn, method, path: urlPath, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', (err) => reject(new AdminRequestError(`admin ${t.where}: ${err.message}`)));
    });
    req.setTimeout(opts.timeoutMs, () => req.destroy(new Error(`did not answer within ${opts.timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new AdminRequestError(err.code === 'ECONNREFUSED' || err.code === 'ENOENT'
      ? `nothing answers on admin ${t.where} (${err.code}); is upfront running, with --admin ${admin}?` : `admin ${t.where}: ${err.message}`)));
    req.end(opts.body);
  });
}

export async function fetchStats(admin: string, timeoutMs = 5000): Promise<Stats & { adminTokenFile?: string }> {
  const { where } = target(admin);
  const r = await call(admin, 'GET', '/stats', { timeoutMs });
  if (r.status !== 200) throw new AdminRequestError(`admin ${where} answered ${r.status} to GET /stats: ${r.text.trim()}`);
  try {
    return JSON.parse(r.text) as Stats & { adminTokenFile?: string };
  } catch {
    throw new AdminRequestError(`admin ${where} sent something that is not JSON`);
  }
}

/**
 * The token for a POST: from --admin-token-file, else from the file the running
 * upfront names in GET /stats; none for a unix-socket admin (it needs none).
 */
export async function findAdminToken(admin: string, tokenFile?: string): Promise<string | null> {
  try {
    if (tokenFile) return readTokenForClient(tokenFile, false);
    if (target(admin).a.kind === 'unix') return null;
    const announced = (await fetchStats(admin)).adminTokenFile;
    return announced ? readTokenForClient(announced, true) : null;
  } catch (err) {
    if (err instanceof AdminRequestError) throw err;
    throw new AdminRequestError((err as Error).message);
  }
}

/** POSTs a JSON body; resolves with the JSON answer of a 2xx, rejects with the admin's reason otherwise. */
export async function postAdmin(admin: string, urlPath: string, body: unknown, token: string | null, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const { where } = target(admin);
  const r = await call(admin, 'POST', urlPath, { body: JSON.stringify(body), token, timeoutMs });
  let parsed: Record<string, unknown> | null = null;
  try { parsed = JSON.parse(r.text) as Record<string, unknown>; } catch { /* a text answer: quoted below */ }
  if (r.status >= 200 && r.status < 300) return parsed ?? {};
  const reason = typeof parsed?.error === 'string' ? parsed.error : r.text.trim().replace(/^admin: /, '') || `answered ${r.status}`;
  throw Object.assign(new AdminRequestError(`admin ${where}: ${reason} (${r.status})`, r.status === 400), { answer: parsed });
}
