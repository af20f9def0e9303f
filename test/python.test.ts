// The Python example in all four flup switch combinations × both socket modes,
// spawned by upfront on fd 0; the switches come from GET_VALUES (auto).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PY_HELLO, getStats, request, startTestFront, type TestFront } from './helpers.js';

const combos = [
  { multithreaded: false, multiplexed: false },
  { multithreaded: false, multiplexed: true },
  { multithreaded: true, multiplexed: false },
  { multithreaded: true, multiplexed: true },
];

for (const socket of ['per-process', 'shared'] as const) {
  for (const sw of combos) {
    describe(`python example, multithreaded=${sw.multithreaded} multiplexed=${sw.multiplexed}, socket ${socket}`, () => {
      let front: TestFront;
      beforeAll(async () => {
        front = await startTestFront({
          procs: 2, socket,
          command: ['python3', PY_HELLO, '--multithreaded', String(sw.multithreaded), '--multiplexed', String(sw.multiplexed), '--max-threads', '4'],
        });
      });
      afterAll(async () => { await front?.stop(); });

      it('learns the switches from GET_VALUES', async () => {
        const stats = await getStats(front);
        const backends = stats.pools[0].backends;
        expect(backends.length).toBe(socket === 'shared' ? 1 : 2);
        for (const b of backends) {
          expect(b.multithreaded).toBe(sw.multithreaded);
          // On a shared socket the kernel picks the child: never multiplexed there.
          expect(b.multiplexed).toBe(sw.multiplexed && socket === 'per-process');
          expect(b.switchesFrom).toMatch(/^GET_VALUES/);
          expect(b.slots).toBe((sw.multithreaded ? 4 : 1) * (socket === 'shared' ? 2 : 1));
        }
      });

      it('serves /Hello/100 with 100 lines, 60 requests 30 at a time, all 200', async () => {
        const replies = await Promise.all(Array.from({ length: 60 }, (_, i) => request(`${front.url}/Hello/${i % 2 ? 100 : 7}`)));
        for (const [i, r] of replies.entries()) {
          expect(r.status).toBe(200);
          expect(r.body.toString().match(/Hello, World!/g)?.length).toBe(i % 2 ? 100 : 7);
        }
        const stats = await getStats(front);
        const total = stats.pools[0].backends.reduce((a: number, b: any) => a + b.responses['2xx'], 0);
        expect(total).toBeGreaterThanOrEqual(60);
        for (const b of stats.pools[0].backends) {
          // Against the slots it started with: FCGI_OVERLOADED may have lowered them since.
          const startSlots = (sw.multithreaded ? 4 : 1) * (socket === 'shared' ? 2 : 1);
          expect(b.maxInflight).toBeLessThanOrEqual(startSlots * (b.multiplexed ? 1 : 2));
          // Kept-alive: multiplexed, one connection carries them all; otherwise at most one per slot.
          // (Not on a shared socket: there a child at its thread limit closes what the kernel gave it.)
          if (socket === 'per-process') expect(b.connectionsOpened).toBeLessThanOrEqual(b.multiplexed ? 1 : startSlots);
        }
      });

      it('passes CGI params as nginx does, with SCRIPT_NAME empty and PATH_INFO the whole path', async () => {
        const r = await request(`${front.url}/env?a=1&b=2`, { headers: { 'X-Custom': 'v1', Cookie: 'a=1', 'X_Under': 'no', Proxy: 'http://evil' } });
        expect(r.status).toBe(200);
        const env = JSON.parse(r.body.toString());
        expect(env).toMatchObject({
          REQUEST_METHOD: 'GET', QUERY_STRING: 'a=1&b=2', SCRIPT_NAME: '', PATH_INFO: '/env',
          REQUEST_URI: '/env?a=1&b=2', DOCUMENT_URI: '/env', SERVER_PROTOCOL: 'HTTP/1.1',
          GATEWAY_INTERFACE: 'CGI/1.1', REMOTE_ADDR: '127.0.0.1', SERVER_ADDR: '127.0.0.1', SERVER_NAME: '127.0.0.1',
          REQUEST_SCHEME: 'http', REDIRECT_STATUS: '200', HTTP_X_CUSTOM: 'v1', HTTP_COOKIE: 'a=1',
        });
        expect(env.HTTP_PROXY).toBeUndefined(); // httpoxy
        expect(env.HTTP_X_UNDER).toBeUndefined();
        expect(Number(env.SERVER_PORT)).toBe(Number(new URL(front.url).port));
      });

      it('passes Status, Location and repeated Set-Cookie through', async () => {
        expect((await request(`${front.url}/status/418`)).status).toBe(418);
        expect((await request(`${front.url}/status/%34%31%37`)).status).toBe(417); // PATH_INFO is decoded
        const redirect = await request(`${front.url}/redirect`);
        expect(redirect.status).toBe(302);
        expect(redirect.headers.location).toBe('/Hello/1');
        const cookies = await request(`${front.url}/cookies`);
        expect(cookies.headers['set-cookie']).toEqual([expect.stringMatching(/^a=1/), expect.stringMatching(/^b=2/)]);
      });
    });
  }
}
