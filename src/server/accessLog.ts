// The access log: one line per response, in nginx's combined format (plus request,
// upstream and queue times, backend id and pid) or as JSON lines. Lines are built
// when a response ends and written in batches (every second, or at 64 KiB) through
// libuv's pool, one write in flight: nothing on the request path waits for a disk.
// A file is reopened on SIGUSR1 (logrotate's convention); a disk that cannot keep up
// loses lines (counted, warned about) rather than memory.
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { Backend } from '../pool/backend.js';
import type { ClientConnection } from '../transport.js';
import type { BodySink, ClientEvents, ClientExchange } from './exchange.js';
import { ProxyRequest } from './proxyRequest.js';

export type AccessLogFormat = 'combined' | 'json';

const FLUSH_BYTES = 64 * 1024;
const FLUSH_INTERVAL_MS = 1000;
/** Lines waiting beyond this are dropped: a stuck disk must not grow memory without bound. */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;
/** Writes to a pipe up to PIPE_BUF are atomic: stdout shared with the log stays line-whole. */
const PIPE_BUF = 4096;

export class AccessLog {
  readonly format: AccessLogFormat;
  /** Lines dropped because writing could not keep up (or failed). */
  dropped = 0;
  written = 0;
  private fd = -1;
  private pending: string[] = [];
  private pendingBytes = 0;
  private writing = false;
  private reopenAsked = false;
  private timer: NodeJS.Timeout | null = null;
  private lastWarn = 0;
  private closed = false;

  /** `target`: "stdout" or a file path (opened for appending, created mode 0640). */
  constructor(readonly target: string, format: AccessLogFormat, private readonly log: Logger) {
    this.format = format;
    this.fd = target === 'stdout' ? 1 : openLogFile(target);
    this.timer = setInterval(this.flush, FLUSH_INTERVAL_MS);
    this.timer.unref();
  }

  /** Queues one line (ending with \n). */
  add(line: string): void {
    if (this.pendingBytes > MAX_PENDING_BYTES) {
      this.dropped++;
      this.warn(`access log ${this.target} cannot keep up; lines are dropped`);
      return;
    }
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
  }

  /** SIGUSR1: after the write in flight, the file is closed and opened again by its name. */
  reopen(): void {
    if (this.target === 'stdout' || this.closed) return;
    this.reopenAsked = true;
    if (!this.writing) this.doReopen();
  }

  private doReopen(): void {
    this.reopenAsked = false;
    let fd: number;
    try {
      fd = openLogFile(this.target);
    } catch (err) {
      this.log.error({ accessLog: this.target }, `access log: cannot reopen: ${(err as Error).message}; writing on to the old file`);
      return;
    }
    const old = this.fd;
    this.fd = fd;
    fs.close(old, () => {});
    this.log.info({ accessLog: this.target }, `access log ${this.target} reopened`);
  }

  readonly flush = (): void => {
    if (this.writing || this.pending.length === 0 || this.fd < 0) return;
    let text: string;
    if (this.fd === 1) {
      // stdout: at most PIPE_BUF bytes per write, cut at line ends.
      let n = 0;
      let bytes = 0;
      while (n < this.pending.length && (n === 0 || bytes + this.pending[n].length <= PIPE_BUF)) bytes += this.pending[n++].length;
      if (n === this.pending.length) {
        text = this.pending.join('');
        this.pending = [];
      } else text = this.pending.splice(0, n).join('');
      this.pendingBytes -= bytes;
    } else {
      text = this.pending.join('');
      this.pending = [];
      this.pendingBytes = 0;
    }
    this.writing = true;
    const lines = countLines(text);
    fs.write(this.fd, text, null, 'latin1', (err) => {
      this.writing = false;
      if (err) {
        this.dropped += lines;
        this.warn(`access log ${this.target}: write failed: ${err.message} (${(err as NodeJS.ErrnoException).code}); ${lines} lines lost`);
      } else this.written += lines;
      if (this.reopenAsked) this.doReopen();
      if (this.pendingBytes >= FLUSH_BYTES || (this.fd === 1 && this.pending.length > 0) || this.closed) this.flush();
    });
  };

  private warn(message: string): void {
    const now = Date.now();
    if (now - this.lastWarn < 60_000) return;
    this.lastWarn = now;
    this.log.warn({ accessLog: this.target, dropped: this.dropped }, message);
  }

  /** At stop: what is queued is written synchronously, the file closed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const text = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    try {
      if (text.length > 0) {
        // Any write still in flight finishes on its own; O_APPEND keeps both whole.
        fs.writeSync(this.fd, text, null, 'latin1');
        this.written += countLines(text);
      }
    } catch (err) {
      this.log.warn({ accessLog: this.target }, `access log: last lines lost: ${(err as Error).message}`);
    }
    if (this.fd !== 1) {
      const fd = this.fd;
      this.fd = -1;
      if (this.writing) setImmediate(() => fs.close(fd, () => {}));
      else fs.close(fd, () => {});
    }
  }
}

function openLogFile(file: string): number {
  try {
    return fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o640);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`access-log: cannot open ${file} for appending: ${e.message}${e.code === 'ENOENT' ? ' (does its directory exist?)' : e.code === 'EACCES' ? ' (permission denied: choose a writable path)' : ''}`);
  }
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

// ---- one line

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
let stampSecond = -1;
let stampLocal = '';
let stampIso = '';

const pad2 = (n: number) => (n < 10 ? '0' : '') + n;

/** nginx's $time_local and $time_iso8601, made once per second. */
function stamps(nowMs: number): void {
  const sec = Math.floor(nowMs / 1000);
  if (sec === stampSecond) return;
  stampSecond = sec;
  const d = new Date(sec * 1000);
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const abs = Math.abs(off);
  stampLocal = `${pad2(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())} ${sign}${pad2(Math.floor(abs / 60))}${pad2(abs % 60)}`;
  stampIso = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}T${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}${sign}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
}

const NEEDS_ESCAPE = /[^ !#-[\]-~]/;

/** nginx's escaping for the combined format: ", \ and bytes outside 0x20-0x7e as \xHH. */
export function escapeCombined(s: string): string {
  // The common case, checked by the regexp engine: nothing to escape.
  if (!NEEDS_ESCAPE.test(s)) return s;
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) break;
  }
  let out = s.slice(0, i);
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c ? `\\x${(c & 0xff).toString(16).toUpperCase().padStart(2, '0')}` : s[i];
  }
  return out;
}

export interface AccessRecord {
  remoteAddr: string;
  method: string;
  target: string;
  protocol: string;
  status: number;
  bytes: number;
  referer: string | undefined;
  userAgent: string | undefined;
  host: string | undefined;
  /** Seconds. */
  requestTime: number;
  upstreamTime: number | null;
  queueTime: number | null;
  backend: string | null;
  pid: number | null;
}

/** Seconds with three decimals, as nginx prints times (toFixed costs more, per line). */
function secs3(s: number): string {
  const ms = Math.round(s * 1000);
  const frac = ms % 1000;
  return `${(ms - frac) / 1000}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`;
}
const secs = (s: number | null) => (s === null ? '-' : secs3(s));

export function formatAccessLine(format: AccessLogFormat, r: AccessRecord, nowMs: number): string {
  stamps(nowMs);
  if (format === 'combined') {
    return `${r.remoteAddr} - - [${stampLocal}] "${escapeCombined(r.method)} ${escapeCombined(r.target)} ${r.protocol}" ${r.status} ${r.bytes} `
      + `"${r.referer === undefined ? '-' : escapeCombined(r.referer)}" "${r.userAgent === undefined ? '-' : escapeCombined(r.userAgent)}" `
      + `rt=${secs(r.requestTime)} ut=${secs(r.upstreamTime)} qt=${secs(r.queueTime)} backend=${r.backend ?? '-'} pid=${r.pid ?? '-'}\n`;
  }
  // Strings are latin1 views of the bytes sent; JSON.stringify escapes what JSON needs.
  return `{"time":"${stampIso}","remote_addr":${JSON.stringify(r.remoteAddr)},"method":${JSON.stringify(r.method)},"uri":${JSON.stringify(r.target)},`
    + `"protocol":"${r.protocol}","status":${r.status},"bytes_sent":${r.bytes},"request_time":${secs3(r.requestTime)},`
    + `"upstream_time":${r.upstreamTime === null ? 'null' : secs3(r.upstreamTime)},"queue_time":${r.queueTime === null ? 'null' : secs3(r.queueTime)},`
    + `"backend":${r.backend === null ? 'null' : JSON.stringify(r.backend)},"pid":${r.pid ?? 'null'},`
    + `"host":${r.host === undefined ? 'null' : JSON.stringify(r.host)},"referer":${r.referer === undefined ? 'null' : JSON.stringify(r.referer)},`
    + `"user_agent":${r.userAgent === undefined ? 'null' : JSON.stringify(r.userAgent)}}\n`;
}

/** Knows the request (a ProxyRequest) that owns a wrapped exchange, for backend and timings. */
export interface OwnerAware {
  noteOwner(owner: object): void;
}

/**
 * A client exchange that writes its access-log line when its response ends (or is
 * cut, or the client leaves: 499, as nginx). Innermost of the wrappers, so it counts
 * the bytes the client is sent.
 */
export class LoggedExchange implements ClientExchange, ClientEvents, OwnerAware {
  readonly method: string;
  readonly target: string;
  readonly versionMinor: number;
  readonly headers: readonly string[];
  readonly host: string | undefined;
  readonly contentType: string | undefined;
  readonly connection: ClientConnection;
  readonly contentLength: number;
  readonly chunked: boolean;
  private events: ClientEvents | null = null;
  private proxy: ProxyRequest | null = null;
  private readonly t0 = performance.now();
  private status = 0;
  private bytes = 0;
  private logged = false;

  constructor(readonly inner: ClientExchange, private readonly accessLog: AccessLog) {
    this.method = inner.method;
    this.target = inner.target;
    this.versionMinor = inner.versionMinor;
    this.headers = inner.headers;
    this.host = inner.host;
    this.contentType = inner.contentType;
    this.connection = inner.connection;
    this.contentLength = inner.contentLength;
    this.chunked = inner.chunked;
    inner.setClientEvents(this);
  }

  get headersSent(): boolean { return this.inner.headersSent; }
  get finished(): boolean { return this.inner.finished; }
  get maxResponseHeadBytes(): number | undefined { return this.inner.maxResponseHeadBytes; }

  readBody(sink: BodySink): void { this.inner.readBody(sink); }
  pauseBody(): void { this.inner.pauseBody(); }
  resumeBody(): void { this.inner.resumeBody(); }

  setClientEvents(events: ClientEvents): void {
    this.events = events;
    this.noteOwner(events);
  }

  noteOwner(owner: object): void {
    if (owner instanceof ProxyRequest) this.proxy = owner;
  }

  respond(status: number, reason: string | null, headers: string[], body: Buffer | string | null): void {
    if (this.inner.finished) return;
    this.status = status;
    if (body !== null && this.method !== 'HEAD' && status !== 204 && status !== 304) this.bytes = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    this.inner.respond(status, reason, headers, body);
    this.writeLine();
  }

  writeHead(status: number, reason: string | null, headers: string[], contentLength: number): void {
    if (this.status === 0) this.status = status;
    this.inner.writeHead(status, reason, headers, contentLength);
  }

  write(chunk: Buffer): boolean {
    if (this.method !== 'HEAD') this.bytes += chunk.length;
    return this.inner.write(chunk);
  }

  end(): void {
    this.inner.end();
    this.writeLine();
  }

  destroy(): void {
    this.inner.destroy();
    this.writeLine();
  }

  onClientDrain(): void {
    this.events?.onClientDrain();
  }

  onClientClose(): void {
    if (!this.logged && this.status === 0) this.status = 499; // nginx: the client closed the request
    this.writeLine();
    this.events?.onClientClose();
  }

  private writeLine(): void {
    if (this.logged) return;
    this.logged = true;
    const now = performance.now();
    const p = this.proxy;
    const granted = p === null ? 0 : p.tGranted;
    const backend: Backend | null = p === null ? null : p.servedBy;
    // Referer and User-Agent in one pass, without lowercasing copies.
    const h = this.headers;
    let referer: string | undefined;
    let userAgent: string | undefined;
    for (let i = 0; i < h.length; i += 2) {
      const n = h[i];
      if (n.length === 7 && referer === undefined && sameName(n, 'referer')) referer = h[i + 1];
      else if (n.length === 10 && userAgent === undefined && sameName(n, 'user-agent')) userAgent = h[i + 1];
    }
    const v = (this.inner as { protocol?: string }).protocol;
    this.accessLog.add(formatAccessLine(this.accessLog.format, {
      remoteAddr: this.connection.remoteAddress,
      method: this.method,
      target: this.target,
      protocol: v ?? (this.versionMinor === 0 ? 'HTTP/1.0' : 'HTTP/1.1'),
      status: this.status,
      bytes: this.bytes,
      referer,
      userAgent,
      host: this.host,
      requestTime: (now - this.t0) / 1000,
      upstreamTime: granted > 0 ? (now - granted) / 1000 : null,
      queueTime: granted > 0 ? Math.max(0, granted - this.t0) / 1000 : null,
      backend: backend === null ? null : backend.id,
      pid: backend === null ? null : backend.pid ?? null,
    }, Date.now()));
  }
}

/** ASCII case-insensitive equality with a lowercase name of the same length. */
function sameName(name: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}
