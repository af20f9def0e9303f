// When a backend is ready (its socket accepts), and what it says it can do
// (FCGI_GET_VALUES). Where the kernel shows the accept queue (our unix sockets),
// the answer is awaited from the moment the app accepted the probe, so a slow
// start is not mistaken for an app that does not answer GET_VALUES.
import net from 'node:net';
import { getValues } from '../fastcgi/getValues.js';
import { acceptQueueOf } from '../native/sock.js';
import type { BackendAddress } from '../transport.js';

export interface ProbeResult {
  /** null: the app accepted but did not answer GET_VALUES in time (or closed). */
  values: Map<string, string> | null;
}

export interface ProbeOptions {
  address: BackendAddress;
  /** How long an app that accepted the probe may take to answer GET_VALUES. */
  getValuesTimeoutMs: number;
  deadline: number;
  isAlive(): boolean;
  /** false: an HTTP backend; ready as soon as it accepts a connection (no GET_VALUES). */
  fastcgi?: boolean;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function connect(address: BackendAddress): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = 'path' in address ? net.connect({ path: address.path }) : net.connect({ host: address.host, port: address.port });
    s.once('connect', () => { s.removeAllListeners('error'); s.on('error', () => {}); resolve(s); });
    s.once('error', () => resolve(null));
  });
}

type Outcome = { kind: 'answer'; values: Map<string, string> } | { kind: 'silent' } | { kind: 'not-accepted' } | { kind: 'died' };

/** One probe connection: GET_VALUES, then wait for an answer, a close, or the timeouts. */
async function probeOnce(opts: ProbeOptions, socket: net.Socket): Promise<Outcome> {
  let answer: Array<[string, string]> | null | undefined;
  void getValues(socket).then((pairs) => { answer = pairs; });
  const path = 'path' in opts.address ? opts.address.path : null;
  let acceptedAt = path ? 0 : Date.now(); // TCP: no accept queue to watch; time from connect
  try {
    for (;;) {
      await sleep(10);
      if (answer) return { kind: 'answer', values: new Map(answer) };
      if (answer === null) return { kind: 'silent' }; // the app accepted and closed: it takes connections
      if (!opts.isAlive()) return { kind: 'died' };
      const now = Date.now();
      if (!acceptedAt && path) {
        const q = acceptQueueOf(path);
        if (!q || q.queued === 0) acceptedAt = now;
      }
      if (acceptedAt && now - acceptedAt >= opts.getValuesTimeoutMs) return { kind: 'silent' };
      if (!acceptedAt && now > opts.deadline) return { kind: 'not-accepted' };
    }
  } finally {
    socket.destroy();
  }
}

/** Resolves when the backend accepts connections; throws when it dies or the deadline passes. */
export async function probeBackend(opts: ProbeOptions): Promise<ProbeResult> {
  for (;;) {
    if (!opts.isAlive()) throw new Error('exited before it was ready');
    const socket = await connect(opts.address);
    if (!socket) {
      // {socket} children bind it themselves; upstreams may not be up yet.
      if (Date.now() > opts.deadline) throw new Error('its socket did not accept connections before the start timeout');
      await sleep(25);
      continue;
    }
    if (opts.fastcgi === false) {
      socket.destroy();
      return { values: null };
    }
    const outcome = await probeOnce(opts, socket);
    switch (outcome.kind) {
      case 'answer': return { values: outcome.values };
      case 'silent': return { values: null };
      case 'died': throw new Error('exited before it was ready');
      case 'not-accepted': throw new Error('it did not accept connections before the start timeout');
    }
  }
}
