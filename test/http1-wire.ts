// Raw-socket HTTP/1.1 client side for the http1 tests: send bytes as they are,
// split what comes back into responses (1xx skipped), see whether the server closed.
import net from 'node:net';

export interface RawResponse {
  status: number;
  /** Lowercase name → values in order. */
  headers: Map<string, string[]>;
  head: string;
  body: Buffer;
  /** Interim 1xx responses seen before this one. */
  interim: number[];
}

export interface Talk {
  responses: RawResponse[];
  /** The server closed the connection (FIN or reset). */
  closed: boolean;
  reset: boolean;
  /** Bytes received, all of them. */
  raw: Buffer;
  /** Data events (reads) it took. */
  reads: number;
  ms: number;
}

/** Splits `buf` into responses to requests with `methods` (HEAD: no body). complete=false when the last one is cut. */
export function parseResponses(buf: Buffer, methods: string[], closed: boolean): { responses: RawResponse[]; complete: boolean } {
  const responses: RawResponse[] = [];
  let pos = 0;
  let interim: number[] = [];
  while (pos < buf.length) {
    const headEnd = buf.indexOf('\r\n\r\n', pos);
    if (headEnd === -1) return { responses, complete: false };
    const head = buf.toString('latin1', pos, headEnd);
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0]);
    if (!m) throw new Error(`not a status line: ${JSON.stringify(lines[0])}`);
    const status = Number(m[1]);
    const headers = new Map<string, string[]>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      const list = headers.get(name) ?? [];
      list.push(line.slice(colon + 1).trim());
      headers.set(name, list);
    }
    pos = headEnd + 4;
    if (status < 200) {
      interim.push(status);
      continue;
    }
    const method = methods[responses.length] ?? 'GET';
    let body: Buffer;
    const cl = headers.get('content-length');
    const te = headers.get('transfer-encoding');
    if (method === 'HEAD' || status === 204 || status === 304) body = Buffer.alloc(0);
    else if (te !== undefined && te.join(',').toLowerCase().includes('chunked')) {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', pos);
        if (lineEnd === -1) return { responses, complete: false };
        const size = parseInt(buf.toString('latin1', pos, lineEnd), 16);
        if (Number.isNaN(size)) throw new Error('bad chunk size in a response');
        pos = lineEnd + 2;
        if (size === 0) {
          const end = buf.indexOf('\r\n\r\n', pos - 2);
          if (end === -1) return { responses, complete: false };
          pos = end + 4;
          break;
        }
        if (buf.length < pos + size + 2) return { responses, complete: false };
        parts.push(buf.subarray(pos, pos + size));
        pos += size + 2;
      }
      body = Buffer.concat(parts);
    } else if (cl !== undefined) {
      const n = Number(cl[0]);
      if (buf.length < pos + n) return { responses, complete: false };
      body = buf.subarray(pos, pos + n);
      pos += n;
    } else {
      // Close-delimited.
      if (!closed) return { responses, complete: false };
      body = buf.subarray(pos);
      pos = buf.length;
    }
    responses.push({ status, headers, head, body, interim });
    interim = [];
  }
  return { responses, complete: true };
}

/**
 * Connects, writes `bytes` (one write, or the given pieces with pauses), and reads until
 * `expect` final responses arrived (then up to closeWaitMs more for the server to close), the
 * server closed, or `idleMs` passed without a byte.
 */
export function talk(port: number, bytes: Buffer | Buffer[], opts: { expect: number; methods?: string[]; idleMs?: number; gapMs?: number; host?: string; closeWaitMs?: number }): Promise<Talk> {
  const methods = opts.methods ?? [];
  const idleMs = opts.idleMs ?? 3000;
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = net.connect(port, opts.host ?? '127.0.0.1');
    const chunks: Buffer[] = [];
    let reads = 0;
    let closed = false;
    let reset = false;
    let done = false;
    let idle: NodeJS.Timeout;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      const raw = Buffer.concat(chunks);
      let responses: RawResponse[] = [];
      try {
        responses = parseResponses(raw, methods, closed).responses;
      } catch { /* unparseable: no responses */ }
      socket.destroy();
      resolve({ responses, closed, reset, raw, reads, ms: Date.now() - started });
    };
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(finish, idleMs);
    };
    socket.on('data', (d) => {
      chunks.push(d);
      reads++;
      arm();
      try {
        const { responses } = parseResponses(Buffer.concat(chunks), methods, false);
        if (responses.length >= opts.expect) {
          // Done, or (closeWaitMs) done once the server closes or that long passed.
          if (!opts.closeWaitMs) finish();
          else {
            clearTimeout(idle);
            idle = setTimeout(finish, opts.closeWaitMs);
          }
        }
      } catch { /* wait for close */ }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'ECONNRESET') reset = true; });
    socket.on('close', () => { closed = true; finish(); });
    socket.on('connect', async () => {
      arm();
      if (Buffer.isBuffer(bytes)) socket.write(bytes);
      else {
        for (const piece of bytes) {
          if (done) return;
          socket.write(piece);
          await new Promise((r) => setTimeout(r, opts.gapMs ?? 0));
        }
      }
    });
  });
}
