// Error responses the front writes itself: a status, a one-line reason the client
// can read, and Retry-After where waiting would help.
import type { ClientExchange } from './exchange.js';

export const REASONS: Record<number, string> = {
  400: 'Bad Request', 404: 'Not Found', 408: 'Request Timeout', 413: 'Payload Too Large', 414: 'URI Too Long',
  417: 'Expectation Failed', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 501: 'Not Implemented',
  502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout', 505: 'HTTP Version Not Supported',
};

const PLAIN = 'text/plain; charset=utf-8';

export function sendError(exchange: ClientExchange, status: number, reason: string, retryAfterSec?: number): void {
  if (exchange.finished) return;
  if (exchange.headersSent) {
    exchange.destroy(); // the response is cut: the client must not take it for complete
    return;
  }
  const body = `${status} ${REASONS[status] ?? ''}: ${reason}\n`;
  const headers: string[] = retryAfterSec !== undefined
    ? ['Content-Type', PLAIN, 'Cache-Control', 'no-store', 'Retry-After', String(retryAfterSec)]
    : ['Content-Type', PLAIN, 'Cache-Control', 'no-store'];
  exchange.respond(status, REASONS[status] ?? null, headers, body);
}
