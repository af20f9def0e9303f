// X-Accel-Redirect and X-Sendfile: the app authorises a download, the front sends
// the file (nginx's internal locations, lighttpd's and Apache's X-Sendfile). Only
// directories named with --internal-location are reachable this way, and never from
// a client directly. The backend's body is dropped; its Content-Type,
// Content-Disposition, Cache-Control, Expires and Set-Cookie stay (as nginx keeps them).
import path from 'node:path';
import type { Logger } from 'pino';
import type { ResponseHead } from '../../transport.js';
import { sendError } from '../errorResponse.js';
import type { ClientExchange } from '../exchange.js';
import { closeQuietly } from './fileResponse.js';
import { isInside, openUnder, realDirectory } from './fileOpener.js';
import { relativeFilePath } from './safePath.js';
import type { StaticFiles, StaticMount } from './staticFiles.js';

/** What the backend asked the front to send. */
export interface FileHandoff {
  kind: 'accel' | 'sendfile';
  /** X-Accel-Redirect: a URI path; X-Sendfile: an absolute file path. */
  value: string;
  /** The backend's fields kept on the file's response. */
  kept: string[];
}

const KEPT = new Set(['content-type', 'content-disposition', 'cache-control', 'expires', 'set-cookie']);

interface Location { prefix: string; real: string }

export class InternalLocations {
  private readonly locations: Location[];

  constructor(locations: readonly StaticMount[], private readonly files: StaticFiles, private readonly log: Logger) {
    this.locations = locations.map((l) => ({ prefix: l.prefix, real: realDirectory(l.dir, `internal-location ${l.prefix}`) }))
      .sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /**
   * The response names a file for the front to send: its X-Accel-Redirect / X-Sendfile
   * field, and the fields kept for the file's response. null: an ordinary response.
   */
  handoffOf(head: ResponseHead): FileHandoff | null {
    const h = head.headers;
    let found = -1;
    for (let i = 0; i < h.length; i += 2) {
      const n = h[i].length;
      if ((n === 16 && h[i].toLowerCase() === 'x-accel-redirect') || (n === 10 && h[i].toLowerCase() === 'x-sendfile')) { found = i; break; }
    }
    if (found < 0) return null;
    const kept: string[] = [];
    for (let i = 0; i < h.length; i += 2) if (KEPT.has(h[i].toLowerCase())) kept.push(h[i], h[i + 1]);
    return { kind: h[found].length === 16 ? 'accel' : 'sendfile', value: h[found + 1].trim(), kept };
  }

  /** Answers the client with the file the backend named (or 404 / 502 saying why not). */
  serve(ex: ClientExchange, handoff: FileHandoff, backendId: string): void {
    if (ex.finished) return;
    const refuse = (why: string) => {
      this.log.error({ backend: backendId, [handoff.kind === 'accel' ? 'xAccelRedirect' : 'xSendfile']: handoff.value.slice(0, 300) },
        `${handoff.kind === 'accel' ? 'X-Accel-Redirect' : 'X-Sendfile'} ${JSON.stringify(handoff.value.slice(0, 200))} from backend ${backendId}: ${why}`);
      sendError(ex, 502, 'the backend named a file the front may not send');
    };
    let root: string;
    let rel: string;
    if (handoff.kind === 'accel') {
      const q = handoff.value.indexOf('?');
      const uri = q < 0 ? handoff.value : handoff.value.slice(0, q);
      const loc = this.locations.find((l) => uri.startsWith(l.prefix));
      if (loc === undefined) return refuse(`it matches no --internal-location (${this.locations.map((l) => l.prefix).join(', ')})`);
      const v = relativeFilePath(uri, loc.prefix.length);
      if (!v.ok) return refuse(v.reason);
      if (v.rel === '' || v.dir) return refuse('it names a directory');
      root = loc.real;
      rel = v.rel;
    } else {
      // A file path: it must lie under one of the internal directories (checked again on the real path).
      const p = path.resolve('/', handoff.value);
      const loc = this.locations.find((l) => isInside(p, l.real));
      if (loc === undefined || p === loc.real) return refuse(`it is not under an --internal-location directory (${this.locations.map((l) => l.real).join(', ')})`);
      const v = relativeFilePath(p.slice(loc.real.length + 1).split('/').map(encodeURIComponent).join('/'), 0);
      if (!v.ok) return refuse(v.reason);
      root = loc.real;
      rel = v.rel;
    }
    openUnder(root, rel, (r) => {
      if (ex.finished) {
        if (r.kind === 'file') closeQuietly(r.file.fd);
        return;
      }
      switch (r.kind) {
        case 'file': {
          const typeAt = r.kind === 'file' ? handoff.kept.findIndex((v, i) => i % 2 === 0 && v.toLowerCase() === 'content-type') : -1;
          const type = typeAt >= 0 ? handoff.kept[typeAt + 1] : undefined;
          const extra = typeAt >= 0 ? handoff.kept.filter((_, i) => i !== typeAt && i !== typeAt + 1) : handoff.kept;
          return this.files.send(ex, r.file, r.real, extra, type);
        }
        case 'missing':
        case 'dir':
          return sendError(ex, 404, 'not found');
        case 'outside':
          return refuse('it resolves (through a symlink) outside its internal location');
        case 'error':
          if (r.code === 'EACCES' || r.code === 'EPERM') return sendError(ex, 403, 'forbidden');
          return refuse(`cannot open it: ${r.message}`);
      }
    });
  }
}
