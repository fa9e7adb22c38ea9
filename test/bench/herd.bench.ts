import { backoff, type IntervalFunction, seededRandom } from '@towerline/core';
import { defaultReconnectPolicy } from '@towerline/reconnect';
import { simulateHerd } from '../support/herd.js';
import type { CaseResult, SuiteReport } from './harness.js';

/**
 * Scenario 9 on virtual time: 10,000 reconnectors lose the server at the same instant. For each
 * policy and outage length: the largest share of all connect attempts in any 100 ms window, and
 * the largest share of clients whose reconnect lands in one 100 ms window once the server is
 * back (the herd the server actually feels).
 */
export default async function herd(): Promise<SuiteReport> {
  const policies: Array<[string, () => IntervalFunction]> = [
    ['default (decorrelated)', () => defaultReconnectPolicy(seededRandom(1))],
    [
      'full jitter',
      () =>
        backoff.exponentialRandom({
          initial: 100,
          max: 30_000,
          jitter: 'full',
          random: seededRandom(1),
        }),
    ],
    [
      'equal jitter',
      () =>
        backoff.exponentialRandom({
          initial: 100,
          max: 30_000,
          jitter: 'equal',
          random: seededRandom(1),
        }),
    ],
    ['no jitter', () => backoff.exponential({ initial: 100, max: 30_000 })],
  ];
  const results: CaseResult[] = [];
  const rows: string[] = [];
  for (const outageMs of [1_000, 10_000, 60_000]) {
    for (const [name, make] of policies) {
      const started = performance.now();
      const r = await simulateHerd({ clients: 10_000, outageMs, policy: make() });
      results.push({
        case: `${name} @ ${outageMs / 1000}s outage`,
        nsPerOp: ((performance.now() - started) * 1e6) / r.attempts,
        peakAttemptShare: r.peakAttemptShare,
        peakRecoveryShare: r.peakRecoveryShare,
        attempts: r.attempts,
        allBackMs: r.allBackMs,
      });
      rows.push(
        `${`${name} @ ${outageMs / 1000}s`.padEnd(30)} attempts-peak ${(100 * r.peakAttemptShare).toFixed(1).padStart(5)}%  recovery-peak ${(100 * r.peakRecoveryShare).toFixed(1).padStart(5)}%  attempts ${String(r.attempts).padStart(6)}  all back after ${(r.allBackMs / 1000).toFixed(1)} s`,
      );
    }
  }
  console.log('\n## herd: 10,000 clients, largest share in any 100 ms window');
  for (const row of rows) console.log(row);
  return { suite: 'herd', results };
}
