#!/usr/bin/env node
// Fuzz (not a test): the FastCGI record decoder and the CGI response head parser,
// fed random bytes and mutations of valid responses, split at random points, for a
// bounded time. Every input must end in records, a protocol error or a head error —
// never another exception, a hang, or more records than bytes allow.
//
//   node bench/fuzz-fcgi.mjs [seconds=60] [seed=1]
import { CgiHeadError, CgiHeadParser } from '../dist/fastcgi/cgiResponse.js';
import { RecordDecoder, encodeRecord } from '../dist/fastcgi/records.js';

const seconds = Number(process.argv[2] ?? 60);
let seed = Number(process.argv[3] ?? 1) >>> 0 || 1;
function rnd(n) { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0; return seed % n; }

const heads = [
  'Status: 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello',
  'Content-Type: text/plain\n\nbody',
  'Location: /x\r\n\r\n',
  'Status: 404\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n',
  'Status: 100 Continue\r\n\r\n',
  'Content-Length: 5\r\nContent-Length: 6\r\n\r\nabcde',
];
const endRequest = encodeRecord(3, 1, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]));

function validStream() {
  const head = Buffer.from(heads[rnd(heads.length)], 'latin1');
  const parts = [];
  let off = 0;
  while (off < head.length) { const n = 1 + rnd(head.length - off); parts.push(encodeRecord(6, 1, head.subarray(off, off + n))); off += n; }
  if (rnd(3) === 0) parts.push(encodeRecord(7, 1, Buffer.from('warning')));
  parts.push(encodeRecord(6, 1), endRequest);
  return Buffer.concat(parts);
}

function mutate(buf) {
  const b = Buffer.from(buf);
  const k = 1 + rnd(4);
  for (let i = 0; i < k; i++) {
    switch (rnd(4)) {
      case 0: b[rnd(b.length)] = rnd(256); break;
      case 1: b[rnd(b.length)] ^= 1 << rnd(8); break;
      case 2: { const at = rnd(b.length); b.fill(rnd(256), at, Math.min(b.length, at + 1 + rnd(8))); break; }
      default: return Buffer.concat([b.subarray(0, rnd(b.length)), Buffer.from([rnd(256)]), b.subarray(rnd(b.length))]);
    }
  }
  return b;
}

const counts = { inputs: 0, bytes: 0, records: 0, protocolErrors: 0, heads: 0, headErrors: 0, crashes: 0 };
const crashSamples = [];
const deadline = Date.now() + seconds * 1000;
while (Date.now() < deadline) {
  for (let batch = 0; batch < 200; batch++) {
    const kind = rnd(3);
    const input = kind === 0 ? Buffer.from(Array.from({ length: rnd(300) }, () => rnd(256))) : kind === 1 ? validStream() : mutate(validStream());
    counts.inputs++;
    counts.bytes += input.length;
    let records = 0;
    let parser = new CgiHeadParser(1024);
    let headDone = false;
    try {
      const d = new RecordDecoder({
        onRecord: (type, id, content) => {
          records++;
          if (type === 6 && content.length > 0 && !headDone) {
            try {
              if (parser.push(content)) { headDone = true; counts.heads++; }
            } catch (err) {
              if (!(err instanceof CgiHeadError)) throw err;
              counts.headErrors++;
              headDone = true;
            }
          }
        },
        onProtocolError: () => { counts.protocolErrors++; },
      });
      let off = 0;
      while (off < input.length) { const n = 1 + rnd(input.length - off); d.push(input.subarray(off, off + n)); off += n; }
      // Each record takes at least 8 bytes; a record split across chunks comes in one piece more per chunk.
      if (records > Math.floor(input.length / 8) + input.length) throw new Error(`${records} records from ${input.length} bytes`);
      counts.records += records;
    } catch (err) {
      counts.crashes++;
      if (crashSamples.length < 5) crashSamples.push({ error: err.message, input: input.toString('hex').slice(0, 200) });
    }
    parser = null;
  }
}
console.log(JSON.stringify({ command: `node bench/fuzz-fcgi.mjs ${seconds} ${process.argv[3] ?? 1}`, seconds, ...counts, crashSamples }, null, 2));
process.exit(counts.crashes > 0 ? 1 : 0);
