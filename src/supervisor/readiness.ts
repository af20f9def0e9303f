// When a backend is ready (its socket accepts), and what it says it can do
// (FCGI_GET_VALUES). A child that ignores GET_VALUES is ready once it has accepted
// the probe connection, which the kernel's accept queue tells us.
import net from 'node:net';
import { FcgiClient, type FcgiAddress } from '../fastcgi/client.js';
import { acceptQueueOf } from '../native/sock.js';

export const VALUE_NAMES = ['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS'] as const;

export interface ProbeResult {
  values: Map<string, string> | null;
}

export interface ProbeOptions {
  address: FcgiAddress;
  /** The socket is ours (fd 0): it exists from the start; readiness = accepted. */
  ownSocket: boolean;
  getValuesTimeoutMs: number;
  deadline: number;
  isAlive(): boolean;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function canConnect(address: FcgiAddress): Promise<boolean> {
  return new Promise((resolve) => {
    const s = 'path' in address ? net.connect({ path: address.path }) : net.connect({ host: address.host, port: address.port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Resolves when the backend accepts connections; throws when it dies or the deadline passes. */
export async function probeBackend(opts: ProbeOptions, client: FcgiClient): Promise<ProbeResult> {
  if (!opts.ownSocket) {
    // The child binds the socket itself ({socket}): wait until it accepts a connection.
    while (!(await canConnect(opts.address))) {
      if (!opts.isAlive()) throw new Error('exited before its socket accepted connections');
      if (Date.now() > opts.deadline) throw new Error('its socket did not accept connections before the start timeout');
      await sleep(25);
    }
  }
  for (;;) {
    if (!opts.isAlive()) throw new Error('exited before it was ready');
    let values: Map<string, string> | null = null;
    try {
      values = await client.getValues(VALUE_NAMES, opts.getValuesTimeoutMs);
    } catch {
      values = null; // connect error: not listening yet
    }
    if (values) return { values };
    if (!opts.isAlive()) throw new Error('exited before it was ready');
    // No answer: did it at least accept our probe? (Not for TCP upstreams: no sock_diag there.)
    if ('path' in opts.address) {
      const q = acceptQueueOf(opts.address.path);
      if (q && q.queued === 0) return { values: null };
    } else if (await canConnect(opts.address)) {
      return { values: null };
    }
    if (Date.now() > opts.deadline) throw new Error('it did not accept connections before the start timeout');
    await sleep(50);
  }
}
