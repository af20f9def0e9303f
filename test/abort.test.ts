// A client that goes away mid-request: the backend is told (FCGI_ABORT_REQUEST)
// and the slot comes back.
import http from 'node:http';
import { afterEach, expect, it } from 'vitest';
import { PY_HELLO, request, startTestFront, waitUntil, type TestFront } from './helpers.js';

let front: TestFront | null = null;
afterEach(async () => { await front?.stop(); front = null; });

it('sends FCGI_ABORT_REQUEST when the client disconnects, and frees the slot', async () => {
  front = await startTestFront({ procs: 1, command: ['python3', PY_HELLO, '--multithreaded', 'true', '--multiplexed', 'true'] });
  const f = front;
  const req = http.get(`${f.url}/sleep/5000`, { agent: false });
  req.on('error', () => {}); // we destroy it
  await waitUntil(() => f.pool.backends[0].inflight === 1, 'the request is in flight at the backend');
  req.destroy();
  const line = await f.log.waitFor((l) => /ABORT_REQUEST request_id=\d+/.test(l.msg), 'from the backend about the abort');
  expect(line.backend).toBe('b0');
  // The app saw the abort and ended early: the slot is free long before the 5 s sleep would end.
  await waitUntil(() => f.pool.backends[0].inflight === 0, 'the slot is released before the sleep ends', 4000);
  const r = await request(`${f.url}/Hello/3`);
  expect(r.status).toBe(200);
});

it('a client that leaves while queued does not take a slot later', async () => {
  front = await startTestFront({ procs: 1, command: ['python3', PY_HELLO], 'pipeline-depth': 1 });
  const f = front;
  const busy = request(`${f.url}/sleep/300`);
  await waitUntil(() => f.pool.backends[0].inflight === 1, 'the first request holds the only slot');
  const queued = http.get(`${f.url}/Hello/1`, { agent: false });
  queued.on('error', () => {});
  await waitUntil(() => f.pool.queue.length === 1, 'the second request waits in the queue');
  queued.destroy();
  await waitUntil(() => f.pool.queue.length === 0, 'the queue forgets it');
  expect((await busy).status).toBe(200);
  expect(f.pool.backends[0].counters.requests).toBe(1);
});
