// The requests each backend serves now, oldest first, and the last one it
// finished: php-fpm's "request method / URI / duration" per process. The proxy
// request calls begin() when it gets a slot and end() when it gives it back; each
// is a map insert or delete, nothing is allocated per request.

/** What the stats show of a request (the proxy request is one). */
export interface ServedRequest {
  readonly head: { readonly method: string; readonly target: string };
  /** Body bytes (-1: unknown, streamed). */
  readonly bodyLength: number;
}

export interface RequestFigures {
  method: string;
  uri: string;
  contentLength: number;
  /** Since the slot was granted (serving now), or how long it took (the last one). */
  durationMs: number;
}

interface BackendRecord {
  /** Insertion order is grant order: the first entry is the oldest. Values: performance.now() at grant. */
  readonly live: Map<ServedRequest, number>;
  last: ServedRequest | null;
  lastBegan: number;
  lastEnded: number;
}

const URI_MAX = 512;

function figures(req: ServedRequest, durationMs: number): RequestFigures {
  const t = req.head.target;
  return {
    method: req.head.method,
    uri: t.length > URI_MAX ? `${t.slice(0, URI_MAX)}…` : t,
    contentLength: Math.max(0, req.bodyLength),
    durationMs: Math.round(durationMs * 1000) / 1000,
  };
}

export class InService {
  private readonly records = new WeakMap<object, BackendRecord>();

  private record(backend: object): BackendRecord {
    let r = this.records.get(backend);
    if (r === undefined) {
      r = { live: new Map(), last: null, lastBegan: 0, lastEnded: 0 };
      this.records.set(backend, r);
    }
    return r;
  }

  /** `req` got a slot on `backend` at `grantedAt` (performance.now()). */
  begin(backend: object, req: ServedRequest, grantedAt: number): void {
    this.record(backend).live.set(req, grantedAt);
  }

  /** `req` gave its slot on `backend` back. */
  end(backend: object, req: ServedRequest): void {
    const r = this.records.get(backend);
    if (r === undefined) return;
    const began = r.live.get(req);
    if (began === undefined) return;
    r.live.delete(req);
    r.last = req;
    r.lastBegan = began;
    r.lastEnded = performance.now();
  }

  /** The oldest request the backend serves now, with how long it has been at it; null when idle. */
  current(backend: object, now = performance.now()): RequestFigures | null {
    const r = this.records.get(backend);
    if (r === undefined) return null;
    for (const [req, began] of r.live) return figures(req, now - began);
    return null;
  }

  /** The last request the backend finished, with how long it took; null before the first. */
  last(backend: object): RequestFigures | null {
    const r = this.records.get(backend);
    return r?.last ? figures(r.last, r.lastEnded - r.lastBegan) : null;
  }

  /** Requests in service at the backend now. */
  count(backend: object): number {
    return this.records.get(backend)?.live.size ?? 0;
  }
}
