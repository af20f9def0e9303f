// The backend turn (src/backendTurn.ts) on real sockets: client writes made during a
// backend's turn are held until its end, then go out in order; outside a turn they go at once.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { beginBackendTurn, endBackendTurn, holdClientWrite } from '../src/backendTurn.js';

let server: net.Server | null = null;
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.length = 0;
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = null;
});

/** A connected pair over loopback: [our side, the peer's], the peer's bytes collected. */
async function pair(): Promise<{ ours: net.Socket; received: () => string; next: () => Promise<string> }> {
  if (server === null) {
    server = net.createServer();
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  }
  const accepted = new Promise<net.Socket>((resolve) => server!.once('connection', resolve));
  const ours = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((resolve) => ours.once('connect', resolve));
  const peer = await accepted;
  sockets.push(ours, peer);
  let got = '';
  let waiter: ((s: string) => void) | null = null;
  peer.on('data', (d) => { got += d.toString('latin1'); waiter?.(got); });
  return { ours, received: () => got, next: () => new Promise((resolve) => { waiter = resolve; }) };
}

describe('backend turn', () => {
  it('holds client writes made inside a turn (the socket corked) and sends them, in order, at its end', async () => {
    const a = await pair();
    const b = await pair();
    expect(beginBackendTurn()).toBe(true);
    expect(beginBackendTurn()).toBe(false); // one turn at a time: a nested one just goes on
    holdClientWrite(a.ours);
    a.ours.write('one ');
    holdClientWrite(a.ours); // a second write to the same client in the turn: still one cork
    a.ours.write('two');
    holdClientWrite(b.ours);
    b.ours.write('three');
    expect(a.ours.writableCorked).toBe(1);
    expect(a.ours.writableLength).toBe(7); // held in node, not written to the kernel
    expect(b.ours.writableLength).toBe(5);
    const aDone = a.next();
    const bDone = b.next();
    endBackendTurn();
    expect(a.ours.writableCorked).toBe(0);
    expect(await aDone).toBe('one two');
    expect(await bDone).toBe('three');
  }, 5000);

  it('leaves writes outside a turn, and a socket the writer corked itself, alone', async () => {
    const a = await pair();
    holdClientWrite(a.ours);
    expect(a.ours.writableCorked).toBe(0);
    const got = a.next();
    a.ours.write('now');
    expect(await got).toBe('now');
    // Corked by its writer (a head and body in one writev): the turn does not uncork it for them.
    expect(beginBackendTurn()).toBe(true);
    a.ours.cork();
    holdClientWrite(a.ours);
    endBackendTurn();
    expect(a.ours.writableCorked).toBe(1);
    a.ours.uncork();
  }, 5000);
});
