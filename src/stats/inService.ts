// The requests each backend serves now, oldest first, and the last one it
// finished: php-fpm's "request method / URI / duration" per process. The proxy
// request calls begin() when it gets a slot and end() when it gives it back: a push
// onto two short arrays and a removal from them (requests mostly end in the order
// they began), no hashing of the request object, nothing allocated per request.

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
  /** In grant order, the first the oldest; and performance.now() at each grant. */
  readonly live: ServedRequest[];
  readonly began: number[];
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
      r = { live: [], began: [], last: null, lastBegan: 0, lastEnded: 0 };
      this.records.set(backend, r);
    }
    return r;
  }

  /** `req` got a slot on `backend` at `grantedAt` (performance.now()). */
  begin(backend: object, req: ServedRequest, grantedAt: number): void {
    const r = this.record(backend);
    r.live.push(req);
    r.began.push(grantedAt);
  }

  /** `req` gave its slot on `backend` back. */
  end(backend: object, req: ServedRequest): void {
    const r = this.records.get(backend);
    if (r === undefined) return;
    const i = r.live[0] === req ? 0 : r.live.indexOf(req);
    if (i < 0) return;
    r.last = req;
    r.lastBegan = r.began[i];
    r.lastEnded = performance.now();
    if (i === 0) { r.live.shift(); r.began.shift(); } else { r.live.splice(i, 1); r.began.splice(i, 1); }
  }

  /** The oldest request the backend serves now, with how long it has been at it; null when idle. */
  current(backend: object, now = performance.now()): RequestFigures | null {
    const r = this.records.get(backend);
    if (r === undefined || r.live.length === 0) return null;
    return figures(r.live[0], now - r.began[0]);
  }

  /** The last request the backend finished, with how long it took; null before the first. */
  last(backend: object): RequestFigures | null {
    const r = this.records.get(backend);
    return r?.last ? figures(r.last, r.lastEnded - r.lastBegan) : null;
  }

  /** Requests in service at the backend now. */
  count(backend: object): number {
    return this.records.get(backend)?.live.length ?? 0;
  }
}
