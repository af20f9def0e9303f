import { LeastConn } from './leastConn.js';
import type { Policy } from './policy.js';

export type PolicyName = 'least-conn';
export const POLICY_NAMES: readonly PolicyName[] = ['least-conn'];

export function createPolicy(name: PolicyName): Policy {
  switch (name) {
    case 'least-conn': return new LeastConn();
  }
}
export type { Policy };
