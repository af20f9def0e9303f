// What the layer writes that does not depend on the request: status lines built
// once, the Date header cached per second, and the layer's own refusals.
import { STATUS_CODES } from 'node:http';

const STATUS_LINES: string[] = [];
for (let status = 100; status < 600; status++) {
  STATUS_LINES[status] = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
}

/** "HTTP/1.1 200 OK\r\n"; the caller's reason phrase when given. */
export function statusLine(status: number, reason: string | null): string {
  if (reason === null) {
    const line = STATUS_LINES[status];
    if (line !== undefined) return line;
    reason = STATUS_CODES[status] ?? 'Unknown';
  }
  return `HTTP/1.1 ${status} ${reason}\r\n`;
}

export function reasonPhrase(status: number): string {
  return STATUS_CODES[status] ?? 'Unknown';
}

let dateSecond = -1;
let dateLine = '';

/** "Date: Tue, 01 Dec 2026 14:25:29 GMT\r\n", rebuilt when the second changes. */
export function dateHeaderLine(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateLine = `Date: ${new Date(second * 1000).toUTCString()}\r\n`;
  }
  return dateLine;
}

export const CONTINUE_100 = 'HTTP/1.1 100 Continue\r\n\r\n';

/** A refusal by the layer itself: a short text/plain body naming the problem, then close. */
export function refusalResponse(status: number, reason: string): string {
  const body = `${status} ${reasonPhrase(status)}: ${reason}\n`;
  return `${statusLine(status, null)}${dateHeaderLine()}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}
