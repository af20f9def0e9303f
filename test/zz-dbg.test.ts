import { expect, it } from 'vitest';
import { PY_HELLO, request, startTestFront, getStats } from './helpers.js';
it('dbg', async () => {
  const front = await startTestFront({ procs: 2, command: ['python3', PY_HELLO], 'read-timeout': 5000 });
  try {
    const t0 = Date.now();
    const replies = await Promise.all(Array.from({ length: 50 }, () => request(`${front.url}/sleep/60`, { agent: false })));
    console.log(Date.now() - t0, replies.map(r => r.status).join(','));
    console.log(JSON.stringify((await getStats(front)).pools[0].backends.map((b: any) => [b.requests, b.failures, b.connectionsOpened, b.pipelineDepth])));
    console.log(front.log.lines.filter(l => l.level >= 40).slice(-5));
  } finally { await front.stop(); }
}, 100000);
