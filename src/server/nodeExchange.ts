// ClientExchange over node:http's IncomingMessage / ServerResponse. A stopgap while
// the lean HTTP/1.1 layer lands; it keeps node:http's behaviour exactly.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ClientConnection } from '../transport.js';
import type { BodySink, ClientEvents, ClientExchange } from './exchange.js';

const connections = new WeakMap<Socket, ClientConnection>();

function connectionOf(socket: Socket): ClientConnection {
  let c = connections.get(socket);
  if (c === undefined) {
    c = { remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0, localAddress: socket.localAddress ?? '', localPort: socket.localPort ?? 0, encrypted: false };
    connections.set(socket, c);
  }
  return c;
}

export class NodeExchange implements ClientExchange {
  readonly method: string;
  readonly target: string;
  readonly versionMinor: number;
  readonly headers: readonly string[];
  readonly host: string | undefined;
  readonly contentType: string | undefined;
  readonly connection: ClientConnection;
  readonly contentLength: number;
  readonly chunked: boolean;
  private pending: { status: number; reason: string | null; headers: string[]; length: number } | null = null;
  private declared = -1;
  private sent = 0;

  constructor(private readonly req: IncomingMessage, private readonly res: ServerResponse) {
    this.method = req.method ?? 'GET';
    this.target = req.url ?? '/';
    this.versionMinor = req.httpVersionMinor;
    this.headers = req.rawHeaders;
    this.host = req.headers.host;
    this.contentType = req.headers['content-type'];
    this.connection = connectionOf(req.socket);
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    this.chunked = te !== undefined;
    this.contentLength = this.chunked ? -1 : cl !== undefined ? Number(cl) : 0;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  get finished(): boolean {
    return this.res.writableEnded || this.res.destroyed;
  }

  readBody(sink: BodySink): void {
    const req = this.req;
    req.on('data', (chunk: Buffer) => { if (!sink.onBodyData(chunk)) req.pause(); });
    req.once('end', () => sink.onBodyEnd());
    req.once('error', (err) => sink.onBodyError(err));
    req.once('close', () => { if (!req.readableEnded) sink.onBodyError(new Error('the client closed the connection while sending the body')); });
  }

  pauseBody(): void { this.req.pause(); }
  resumeBody(): void { this.req.resume(); }

  setClientEvents(events: ClientEvents): void {
    const res = this.res;
    res.on('drain', () => events.onClientDrain());
    res.once('close', () => { if (!res.writableFinished) events.onClientClose(); });
  }

  respond(status: number, reason: string | null, headers: string[], body: Buffer | string | null): void {
    this.pending = null;
    const len = body === null ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    headers.push('Content-Length', String(len));
    if (reason) this.res.writeHead(status, reason, headers);
    else this.res.writeHead(status, headers);
    this.res.end(body ?? undefined);
  }

  writeHead(status: number, reason: string | null, headers: string[], contentLength: number): void {
    this.pending = { status, reason, headers, length: contentLength };
    this.declared = contentLength;
  }

  private flushHead(): void {
    const p = this.pending!;
    this.pending = null;
    if (p.length >= 0) p.headers.push('Content-Length', String(p.length));
    if (p.reason) this.res.writeHead(p.status, p.reason, p.headers);
    else this.res.writeHead(p.status, p.headers);
  }

  write(chunk: Buffer): boolean {
    if (this.res.writableEnded || this.res.destroyed) return true;
    if (this.pending) this.flushHead();
    if (this.declared >= 0 && this.sent + chunk.length > this.declared) {
      // Never past the declared length: the excess would be read as the next response.
      const room = this.declared - this.sent;
      if (room > 0) this.res.write(chunk.subarray(0, room));
      this.sent = this.declared;
      this.res.end();
      this.res.socket?.end();
      return true;
    }
    this.sent += chunk.length;
    return this.res.write(chunk);
  }

  end(): void {
    if (this.res.writableEnded) return;
    if (this.pending) this.flushHead();
    if (this.declared >= 0 && this.sent < this.declared && this.method !== 'HEAD') {
      this.res.destroy(); // shorter than declared: the client must see the cut
      return;
    }
    this.res.end();
  }

  destroy(): void {
    this.res.destroy();
  }
}
