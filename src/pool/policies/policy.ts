import type { Backend } from '../backend.js';

/** Chooses a backend with room for the request, or null. One small type per policy. */
export interface Policy {
  readonly name: string;
  select(backends: readonly Backend[], pipelinable: boolean): Backend | null;
}
