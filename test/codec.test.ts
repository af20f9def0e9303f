// The FastCGI codec: round trips, records split at every byte boundary, and a
// decoder fed random bytes that never throws out nor hangs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CgiHeadError, CgiHeadParser } from '../src/fastcgi/cgiResponse.js';
import { CgiParamsEncoder } from '../src/fastcgi/cgiParams.js';
import { decodePairs, encodePairs, NameValueDecoder } from '../src/fastcgi/nameValue.js';
import { RecordType } from '../src/fastcgi/protocol.js';
import { encodeRecord, encodeStream, RecordDecoder } from '../src/fastcgi/records.js';

type Rec = { type: number; id: number; content: Buffer };

/**
 * Decodes `chunks`; stream records (STDOUT, STDERR) come in pieces as they arrive, so
 * consecutive non-empty pieces of one stream are joined back into the record they came from.
 */
function decodeAll(chunks: Buffer[]): { records: Rec[]; error: string | null } {
  const records: Rec[] = [];
  let error: string | null = null;
  let open: Rec | null = null; // a stream record still receiving pieces
  const d = new RecordDecoder({
    onRecord: (type, id, content) => {
      const stream = type === RecordType.Stdout || type === RecordType.Stderr;
      if (stream && content.length > 0 && open && open.type === type && open.id === id && pieceLeft > 0) {
        open.content = Buffer.concat([open.content, content]);
      } else {
        open = { type, id, content: Buffer.from(content) };
        records.push(open);
      }
      pieceLeft = 0;
    },
    onProtocolError: (reason) => { error = reason; },
  });
  let pieceLeft = 0;
  for (const c of chunks) {
    d.push(c);
    pieceLeft = 1; // a chunk boundary: the next piece may continue the open record
  }
  return { records, error };
}

describe('records', () => {
  it('pads to 8 and splits content at 65535', () => {
    const data = Buffer.alloc(65535 * 2 + 10, 7);
    const wire = encodeStream(RecordType.Stdin, 3, data);
    const { records } = decodeAll([wire]);
    expect(records.map((r) => r.content.length)).toEqual([65535, 65535, 10]);
    expect(Buffer.concat(records.map((r) => r.content)).equals(data)).toBe(true);
    expect(wire.length % 8).toBe(0);
    expect(records.every((r) => r.type === RecordType.Stdin && r.id === 3)).toBe(true);
  });

  it('decodes the same records whatever byte boundaries the stream is split at', () => {
    const wire = Buffer.concat([
      encodeRecord(RecordType.Stdout, 1, Buffer.from('Status: 200 OK\r\n\r\nhello')),
      encodeRecord(RecordType.Stderr, 1, Buffer.from('warn')),
      encodeRecord(RecordType.Stdout, 1),
      encodeRecord(RecordType.EndRequest, 1, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])),
    ]);
    const whole = decodeAll([wire]).records;
    for (let cut = 0; cut <= wire.length; cut++) {
      expect(decodeAll([wire.subarray(0, cut), wire.subarray(cut)]).records).toEqual(whole);
    }
    // and byte by byte
    expect(decodeAll([...wire].map((b) => Buffer.from([b]))).records).toEqual(whole);
  });

  it('reports a bad version as a protocol error', () => {
    const wire = encodeRecord(RecordType.Stdout, 1, Buffer.from('x'));
    wire[0] = 2;
    expect(decodeAll([wire]).error).toMatch(/version 2/);
  });

  it('never throws or loops on random bytes', () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), (parts) => {
      const chunks = parts.map((p) => Buffer.from(p));
      let n = 0;
      const d = new RecordDecoder({ onRecord: () => { n++; }, onProtocolError: () => {} });
      for (const c of chunks) d.push(c);
      // Each record takes at least 8 bytes, and a stream record split across chunks comes
      // in one more piece per chunk: the decoder cannot produce more than that.
      expect(n).toBeLessThanOrEqual(Math.floor(chunks.reduce((a, c) => a + c.length, 0) / 8) + chunks.length);
    }), { numRuns: 2000 });
  });
});

describe('name-value pairs', () => {
  it('round-trips 1- and 4-byte lengths', () => {
    const long = 'v'.repeat(200);
    const pairs = ['A', '1', 'EMPTY', '', 'LONG', long, 'N'.repeat(130), 'x'];
    const wire = encodePairs(pairs);
    expect(wire[0]).toBe(1); // 1-byte name length
    expect(decodePairs(wire)).toEqual([['A', '1'], ['EMPTY', ''], ['LONG', long], ['N'.repeat(130), 'x']]);
  });

  it('decodes pairs straddling chunks at every boundary, and reports truncation', () => {
    const pairs = ['SCRIPT_NAME', '/index.php', 'BIG', 'z'.repeat(300), 'Q', ''];
    const wire = encodePairs(pairs);
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new NameValueDecoder();
      d.push(wire.subarray(0, cut));
      d.push(wire.subarray(cut));
      expect(d.end().flat()).toEqual(pairs);
    }
    const d = new NameValueDecoder();
    d.push(wire.subarray(0, wire.length - 1));
    expect(() => d.end()).toThrow(/truncated/);
  });

  it('round-trips random latin1 pairs (property)', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.string({ maxLength: 300 }), fc.string({ maxLength: 300 })), { maxLength: 20 }), (list) => {
      const latin = list.map(([n, v]) => [Buffer.from(n).toString('latin1'), Buffer.from(v).toString('latin1')] as [string, string]);
      expect(decodePairs(encodePairs(latin.flat()))).toEqual(latin);
    }), { numRuns: 300 });
  });

  it('never throws anything but a clean Error on random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try { decodePairs(Buffer.from(bytes)); } catch (err) { expect(err).toBeInstanceOf(Error); }
    }), { numRuns: 2000 });
  });

  it('puts BEGIN_REQUEST, PARAMS, the end of PARAMS and an empty STDIN in one buffer', () => {
    const encoder = new CgiParamsEncoder({ documentRoot: '/srv', serverSoftware: 'upfront/test', passUnderscoreHeaders: false, passProxyHeader: false, extra: [], scriptExtensions: [] });
    const connection = { remoteAddress: '127.0.0.1', remotePort: 5000, localAddress: '127.0.0.1', localPort: 8080, encrypted: false };
    const head = encoder.encode({ method: 'GET', target: '/x?q=1', versionMinor: 1, headers: ['Host', 'h', 'X', 'y'.repeat(70_000)], host: 'h', contentType: undefined, connection }, 0, 1, true);
    const { records } = decodeAll([head]);
    expect(records.map((r) => r.type)).toEqual([RecordType.BeginRequest, RecordType.Params, RecordType.Params, RecordType.Params, RecordType.Stdin]);
    expect([...records[0].content.subarray(0, 3)]).toEqual([0, 1, 1]); // role 1, FCGI_KEEP_CONN
    const stream = Buffer.concat(records.filter((r) => r.type === RecordType.Params).map((r) => r.content));
    const env = Object.fromEntries(decodePairs(stream));
    expect(env).toMatchObject({ REQUEST_METHOD: 'GET', QUERY_STRING: 'q=1', HTTP_X: 'y'.repeat(70_000), HTTP_HOST: 'h', REMOTE_PORT: '5000', SERVER_PORT: '8080', DOCUMENT_ROOT: '/srv' });
    expect(records[4].content.length).toBe(0);
  });
});

describe('CGI response head', () => {
  const parse = (chunks: string[], max = 1 << 20) => {
    const p = new CgiHeadParser(max);
    let offset = 0;
    for (let i = 0; i < chunks.length; i++) {
      const r = p.push(Buffer.from(chunks[i], 'latin1'));
      if (r) return { ...r, body: Buffer.from(chunks[i], 'latin1').subarray(r.bodyOffset).toString('latin1') + chunks.slice(i + 1).join(''), offset };
      offset += chunks[i].length;
    }
    return null;
  };

  it('reads Status, repeated headers and the body start, split anywhere', () => {
    const text = 'Status: 404 Not Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Type: text/plain\r\n\r\nbody!';
    for (let cut = 0; cut <= text.length; cut++) {
      const r = parse([text.slice(0, cut), text.slice(cut)]);
      expect(r).not.toBeNull();
      expect(r!.head.status).toBe(404);
      expect(r!.head.reason).toBe('Not Found');
      expect(r!.head.headers).toEqual(['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Type', 'text/plain']);
      expect(r!.body).toBe('body!');
    }
  });

  it('a head given one byte at a time, past the first buffers, parses as given whole; the limit still holds', () => {
    const text = `Status: 201 Made\r\nX-Pad: ${'p'.repeat(5000)}\r\nX-Last: 1\r\n\r\nbody`;
    const r = parse([...text.slice(0, -4)].concat('body'));
    expect(r).toMatchObject({ head: { status: 201, reason: 'Made', headers: ['X-Pad', 'p'.repeat(5000), 'X-Last', '1'] }, body: 'body' });
    const bare = parse([...'A: 1\n', '\nrest']);
    expect(bare).toMatchObject({ head: { headers: ['A', '1'] }, body: 'rest' });
    expect(() => parse([...`X: ${'a'.repeat(1100)}`], 1024)).toThrow(/over 1024 bytes/);
  });

  it('drops Connection and the fields it names (hop-by-hop), keeps the rest', () => {
    const r = parse(['Status: 200 OK\r\nConnection: X-Secret, close\r\nX-Secret: s\r\nx-other: o\r\nKeep-Alive: timeout=5\r\n\r\n']);
    expect(r!.head.headers).toEqual(['x-other', 'o']);
  });

  it('accepts one Status said twice (the last reason phrase kept)', () => {
    const r = parse(['Status: 404 Gone\r\nStatus: 404 Not Found\r\n\r\n']);
    expect(r!.head.status).toBe(404);
    expect(r!.head.reason).toBe('Not Found');
  });

  it('accepts bare \\n line ends, and Location without Status means 302', () => {
    const r = parse(['Location: /there\n\n']);
    expect(r!.head.status).toBe(302);
    expect(r!.body).toBe('');
  });

  it('rejects malformed heads with a reason', () => {
    expect(() => parse(['no colon here\r\n\r\n'])).toThrow(CgiHeadError);
    expect(() => parse(['Status: abc\r\n\r\n'])).toThrow(/invalid Status/);
    expect(() => parse(['Status: 200 OK\r\nStatus: 404 Not Found\r\n\r\n'])).toThrow(/two different Status headers \(200 and 404\)/);
    expect(() => parse(['X: ' + 'a'.repeat(2000)], 1024)).toThrow(/over 1024 bytes/);
  });
});
