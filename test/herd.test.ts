import { backoff, seededRandom } from '@towerline/core';
import { defaultReconnectPolicy } from '@towerline/reconnect';
import { describe, expect, it } from 'vitest';
import { simulateHerd } from './support/herd.js';

// Scenario 9: 10,000 clients lose the server at once. On virtual time, so it takes seconds.
describe('herd (scenario 9, virtual time)', () => {
  it('the default policy spreads attempts and recovery: at most 5% in any 100 ms', async () => {
    const result = await simulateHerd({
      clients: 10_000,
      outageMs: 10_000,
      policy: defaultReconnectPolicy(seededRandom(42)),
    });
    expect(result.allBackMs).toBeGreaterThanOrEqual(10_000);
    expect(result.peakRecoveryShare).toBeLessThanOrEqual(0.05);
    // Attempts during the outage are spread too.
    expect(result.peakAttemptShare).toBeLessThanOrEqual(0.05);
  });

  it('without jitter every client comes back in the same instant', async () => {
    const result = await simulateHerd({
      clients: 10_000,
      outageMs: 10_000,
      policy: backoff.exponential({ initial: 100, max: 30_000 }),
    });
    expect(result.peakRecoveryShare).toBe(1);
  });
});
