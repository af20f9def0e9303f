// A front the bench started for one run of a cell, with its backends: what the
// sweep reads from it, and the registry that stops everything on Ctrl-C.
import type { FrontName } from './results.js';

export interface SwitchChoice { multithreaded: boolean; multiplexed: boolean }

export interface RunningFront {
  front: FrontName;
  port: number;
  /** Every process of the front (master, workers, helpers); threads are in their process's figures. */
  frontPids(): number[];
  backendPids(): Promise<number[]>;
  /** connect() failures on the backend socket so far (a counter: read before and after the measured window). */
  eagain(): Promise<number | null>;
  acceptQueueMax(): Promise<number | null>;
  frontQueueMax(): Promise<number | null>;
  switches(): Promise<SwitchChoice>;
  /** The last thing the front and the backends said: the cause when no request succeeded. */
  lastWords(): Promise<string>;
  stop(): Promise<void>;
}

/** Everything running now, stopped on Ctrl-C or at the end (synchronous, best effort). */
const running = new Set<() => void>();

export function register(stopNow: () => void): () => void {
  running.add(stopNow);
  return () => running.delete(stopNow);
}

export function stopEverything(): void {
  for (const stop of running) { try { stop(); } catch { /* best effort */ } }
  running.clear();
}
