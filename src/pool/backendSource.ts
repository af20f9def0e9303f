// The seam between the pool and what gives it backends: the supervisor (spawned
// processes, src/supervisor) or static upstreams (--upstream). The front is wiring
// over them; the pool sees only the backends they add.
import type { BackendAddress } from '../transport.js';
import type { Backend } from './backend.js';

/** A backend at `address` with the transport of the configured protocol (the wiring knows it). */
export type BackendFactory = (id: string, address: BackendAddress, index: number) => Backend;

export interface BackendSource {
  /** Adds its backends to the pool and brings them up; resolves once each serves or failed its first try (bounded). */
  start(): Promise<void>;
  /** No more probes or restarts; what it spawned is stopped (SIGTERM, SIGKILL after the kill timeout). */
  stop(): Promise<void>;
}
