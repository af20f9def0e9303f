// A request slower than --slow-request, logged once with where its time went:
// waiting in the front queue, getting on the wire to the backend, and the backend
// itself. Called only above the threshold (the request path checks it first).
import type { Logger } from 'pino';

function ms(n: number): number {
  return Math.round(n * 10) / 10;
}

/**
 * Times are performance.now() marks: arrival (from the 20 ms coarse clock unless
 * --server-timing took it exactly), slot granted, request on the wire (0 when not
 * taken: only with --server-timing), and the total from grant in µs.
 */
export function logSlowRequest(log: Logger, head: { readonly method: string; readonly target: string },
  backend: { readonly id: string; readonly pid?: number | undefined }, arrivedAt: number, grantedAt: number, startedAt: number, totalUs: number): void {
  const endedAt = grantedAt + totalUs / 1000;
  const queueMs = ms(Math.max(0, grantedAt - arrivedAt));
  const connectMs = startedAt > 0 ? ms(startedAt - grantedAt) : null;
  const backendMs = ms(endedAt - (startedAt > 0 ? startedAt : grantedAt));
  const uri = head.target.length > 200 ? `${head.target.slice(0, 200)}…` : head.target;
  const split = connectMs !== null
    ? `queue ${queueMs} ms, connect ${connectMs} ms, backend ${backendMs} ms`
    : `queue ${queueMs} ms, connect + backend ${backendMs} ms`;
  log.warn({ slow: true, method: head.method, uri, backend: backend.id, pid: backend.pid, queueMs, connectMs, backendMs, totalMs: ms(queueMs + totalUs / 1000) },
    `slow request "${head.method} ${uri}" on backend ${backend.id}: ${ms(queueMs + totalUs / 1000)} ms (${split})`);
}
