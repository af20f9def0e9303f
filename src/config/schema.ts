// The settings of `upfront run`, their defaults, and validation that names the
// option and the problem. File keys are the flag names (kebab-case).
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

const durationRe = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/;

/** "250ms", "10s", "2m" or a number of milliseconds. */
const duration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) { ctx.addIssue({ code: 'custom', message: `expected a duration ≥ 0, got ${v}` }); return z.NEVER; }
    return v;
  }
  const m = durationRe.exec(v.trim());
  if (!m) { ctx.addIssue({ code: 'custom', message: `expected a duration such as 500ms, 10s or 60000, got ${JSON.stringify(v)}` }); return z.NEVER; }
  const n = Number(m[1]);
  return m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n;
});

const int = (min: number, max: number) => z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = typeof v === 'number' ? v : /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    ctx.addIssue({ code: 'custom', message: `expected a whole number from ${min} to ${max}, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return n;
});

const switchValue = z.union([z.boolean(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'boolean') return v;
  const s = v.trim().toLowerCase();
  if (s === 'true' || s === 'yes' || s === '1') return true;
  if (s === 'false' || s === 'no' || s === '0') return false;
  if (s === 'auto') return 'auto' as const;
  ctx.addIssue({ code: 'custom', message: `expected true, false or auto, got ${JSON.stringify(v)}` });
  return z.NEVER;
});

const bool = z.union([z.boolean(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'boolean') return v;
  const s = v.trim().toLowerCase();
  if (['true', 'yes', '1', 'on'].includes(s)) return true;
  if (['false', 'no', '0', 'off'].includes(s)) return false;
  ctx.addIssue({ code: 'custom', message: `expected true or false, got ${JSON.stringify(v)}` });
  return z.NEVER;
});

/** HOST:PORT or unix:PATH. */
export type ListenAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export function parseAddress(v: string): ListenAddress | string {
  const s = v.trim();
  if (s.startsWith('unix:')) {
    const p = s.slice(5);
    if (!p) return 'unix: needs a path, as in unix:/run/upfront.sock';
    return { kind: 'unix', path: path.resolve(p) };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(s);
  if (!m) return `expected HOST:PORT or unix:PATH, got ${JSON.stringify(v)}`;
  const port = Number(m[3]);
  if (port > 65535) return `port ${port} is out of range (0-65535)`;
  return { kind: 'tcp', host: m[1] ?? m[2], port };
}

const address = z.string().transform((v, ctx) => {
  const a = parseAddress(v);
  if (typeof a === 'string') { ctx.addIssue({ code: 'custom', message: a }); return z.NEVER; }
  return a;
});

/** The public listener's address: HOST:PORT, unix:PATH, or a socket inherited as a file descriptor. */
export type PublicListenAddress = ListenAddress | { kind: 'fd'; fd: number; systemd: boolean };

/** `systemd` (the first LISTEN_FDS socket, checked against LISTEN_PID at start), `fd:N`, or HOST:PORT / unix:PATH. */
export function parsePublicAddress(v: string): PublicListenAddress | string {
  const s = v.trim();
  if (s === 'systemd') return { kind: 'fd', fd: 3, systemd: true };
  const m = /^fd:(\d{1,4})$/.exec(s);
  if (m) {
    const fd = Number(m[1]);
    if (fd < 3) return `fd:${fd} is a standard stream; an inherited listening socket is fd 3 or above`;
    return { kind: 'fd', fd, systemd: false };
  }
  const a = parseAddress(s);
  return typeof a === 'string' ? `${a}, systemd or fd:N` : a;
}

const publicAddress = z.string().transform((v, ctx) => {
  const a = parsePublicAddress(v);
  if (typeof a === 'string') { ctx.addIssue({ code: 'custom', message: a }); return z.NEVER; }
  return a;
});

/** PREFIX=DIR pairs (--static, --internal-location): a URL path prefix and a directory. */
const prefixDirList = z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
  const out: Array<{ prefix: string; dir: string }> = [];
  for (const item of Array.isArray(v) ? v : [v]) {
    const eq = item.indexOf('=');
    const prefix = eq > 0 ? item.slice(0, eq).trim() : '';
    const dir = eq > 0 ? item.slice(eq + 1).trim() : '';
    if (!prefix.startsWith('/') || !dir) { ctx.addIssue({ code: 'custom', message: `expected URL_PREFIX=DIR such as /assets=/srv/app/public, got ${JSON.stringify(item)}` }); return z.NEVER; }
    if (/[?#%\\]/.test(prefix) || prefix.split('/').some((seg) => seg === '..' || seg === '.')) { ctx.addIssue({ code: 'custom', message: `URL prefix ${JSON.stringify(prefix)} must be a plain path (no ?, #, %, \\, . or .. segments)` }); return z.NEVER; }
    out.push({ prefix: prefix.endsWith('/') ? prefix : prefix + '/', dir: path.resolve(dir) });
  }
  return out;
});

const adminAddress = z.string().transform((v, ctx) => {
  if (v.trim() === 'off') return null;
  const a = parseAddress(v);
  if (typeof a === 'string') { ctx.addIssue({ code: 'custom', message: `${a}, or "off"` }); return z.NEVER; }
  return a;
});

/** "100m", "1g", "512k" or a number of bytes. */
const size = z.union([z.number(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) { ctx.addIssue({ code: 'custom', message: `expected a size in bytes ≥ 0, got ${v}` }); return z.NEVER; }
    return v;
  }
  const m = /^(\d+)\s*([kmg]?)b?$/i.exec(v.trim());
  if (!m) { ctx.addIssue({ code: 'custom', message: `expected a size such as 1m, 512k, 1g or a number of bytes, got ${JSON.stringify(v)}` }); return z.NEVER; }
  const unit = m[2].toLowerCase();
  return Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1);
});

const stringList = z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? v : [v]));

export const runSchema = z.object({
  listen: publicAddress.prefault('127.0.0.1:8080'),
  // TLS on the public listener (HTTP/2 and HTTP/1.1 by ALPN); both files or neither. Re-read on reload.
  'tls-cert': z.string().min(1).optional(),
  'tls-key': z.string().min(1).optional(),
  // A plain listener answering every request with a redirect to https on the public listener.
  'redirect-http': address.optional(),
  // Files before the app: URL_PREFIX=DIR mounts, and nginx's `try_files $uri @app` over the document root.
  static: prefixDirList.prefault([]),
  'try-files': bool.prefault(false),
  // X-Accel-Redirect: /PREFIX/... is served from DIR (and X-Sendfile: a path under one of the DIRs).
  'internal-location': prefixDirList.prefault([]),
  compress: bool.prefault(false),
  'compress-min-size': size.prefault(1024),
  // off, stdout, or a file path (reopened on SIGUSR1).
  'access-log': z.string().min(1).prefault('off'),
  'access-log-format': z.enum(['combined', 'json'], { message: 'expected combined or json' }).prefault('combined'),
  // /healthz and /readyz on the public listener too (they are always on the admin one).
  'health-on-public': bool.prefault(false),
  // On SIGTERM: /readyz answers 503 at once, and the listener keeps accepting this long before the drain.
  'shutdown-delay': duration.prefault(0),
  // Active health checks of --upstream backends (0: off).
  'health-check-interval': duration.prefault(0),
  'health-check-path': z.string().regex(/^\/[^\s]*$/, 'expected a path such as /healthz').optional(),
  'health-check-timeout': duration.prefault(2000),
  'health-check-rise': int(1, 100).prefault(2),
  'health-check-fall': int(1, 100).prefault(3),
  admin: adminAddress.prefault('127.0.0.1:8081'),
  // The admin token's file (mode 0600) instead of one generated into the socket dir.
  'admin-token-file': z.string().min(1).optional(),
  // N, or MIN:MAX to autoscale between them.
  procs: z.union([z.number(), z.string()]).transform((v, ctx) => {
    const m = /^\s*(\d+)\s*(?::\s*(\d+)\s*)?$/.exec(String(v));
    const min = m ? Number(m[1]) : NaN;
    const max = m && m[2] !== undefined ? Number(m[2]) : min;
    if (!m || min > 1024 || max > 1024 || max < min || (m[2] !== undefined && min < 1)) {
      ctx.addIssue({ code: 'custom', message: `expected a whole number from 0 to 1024, or MIN:MAX (1 ≤ MIN ≤ MAX ≤ 1024), got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return { min, max };
  }).prefault(1),
  'scale-up-after': duration.prefault(1000),
  'scale-down-after': duration.prefault(30_000),
  'kill-stuck': bool.prefault(false),
  forwarded: bool.prefault(false),
  'max-rss': int(0, 1_000_000).prefault(0),
  'socket-fd': z.enum(['0', 'systemd'], { message: 'expected 0 or systemd' }).prefault('0'),
  protocol: z.enum(['fastcgi', 'http'], { message: 'expected fastcgi or http' }).prefault('fastcgi'),
  socket: z.enum(['per-process', 'shared'], { message: 'expected per-process or shared' }).prefault('per-process'),
  backlog: int(1, 65535).prefault(1024),
  multithreaded: switchValue.prefault('auto'),
  multiplexed: switchValue.prefault('auto'),
  'max-requests-per-backend': int(1, 100_000).optional(),
  upstream: stringList.prefault([]),
  'document-root': z.string().prefault(process.cwd()),
  'read-timeout': duration.prefault(60_000),
  // The public side, with nginx's defaults: client_header_timeout, client_body_timeout,
  // keepalive_timeout (nginx: 75 s), send_timeout.
  'client-header-timeout': duration.prefault(60_000),
  'client-body-timeout': duration.prefault(60_000),
  'keepalive-timeout': duration.prefault(75_000),
  'send-timeout': duration.prefault(60_000),
  'connect-timeout': duration.prefault(1000),
  'start-timeout': duration.prefault(30_000),
  'get-values-timeout': duration.prefault(1000),
  'kill-timeout': duration.prefault(5000),
  'shutdown-grace': duration.prefault(30_000),
  'restart-backoff': duration.prefault(100),
  'restart-backoff-max': duration.prefault(30_000),
  policy: z.enum(['least-conn', 'round-robin', 'random-two'], { message: 'expected least-conn, round-robin or random-two' }).prefault('least-conn'),
  overflow: z.enum(['queue', 'shed', 'nginx', 'retry'], { message: 'expected queue, shed, nginx or retry' }).prefault('queue'),
  'sample-interval': duration.prefault(250),
  'max-requests': int(0, 1_000_000_000).prefault(0),
  'max-requests-jitter': int(0, 1_000_000_000).prefault(0),
  'down-after-failures': int(1, 1000).prefault(5),
  user: z.string().min(1).optional(),
  group: z.string().min(1).optional(),
  'server-timing': bool.prefault(false),
  'slow-request': duration.prefault(5000),
  'queue-size': int(0, 10_000_000).prefault(1024),
  'queue-timeout': duration.prefault(10_000),
  retries: int(0, 10).prefault(1),
  'pipeline-depth': int(1, 16).prefault(2),
  'keep-conn': bool.prefault(true),
  'max-head-bytes': int(1024, 64 * 1024 * 1024).prefault(1024 * 1024),
  // nginx's client_max_body_size is 1m; apps behind upfront often take uploads, so 100m, and 0 for none.
  'max-body-size': size.prefault('100m'),
  // As nginx's fastcgi_request_buffering / fastcgi_buffering (on by default there too): a
  // slow client holds a front connection, never a backend slot.
  'request-buffering': bool.prefault(true),
  'response-buffering': bool.prefault(true),
  'response-buffer-memory': size.prefault('1m'),
  'response-buffer-max': size.prefault('1g'),
  // Which files are scripts ("php" or ".php", comma-separated or repeated): nginx users' `location ~ \.php$`.
  'script-ext': stringList.transform((list, ctx) => {
    const out: string[] = [];
    for (const item of list.flatMap((s) => s.split(','))) {
      const e = item.trim();
      if (!e) continue;
      if (!/^\.?[A-Za-z0-9_-]+$/.test(e)) { ctx.addIssue({ code: 'custom', message: `expected file extensions such as php or .php, got ${JSON.stringify(item)}` }); return z.NEVER; }
      out.push(e.startsWith('.') ? e : `.${e}`);
    }
    return out;
  }).prefault([]),
  'pass-underscore-headers': bool.prefault(false),
  'pass-proxy-header': bool.prefault(false),
  'socket-dir': z.string().optional(),
  cwd: z.string().optional(),
  // A mapping in the file; KEY=VALUE strings from --env (repeatable).
  env: z.union([
    z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)),
    z.array(z.string()).transform((list, ctx) => {
      const out: Record<string, string> = {};
      for (const kv of list) {
        const eq = kv.indexOf('=');
        if (eq <= 0) { ctx.addIssue({ code: 'custom', message: `expected KEY=VALUE, got ${JSON.stringify(kv)}` }); return z.NEVER; }
        out[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
      return out;
    }),
  ]).prefault({}),
  'log-level': z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], { message: 'expected trace, debug, info, warn, error, fatal or silent' }).prefault('info'),
  'log-format': z.enum(['json', 'pretty'], { message: 'expected json or pretty' }).optional(),
  command: z.array(z.string()).prefault([]),
}).strict();

export type RunConfigInput = z.input<typeof runSchema>;
export type RunConfigParsed = z.output<typeof runSchema>;

export interface RunConfig extends Omit<RunConfigParsed, 'procs'> {
  socketDir: string;
  /** Processes at start (the MIN of MIN:MAX). */
  procs: number;
  /** Autoscale ceiling (= procs when not autoscaling). */
  maxProcs: number;
}

export class ConfigError extends Error {}

export function validateRunConfig(input: Record<string, unknown>): RunConfig {
  const result = runSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue.path.length ? issue.path.join('.') : '(config)';
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') message = `unknown option${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    throw new ConfigError(`${where}: ${message}`);
  }
  const parsed = result.data;
  const c = { ...parsed, procs: parsed.procs.min, maxProcs: parsed.procs.max };
  if (c.procs > 0 && c.command.length === 0) throw new ConfigError('command: --procs needs a backend command after "--" (or set command: in the config file), or use --upstream');
  if (c.procs === 0 && c.upstream.length === 0) throw new ConfigError('procs: 0 processes and no --upstream: nothing to serve');
  if (c.command.length > 0 && c.procs === 0) throw new ConfigError('procs: a command was given but --procs is 0');
  for (const u of c.upstream) {
    const a = parseAddress(u);
    if (typeof a === 'string') throw new ConfigError(`upstream: ${a}`);
  }
  if (c['pipeline-depth'] > 1 && c['keep-conn'] === false) c['pipeline-depth'] = 1;
  if (c.protocol === 'http' && c.socket === 'shared') throw new ConfigError('socket: shared hands a socket to children as fd 0, which HTTP apps do not take; use per-process with --protocol http');
  if (c.protocol === 'http' && (c.overflow === 'nginx' || c.overflow === 'retry')) throw new ConfigError(`overflow: ${c.overflow} reproduces nginx's FastCGI behaviour; with --protocol http use queue or shed`);
  if ((c['tls-cert'] === undefined) !== (c['tls-key'] === undefined)) throw new ConfigError(`${c['tls-cert'] === undefined ? 'tls-cert' : 'tls-key'}: TLS needs both --tls-cert and --tls-key`);
  if (c['redirect-http'] && c['tls-cert'] === undefined) throw new ConfigError('redirect-http: redirects to https need TLS on the public listener (--tls-cert and --tls-key)');
  if (c['health-check-path'] !== undefined && c.protocol !== 'http') throw new ConfigError('health-check-path: FastCGI upstreams are checked with FCGI_GET_VALUES; a path needs --protocol http');
  if (c['health-check-interval'] > 0 && c['health-check-interval'] < 100) throw new ConfigError(`health-check-interval: at least 100 ms (or 0 for off), got ${c['health-check-interval']}`);
  const socketDir = c['socket-dir'] ?? path.join(os.tmpdir(), `upfront-${process.pid}`);
  return { ...c, 'document-root': path.resolve(c['document-root']), socketDir };
}
