// The FastCGI transport and connection over a real unix socket, with the test as the
// application: it reads the records upfront writes and answers with the records it
// chooses (in order, out of order, cut short, garbage). No process, no mock of the
// kernel: what the handler sees, in which order, and what went over the wire.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CgiParamsEncoder } from '../src/fastcgi/cgiParams.js';
import { decodePairs } from '../src/fastcgi/nameValue.js';
import { RecordType } from '../src/fastcgi/protocol.js';
import { encodeRecord, encodeStream, RecordDecoder } from '../src/fastcgi/records.js';
import { FcgiTransport } from '../src/fastcgi/transport.js';
import { Capabilities, type RequestControl, type ResponseHandler, type ResponseHead, type TransportError, type TransportRequest } from '../src/transport.js';

/** One request as the application received it. */
interface AppRequest {
  id: number;
  keepConn: boolean;
  params: Record<string, string>;
  stdin: Buffer;
  socket: net.Socket;
  /** Answers: STDOUT bytes (a CGI head and body), then END_REQUEST. */
  respond(stdout: string, protocolStatus?: number): void;
}

/** A FastCGI application played by the test, on a unix socket. */
async function fakeApp(dir: string, onRequest: (r: AppRequest) => void) {
  const socketPath = path.join(dir, 'app.sock');
  const connections: net.Socket[] = [];
  const server = net.createServer((socket) => {
    connections.push(socket);
    const open = new Map<number, { keepConn: boolean; params: Buffer[]; stdin: Buffer[] }>();
    const decoder = new RecordDecoder({
      onRecord: (type, id, content) => {
        if (type === RecordType.BeginRequest) { open.set(id, { keepConn: (content[2] & 1) === 1, params: [], stdin: [] }); return; }
        const r = open.get(id);
        if (!r) return;
        if (type === RecordType.Params) r.params.push(Buffer.from(content));
        if (type === RecordType.Stdin) {
          if (content.length > 0) { r.stdin.push(Buffer.from(content)); return; }
          open.delete(id);
          onRequest({
            id, keepConn: r.keepConn, params: Object.fromEntries(decodePairs(Buffer.concat(r.params))), stdin: Buffer.concat(r.stdin), socket,
            respond: (stdout, protocolStatus = 0) => {
              const end = Buffer.alloc(8);
              end[4] = protocolStatus;
              socket.write(Buffer.concat([encodeStream(RecordType.Stdout, id, Buffer.from(stdout, 'latin1')), encodeRecord(RecordType.Stdout, id), encodeRecord(RecordType.EndRequest, id, end)]));
            },
          });
        }
      },
      onProtocolError: (reason) => { throw new Error(`the front wrote invalid FastCGI: ${reason}`); },
    });
    socket.on('data', (c) => decoder.push(c));
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  return { socketPath, connections, close: () => new Promise<void>((r) => { for (const c of connections) c.destroy(); server.close(() => r()); }) };
}

/** Records the handler calls in order; resolves `done` at onRelease. */
class Recorder implements ResponseHandler {
  readonly calls: string[] = [];
  head: ResponseHead | null = null;
  body = '';
  error: TransportError | null = null;
  control: RequestControl | null = null;
  readonly done: Promise<void>;
  private release!: () => void;
  constructor() { this.done = new Promise((r) => { this.release = r; }); }
  onStart(control: RequestControl): void { this.control = control; this.calls.push('start'); }
  onBodyDrain(): void { this.calls.push('drain'); }
  onHead(head: ResponseHead): void { this.head = head; this.calls.push('head'); }
  onBody(chunk: Buffer): boolean { this.body += chunk.toString('latin1'); if (this.calls.at(-1) !== 'body') this.calls.push('body'); return true; }
  onEnd(): void { this.calls.push('end'); }
  onError(err: TransportError): void { this.error = err; this.calls.push(`error:${err.kind}`); }
  onStderr(): void { this.calls.push('stderr'); }
  onRelease(): void { this.calls.push('release'); this.release(); }
}

const connection = { remoteAddress: '127.0.0.1', remotePort: 1234, localAddress: '127.0.0.1', localPort: 8080, encrypted: false };
const request = (target: string, bodyLength = 0, method = 'GET'): TransportRequest => ({
  head: { method, target, versionMinor: 1, headers: ['Host', 'test'], host: 'test', contentType: undefined, connection },
  bodyLength, pipelinable: bodyLength === 0, receivedAt: Date.now(),
});

const cleanups: Array<() => unknown> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

async function setup(onRequest: (r: AppRequest) => void, caps: { multiplexed?: boolean; slots?: number } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'upfront-fcgi-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const app = await fakeApp(dir, onRequest);
  cleanups.push(() => app.close());
  const encoder = new CgiParamsEncoder({ documentRoot: dir, serverSoftware: 'upfront/test', passUnderscoreHeaders: false, passProxyHeader: false, extra: [], scriptExtensions: [] });
  const capabilities = new Capabilities({ multithreaded: (caps.slots ?? 1) > 1, multiplexed: caps.multiplexed ?? false, slots: caps.slots ?? 1,
    answersGetValues: false, keepConn: true, pipelineDepth: 1, source: 'test' });
  const connectErrors: string[] = [];
  let drained: (() => void) | null = null;
  const transport = new FcgiTransport({ address: { path: app.socketPath }, readTimeoutMs: 5000, connectTimeoutMs: 1000, maxHeadBytes: 1 << 20, retryEagain: false, perRequestConnections: false, encoder },
    capabilities, { onDrain: () => drained?.(), onConnectError: (code) => connectErrors.push(code), onProtocolError: () => {} });
  cleanups.push(() => transport.close(true));
  /** Resolves when the transport next says it has room (a connection became usable). */
  const nextDrain = () => new Promise<void>((r) => { drained = r; });
  return { app, transport, connectErrors, nextDrain };
}

describe('FastCGI over a real socket, the test as the application', () => {
  it('one request: start, head, body, end, release — in that order; FCGI_KEEP_CONN; the next reuses the connection', async () => {
    const seen: AppRequest[] = [];
    const { app, transport } = await setup((r) => { seen.push(r); r.respond(`Status: 201 Made\r\nContent-Type: text/plain\r\nX-Id: ${r.id}\r\n\r\nhello ${r.params.PATH_INFO}`); });
    const first = new Recorder();
    transport.dispatch(request('/one?q=1'), first);
    await first.done;
    expect(first.calls).toEqual(['start', 'head', 'body', 'end', 'release']);
    expect(first.head).toMatchObject({ status: 201, reason: 'Made', headers: ['Content-Type', 'text/plain', 'X-Id', '1'], contentLength: -1 });
    expect(first.body).toBe('hello /one');
    expect(seen[0]).toMatchObject({ id: 1, keepConn: true, params: { REQUEST_METHOD: 'GET', QUERY_STRING: 'q=1', PATH_INFO: '/one', HTTP_HOST: 'test' } });
    const second = new Recorder();
    expect(transport.canTake(true)).toBe(true);
    transport.dispatch(request('/two'), second);
    await second.done;
    expect(second.body).toBe('hello /two');
    expect(app.connections).toHaveLength(1);
    expect(transport.figures).toEqual({ connectionsOpened: 1, openConnections: 1 });
  });

  it('a request body is streamed as STDIN, ended by an empty record', async () => {
    const { transport } = await setup((r) => r.respond(`Content-Length: ${r.stdin.length}\r\n\r\n${r.stdin.toString('latin1')}`));
    const rec = new Recorder();
    transport.dispatch(request('/echo', 11, 'POST'), rec);
    rec.control!.writeBody(Buffer.from('hello '));
    rec.control!.writeBody(Buffer.from('world'));
    await rec.done;
    expect(rec.calls).toEqual(['start', 'head', 'body', 'end', 'release']);
    expect(rec.head!.contentLength).toBe(11);
    expect(rec.body).toBe('hello world');
  });

  it('multiplexed: two requests share one connection with their own ids, answered out of order', async () => {
    const pending: AppRequest[] = [];
    const { app, transport, nextDrain } = await setup((r) => {
      if (r.params.PATH_INFO === '/first') { r.respond('\r\nfirst'); return; }
      pending.push(r);
      if (pending.length === 2) for (const p of [...pending].reverse()) p.respond(`\r\nbody of ${p.params.PATH_INFO} on id ${p.id}`);
    }, { multiplexed: true, slots: 2 });
    // A fresh connection carries one request until it has shown it stays open after one.
    const first = new Recorder();
    transport.dispatch(request('/first'), first);
    expect(transport.canTake(true)).toBe(false);
    const proven = nextDrain();
    await first.done;
    await proven;
    const a = new Recorder();
    const b = new Recorder();
    transport.dispatch(request('/a'), a);
    expect(transport.canTake(true)).toBe(true);
    transport.dispatch(request('/b'), b);
    await Promise.all([a.done, b.done]);
    expect([a.body, b.body]).toEqual(['body of /a on id 1', 'body of /b on id 2']);
    expect(app.connections).toHaveLength(1);
  });

  it.skipIf(!fs.existsSync('/proc/thread-self/io'))('requests put on one connection in the same turn go out in one write() (one wake-up of the app, not one each)', async () => {
    const { app, transport, nextDrain } = await setup((r) => r.respond(`\r\n${r.params.PATH_INFO}`), { multiplexed: true, slots: 8 });
    const first = new Recorder();
    const proven = nextDrain();
    transport.dispatch(request('/first'), first);
    await first.done;
    await proven;
    // This thread's write syscalls (the app played here answers only once it has read,
    // in a later turn): the five heads are held until the turn's synchronous work ends.
    const writes = () => Number(/syscw:\s+(\d+)/.exec(fs.readFileSync('/proc/thread-self/io', 'latin1'))![1]);
    const before = writes();
    const five = ['/1', '/2', '/3', '/4', '/5'].map((p) => { const r = new Recorder(); transport.dispatch(request(p), r); return r; });
    const held = writes();
    await new Promise<void>((r) => process.nextTick(r));
    const after = writes();
    expect([held - before, after - held]).toEqual([0, 1]);
    await Promise.all(five.map((r) => r.done));
    expect(five.map((r) => r.body)).toEqual(['/1', '/2', '/3', '/4', '/5']);
    expect(app.connections).toHaveLength(1);
  });

  it('closed mid-response: an error after the head (not "not started"), then release', async () => {
    const { transport } = await setup((r) => {
      r.socket.write(encodeStream(RecordType.Stdout, r.id, Buffer.from('Content-Length: 100\r\n\r\npartial')));
      setImmediate(() => r.socket.destroy());
    });
    const rec = new Recorder();
    transport.dispatch(request('/cut'), rec);
    await rec.done;
    expect(rec.calls).toEqual(['start', 'head', 'body', 'error:closed', 'release']);
    expect(rec.error).toMatchObject({ notStarted: false });
  });

  it('closed before any answer on a fresh connection: "not started", a refusal that may go elsewhere', async () => {
    const { transport } = await setup((r) => r.socket.destroy());
    const rec = new Recorder();
    transport.dispatch(request('/refused'), rec);
    await rec.done;
    expect(rec.calls).toEqual(['start', 'error:closed', 'release']);
    expect(rec.error).toMatchObject({ notStarted: true, freshConnection: true });
  });

  it('garbage from the application: a protocol error, the connection dropped', async () => {
    const { transport } = await setup((r) => r.socket.write(Buffer.from('HTTP/1.1 200 OK\r\n\r\n')));
    const rec = new Recorder();
    transport.dispatch(request('/garbage'), rec);
    await rec.done;
    expect(rec.calls).toEqual(['start', 'error:protocol', 'release']);
    expect(rec.error!.message).toMatch(/^backend sent invalid FastCGI: /);
    expect(transport.figures.openConnections).toBe(0);
  });

  it('FCGI_OVERLOADED: an "overloaded" error, not started', async () => {
    const { transport } = await setup((r) => r.respond('', 2)); // FCGI_OVERLOADED
    const rec = new Recorder();
    transport.dispatch(request('/busy'), rec);
    await rec.done;
    expect(rec.calls).toEqual(['start', 'error:overloaded', 'release']);
    expect(rec.error).toMatchObject({ notStarted: true });
  });

  it('FCGI_OVERLOADED on one kept connection: the next request goes to another idle one first', async () => {
    let armed = false;
    let refusing: net.Socket | null = null;
    const { app, transport } = await setup((r) => {
      if (armed && refusing === null) refusing = r.socket;
      if (r.socket === refusing) r.respond('', 2); // FCGI_OVERLOADED: this child's threads are all busy
      else r.respond(`\r\n${r.params.PATH_INFO}`);
    }, { slots: 2 });
    const a = new Recorder();
    const b = new Recorder();
    transport.dispatch(request('/a'), a);
    transport.dispatch(request('/b'), b);
    await Promise.all([a.done, b.done]);
    expect(app.connections).toHaveLength(2);
    armed = true;
    const refused = new Recorder();
    transport.dispatch(request('/c'), refused);
    await refused.done;
    expect(refused.calls).toEqual(['start', 'error:overloaded', 'release']);
    const next = new Recorder();
    transport.dispatch(request('/d'), next);
    await next.done;
    expect(next.calls).toEqual(['start', 'head', 'body', 'end', 'release']);
    expect(next.body).toBe('/d');
    expect(transport.figures).toEqual({ connectionsOpened: 2, openConnections: 2 });
  });

  it('nobody listening: a connect error with nginx\'s wording and the errno', async () => {
    const { app, transport, connectErrors } = await setup(() => {});
    await app.close();
    fs.rmSync(app.socketPath, { force: true });
    const rec = new Recorder();
    transport.dispatch(request('/x'), rec);
    await rec.done;
    expect(rec.calls).toEqual(['start', 'error:connect', 'release']);
    expect(rec.error!.message).toBe(`connect() to unix:${app.socketPath} failed (2: No such file or directory)`);
    expect(connectErrors).toEqual(['ENOENT']);
  });
});
