import type { Backend } from '../backend.js';

/**
 * Chooses a backend for a request, or null when none can take it. One small type
 * per policy. `unlimited`: the overflow mode ignores slots (nginx, retry): any
 * accepting backend will do.
 */
export interface Policy {
  readonly name: string;
  select(backends: readonly Backend[], pipelinable: boolean, unlimited: boolean): Backend | null;
}

export function eligible(b: Backend, pipelinable: boolean, unlimited: boolean): boolean {
  return unlimited ? b.accepting : b.hasRoom(pipelinable);
}
