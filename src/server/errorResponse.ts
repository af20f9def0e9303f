// Error responses the front writes itself: a status, a one-line reason the client
// can read, and Retry-After where waiting would help.
import type { ServerResponse } from 'node:http';

const REASONS: Record<number, string> = {
  400: 'Bad Request', 404: 'Not Found', 413: 'Payload Too Large', 500: 'Internal Server Error',
  502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

export function sendError(res: ServerResponse, status: number, reason: string, retryAfterSec?: number): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = `${status} ${REASONS[status] ?? ''}: ${reason}\n`;
  const headers: string[] = ['Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(Buffer.byteLength(body)), 'Cache-Control', 'no-store'];
  if (retryAfterSec !== undefined) headers.push('Retry-After', String(retryAfterSec));
  res.writeHead(status, headers);
  res.end(body);
}
