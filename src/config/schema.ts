// The settings of `upfront run`, their defaults, and validation that names the
// option and the problem. File keys are the flag names (kebab-case).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { resolveCommand } from './command.js';
import { resolveIdentity } from './identity.js';

/**
 * Requests that may wait in the front queue before the next is answered 503 at once. A
 * connection holds at most one request in the queue (HTTP/1.1 answers in order; an HTTP/2
 * connection up to its 128 streams), so this counts connections more than it guards memory:
 * with 1024, 4,000 connections of wrk drew ~333k 503s in 10 s where h2o and lighttpd answered
 * every request (bench/results/c4000-20261203/). --queue-timeout bounds the wait either way.
 */
export const DEFAULT_QUEUE_SIZE = 65_536;

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

export function parseAddress(v: string | number): ListenAddress | string {
  const s = String(v).trim();
  // A port alone means loopback: `listen: 8290` in a config file, `--listen 8290`.
  if (/^\d{1,5}$/.test(s)) {
    const port = Number(s);
    return port > 65535 ? `port ${port} is out of range (0-65535)` : { kind: 'tcp', host: '127.0.0.1', port };
  }
  if (s.startsWith('unix:')) {
    const p = s.slice(5);
    if (!p) return 'unix: needs a path, as in unix:/run/upfront.sock';
    return { kind: 'unix', path: path.resolve(p) };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(s);
  if (!m) return `expected HOST:PORT, PORT or unix:PATH, got ${JSON.stringify(v)}`;
  const port = Number(m[3]);
  if (port > 65535) return `port ${port} is out of range (0-65535)`;
  return { kind: 'tcp', host: m[1] ?? m[2], port };
}

const address = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const a = parseAddress(v);
  if (typeof a === 'string') { ctx.addIssue({ code: 'custom', message: a }); return z.NEVER; }
  return a;
});

/** The public listener's address: HOST:PORT, unix:PATH, or a socket inherited as a file descriptor. */
export type PublicListenAddress = ListenAddress | { kind: 'fd'; fd: number; systemd: boolean };

/** `systemd` (the first LISTEN_FDS socket, checked against LISTEN_PID at start), `fd:N`, or HOST:PORT / unix:PATH. */
export function parsePublicAddress(v: string | number): PublicListenAddress | string {
  const s = String(v).trim();
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

const publicAddress = z.union([z.string(), z.number()]).transform((v, ctx) => {
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

const adminAddress = z.union([z.string(), z.number(), z.literal(false)]).transform((v, ctx) => {
  if (v === false || String(v).trim() === 'off') return null;
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
  }).optional(), // default: 1 with a command, 0 with --upstream alone (see validateRunConfig)
  'scale-up-after': duration.prefault(1000),
  'scale-down-after': duration.prefault(30_000),
  'kill-stuck': bool.prefault(false),
  forwarded: bool.prefault(false),
  'max-rss': int(0, 1_000_000).prefault(0),
  'socket-fd': z.enum(['0', 'systemd'], { message: 'expected 0 or systemd' }).prefault('0'),
  // SCHED_BATCH by default: a woken app does not preempt the front (supervisor/schedPolicy.ts).
  'sched-policy': z.enum(['batch', 'other'], { message: 'expected batch or other' }).prefault('batch'),
  // SCHED_BATCH by default: the front woken by bytes does not preempt the app or client on its core (supervisor/schedPolicy.ts).
  'front-sched-policy': z.enum(['batch', 'other'], { message: 'expected batch or other' }).prefault('batch'),
  // The front's nice (nginx's worker_priority); unset: the weight of its processes (niceForProcesses), quietly kept where the kernel refuses (supervisor/frontNice.ts).
  'front-nice': int(-20, 19).optional(),
  // auto: each process bound to one CPU, spread over the front's (supervisor/cpuAffinity.ts).
  'cpu-affinity': z.enum(['auto', 'none'], { message: 'expected auto or none' }).prefault('none'),
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
  'queue-size': int(0, 10_000_000).prefault(DEFAULT_QUEUE_SIZE),
  'queue-timeout': duration.prefault(10_000),
  retries: int(0, 10).prefault(1),
  'pipeline-depth': int(1, 64).prefault(16),
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
  env: z.unknown().transform((v, ctx) => {
    const out: Record<string, string> = {};
    const bad = (message: string) => { ctx.addIssue({ code: 'custom', message }); return z.NEVER; };
    if (v === undefined || v === null) return out;
    if (typeof v === 'string' || Array.isArray(v)) {
      for (const kv of (Array.isArray(v) ? v : [v]) as unknown[]) {
        const eq = typeof kv === 'string' ? kv.indexOf('=') : -1;
        if (eq <= 0) return bad(`expected KEY=VALUE, got ${JSON.stringify(kv)}`);
        out[(kv as string).slice(0, eq)] = (kv as string).slice(eq + 1);
      }
      return out;
    }
    if (typeof v !== 'object') return bad(`expected KEY=VALUE strings or a mapping of KEY: VALUE, got ${JSON.stringify(v)}`);
    for (const [key, value] of Object.entries(v)) {
      if (!['string', 'number', 'boolean'].includes(typeof value)) return bad(`${key}: expected a string, number or boolean, got ${JSON.stringify(value)}`);
      out[key] = String(value);
    }
    return out;
  }).prefault({}),
  'log-level': z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], { message: 'expected trace, debug, info, warn, error, fatal or silent' }).prefault('info'),
  'log-format': z.enum(['json', 'pretty'], { message: 'expected json or pretty' }).optional(),
  command: z.array(z.string()).prefault([]),
}).strict();

export type RunConfigInput = z.input<typeof runSchema>;
type RunConfigParsed = z.output<typeof runSchema>;

/** `read-timeout` → `readTimeout`: the one mapping from the option names (kebab, as flags and file keys) to code. */
type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
type CamelKeys<T> = { [K in keyof T as K extends string ? Camel<K> : K]: T[K] };

export function camelCase(key: string): string {
  return key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The settings of `upfront run`, validated, with defaults; durations in ms, sizes in bytes. */
export type RunConfig = CamelKeys<Omit<RunConfigParsed, 'procs' | 'socket-dir'>> & {
  /** Where backend sockets (and the admin token) go: --socket-dir, or a fresh upfront-PID dir in the temp dir. */
  socketDir: string;
  /** Processes at start (the MIN of MIN:MAX). */
  procs: number;
  /** Autoscale ceiling (= procs when not autoscaling). */
  maxProcs: number;
};

/** The option names (flags without the dashes, file keys), `command` included. */
export const RUN_OPTION_NAMES: readonly string[] = Object.keys(runSchema.shape);

export class ConfigError extends Error {}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length];
}

/** The known option closest to `key`, when it is close enough to be a typo. */
export function didYouMean(key: string, known: readonly string[] = RUN_OPTION_NAMES): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  const k = key.toLowerCase().replace(/_/g, '-');
  for (const name of known) {
    const d = distance(k, name);
    if (d < bestD) { best = name; bestD = d; }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(best.length / 4)) ? best : null;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length ? issue.path.join('.') : '(config)';
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => {
      const guess = didYouMean(k);
      return `${JSON.stringify(k)}${guess ? ` (did you mean "${guess}"?)` : ''}`;
    });
    return `${where}: unknown option${keys.length > 1 ? 's' : ''} ${keys.join(', ')}`;
  }
  return `${where}: ${issue.message}`;
}

/**
 * Validates the merged file and flags (kebab-case keys) into a RunConfig. Everything
 * that can be checked before starting is checked here, so bad input is one line
 * naming the option (ConfigError, exit 2): values, and the directory and user it names.
 */
export function validateRunConfig(input: Record<string, unknown>): RunConfig {
  const result = runSchema.safeParse(input);
  if (!result.success) throw new ConfigError(describeIssue(result.error.issues[0]));
  const { procs: procsRange, 'socket-dir': socketDirOption, ...parsed } = result.data;
  const camel = Object.fromEntries(Object.entries(parsed).map(([k, v]) => [camelCase(k), v])) as CamelKeys<Omit<RunConfigParsed, 'procs' | 'socket-dir'>>;
  // No --procs: one process of COMMAND, or none when only --upstream backends are given.
  const range = procsRange ?? (camel.command.length === 0 && camel.upstream.length > 0 ? { min: 0, max: 0 } : { min: 1, max: 1 });
  const c: RunConfig = {
    ...camel,
    procs: range.min,
    maxProcs: range.max,
    documentRoot: path.resolve(camel.documentRoot),
    socketDir: socketDirOption ?? path.join(os.tmpdir(), `upfront-${process.pid}`),
  };
  if (c.procs > 0 && c.command.length === 0) throw new ConfigError('command: --procs needs a backend command after "--" (or set command: in the config file), or use --upstream');
  if (c.procs === 0 && c.upstream.length === 0) throw new ConfigError('procs: 0 processes and no --upstream: nothing to serve');
  if (c.command.length > 0 && c.procs === 0) throw new ConfigError('procs: a command was given but --procs is 0');
  for (const u of c.upstream) {
    const a = parseAddress(u);
    if (typeof a === 'string') throw new ConfigError(`upstream: ${a}`);
  }
  if (c.pipelineDepth > 1 && c.keepConn === false) c.pipelineDepth = 1;
  if (c.protocol === 'http' && c.socket === 'shared') throw new ConfigError('socket: shared hands a socket to children as fd 0, which HTTP apps do not take; use per-process with --protocol http');
  if (c.protocol === 'http' && (c.overflow === 'nginx' || c.overflow === 'retry')) throw new ConfigError(`overflow: ${c.overflow} reproduces nginx's FastCGI behaviour; with --protocol http use queue or shed`);
  if ((c.tlsCert === undefined) !== (c.tlsKey === undefined)) throw new ConfigError(`${c.tlsCert === undefined ? 'tls-cert' : 'tls-key'}: TLS needs both --tls-cert and --tls-key`);
  if (c.redirectHttp && c.tlsCert === undefined) throw new ConfigError('redirect-http: redirects to https need TLS on the public listener (--tls-cert and --tls-key)');
  if (c.healthCheckPath !== undefined && c.protocol !== 'http') throw new ConfigError('health-check-path: FastCGI upstreams are checked with FCGI_GET_VALUES; a path needs --protocol http');
  if (c.healthCheckInterval > 0 && c.healthCheckInterval < 100) throw new ConfigError(`health-check-interval: at least 100 ms (or 0 for off), got ${c.healthCheckInterval}`);
  if (c.socket === 'shared' && c.maxRequests > 0) throw new ConfigError('max-requests: counts requests per process, which a shared socket cannot tell apart (the kernel picks the child); use --socket per-process, or --max-rss');
  if (c.cwd !== undefined) c.cwd = checkDirectory('cwd', c.cwd);
  if (c.procs > 0) {
    if (!c.command[0].includes('{socket}')) {
      try { resolveCommand(c.command[0], c.cwd ?? process.cwd()); } catch (err) { throw new ConfigError((err as Error).message); }
    }
    if (c.user !== undefined) {
      try { resolveIdentity(c.user, c.group); } catch (err) {
        const message = (err as Error).message;
        throw new ConfigError(`${message.startsWith('--group') ? 'group' : 'user'}: ${message}`);
      }
    } else if (c.group !== undefined) {
      throw new ConfigError('group: --group needs --user');
    }
  }
  return c;
}

/** An existing directory, as an absolute path; else a ConfigError naming the option and the path. */
function checkDirectory(option: string, dir: string): string {
  const full = path.resolve(dir);
  let st: fs.Stats;
  try {
    st = fs.statSync(full);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`${option}: ${full}: ${code === 'ENOENT' ? 'no such directory' : (err as Error).message} (${code})`);
  }
  if (!st.isDirectory()) throw new ConfigError(`${option}: ${full} is not a directory (ENOTDIR)`);
  return full;
}
