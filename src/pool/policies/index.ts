import { LeastConn } from './leastConn.js';
import type { Policy } from './policy.js';
import { RandomTwo } from './randomTwo.js';
import { RoundRobin } from './roundRobin.js';

export const POLICY_NAMES = ['least-conn', 'round-robin', 'random-two'] as const;
export type PolicyName = typeof POLICY_NAMES[number];

export function createPolicy(name: PolicyName): Policy {
  switch (name) {
    case 'least-conn': return new LeastConn();
    case 'round-robin': return new RoundRobin();
    case 'random-two': return new RandomTwo();
  }
}
export type { Policy };
