// Files served before the app: `--static URL_PREFIX=DIR` mounts (a missing file is
// 404, as nginx's `location /prefix/ { root ...; }`) and `--try-files` over the
// document root (nginx's `try_files $uri @app`: an existing regular file is sent,
// anything else goes to the app). GET and HEAD only; index.html for a mount's
// directories; a .br or .gz sibling when the client takes it. Nothing here blocks:
// every file-system call goes through libuv's pool.
import type { Logger } from 'pino';
import { ACCEPTS_BR, ACCEPTS_GZIP, requestAcceptedEncodings } from '../acceptEncoding.js';
import { sendError } from '../errorResponse.js';
import type { ClientExchange } from '../exchange.js';
import { closeQuietly, sendFile, type FileResponse, type OpenedFile } from './fileResponse.js';
import { openReal, openUnder, realDirectory, type OpenResult } from './fileOpener.js';
import { contentTypeOf, isCompressibleType } from './mimeTypes.js';
import { pathOfTarget, queryOfTarget, relativeFilePath } from './safePath.js';

export interface StaticMount {
  /** URL path prefix ending with '/'. */
  prefix: string;
  dir: string;
}

export interface StaticFilesOptions {
  mounts: readonly StaticMount[];
  /** --try-files: the document root whose files are served before the app; null: off. */
  tryFilesRoot: string | null;
  /** Paths ending with these extensions always go to the app: scripts are run, never sent. */
  scriptExtensions: readonly string[];
}

interface Mount {
  prefix: string;
  /** The prefix without its trailing '/': a request for it is redirected to the prefix. */
  bare: string;
  real: string;
}

const NO_EXTRA: readonly string[] = [];

export class StaticFiles {
  private readonly mounts: Mount[];
  private readonly tryRoot: string | null;

  constructor(private readonly options: StaticFilesOptions, private readonly log: Logger) {
    // Longest prefix first: /assets/img/ wins over /assets/.
    this.mounts = options.mounts.map((m) => ({ prefix: m.prefix, bare: m.prefix.slice(0, -1), real: realDirectory(m.dir, `static ${m.prefix}`) }))
      .sort((a, b) => b.prefix.length - a.prefix.length);
    this.tryRoot = options.tryFilesRoot === null ? null : realDirectory(options.tryFilesRoot, 'try-files (document-root)');
  }

  /**
   * Takes the request when a file may answer it: true means it is answered here, or
   * (try-files, no such file) handed to `toApp` later. false: not a file request.
   */
  handle(ex: ClientExchange, toApp: (ex: ClientExchange) => void): boolean {
    const urlPath = pathOfTarget(ex.target);
    for (const m of this.mounts) {
      if (urlPath.startsWith(m.prefix)) {
        this.fromMount(ex, m, urlPath);
        return true;
      }
      if (urlPath === m.bare && m.bare !== '') {
        redirect(ex, m.prefix + queryOfTarget(ex.target));
        return true;
      }
    }
    if (this.tryRoot === null || (ex.method !== 'GET' && ex.method !== 'HEAD') || this.isScript(urlPath)) return false;
    const v = relativeFilePath(urlPath, 1);
    // Not a clean file path (a directory, '..', a hidden name): the app's business, as with try_files $uri.
    if (!v.ok || v.dir || v.rel === '') return false;
    const root = this.tryRoot;
    openUnder(root, v.rel, (r) => {
      if (r.kind === 'file' && !ex.finished) return this.send(ex, r.file, r.real);
      if (r.kind === 'file') closeQuietly(r.file.fd);
      if (r.kind === 'error') this.log.warn({ path: v.rel, code: r.code }, `try-files: cannot open ${v.rel} under ${root}: ${r.message}; passing the request to the app`);
      if (r.kind === 'outside') this.log.debug({ path: v.rel, real: r.real }, 'try-files: a symlink out of the document root is not served');
      if (!ex.finished) toApp(ex);
    });
    return true;
  }

  private isScript(urlPath: string): boolean {
    const exts = this.options.scriptExtensions;
    if (exts.length === 0) return false;
    const lower = urlPath.toLowerCase();
    for (const e of exts) if (lower.endsWith(e.toLowerCase())) return true;
    return false;
  }

  private fromMount(ex: ClientExchange, m: Mount, urlPath: string): void {
    if (ex.method !== 'GET' && ex.method !== 'HEAD') {
      ex.respond(405, null, ['Allow', 'GET, HEAD', 'Content-Type', 'text/plain; charset=utf-8'], `405 Method Not Allowed: ${m.prefix} serves files (GET, HEAD)\n`);
      return;
    }
    const v = relativeFilePath(urlPath, m.prefix.length);
    if (!v.ok) return sendError(ex, v.status, v.reason);
    openUnder(m.real, v.rel, (r) => this.mountResult(ex, m, urlPath, v.rel, v.dir, r, false));
  }

  private mountResult(ex: ClientExchange, m: Mount, urlPath: string, rel: string, dirAsked: boolean, r: OpenResult, isIndex: boolean): void {
    if (ex.finished) {
      if (r.kind === 'file') closeQuietly(r.file.fd);
      return;
    }
    switch (r.kind) {
      case 'file':
        if (dirAsked && !isIndex) {
          // "/a.txt/": not a directory (nginx answers 404 too).
          closeQuietly(r.file.fd);
          return sendError(ex, 404, 'not found');
        }
        return this.send(ex, r.file, r.real);
      case 'dir':
        if (isIndex) return sendError(ex, 404, 'not found'); // index.html is a directory
        if (!dirAsked) return redirect(ex, urlPath + '/' + queryOfTarget(ex.target));
        openUnder(m.real, rel === '' ? 'index.html' : `${rel}/index.html`, (ir) => this.mountResult(ex, m, urlPath, rel, true, ir, true));
        return;
      case 'outside':
        this.log.debug({ path: rel, real: r.real }, `static ${m.prefix}: a symlink out of ${m.real} is not served`);
        return sendError(ex, 404, 'not found');
      case 'missing':
        return sendError(ex, 404, 'not found');
      case 'error':
        if (r.code === 'EACCES' || r.code === 'EPERM') return sendError(ex, 403, 'forbidden');
        this.log.error({ path: rel, code: r.code }, `static ${m.prefix}: cannot open ${rel} under ${m.real}: ${r.message}`);
        return sendError(ex, 500, `cannot read the file (${r.code})`);
    }
  }

  /** Sends the file, or its .br / .gz sibling when the client takes that encoding. */
  send(ex: ClientExchange, file: OpenedFile, real: string, extra: readonly string[] = NO_EXTRA, contentType?: string): void {
    const type = contentType ?? contentTypeOf(real);
    const compressible = isCompressibleType(type);
    const accepted = compressible ? requestAcceptedEncodings(ex.headers) : 0;
    const plain: FileResponse = { contentType: type, encoding: null, vary: compressible, extra };
    if (accepted === 0) return sendFile(ex, file, plain);
    const trySibling = (encoding: 'br' | 'gzip', next: () => void) => {
      openReal(real + (encoding === 'br' ? '.br' : '.gz'), (r) => {
        if (r.kind !== 'file') return next();
        if (ex.finished) {
          closeQuietly(r.file.fd);
          closeQuietly(file.fd);
          return;
        }
        closeQuietly(file.fd);
        sendFile(ex, r.file, { contentType: type, encoding, vary: true, extra });
      });
    };
    const sendPlain = () => {
      if (ex.finished) return closeQuietly(file.fd);
      sendFile(ex, file, plain);
    };
    const gzip = () => ((accepted & ACCEPTS_GZIP) !== 0 ? trySibling('gzip', sendPlain) : sendPlain());
    if ((accepted & ACCEPTS_BR) !== 0) trySibling('br', gzip);
    else gzip();
  }
}

function redirect(ex: ClientExchange, location: string): void {
  ex.respond(301, null, ['Location', location, 'Content-Type', 'text/plain; charset=utf-8'], `301 Moved Permanently: ${location}\n`);
}
