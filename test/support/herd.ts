import { type IntervalFunction, VirtualClock } from '@towerline/core';
import { Reconnector } from '@towerline/reconnect';

export interface HerdOptions {
  /** Clients that lose the server at the same instant. */
  clients: number;
  /** How long the server stays down, ms. */
  outageMs: number;
  policy: IntervalFunction;
  /** Width of the window the peak is measured in, ms. Default 100. */
  windowMs?: number;
}

export interface HerdResult {
  clients: number;
  outageMs: number;
  /** Connect attempts in all, during the outage and the recovery. */
  attempts: number;
  /** Largest share of all attempts that fell in one window. */
  peakAttemptShare: number;
  /** Largest share of the clients whose successful reconnect fell in one window after recovery. */
  peakRecoveryShare: number;
  /** When the last client was back, ms after the loss. */
  allBackMs: number;
}

function peak(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi]! - sorted[lo]! >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

/**
 * Runs `clients` reconnectors on one virtual clock: all connected and healthy, then the server
 * disappears for `outageMs` and every client loses its connection at the same instant. Records
 * every connect attempt and every successful reconnect, and reports the largest share of them in
 * any `windowMs` sliding window.
 */
export async function simulateHerd(options: HerdOptions): Promise<HerdResult> {
  const { clients, outageMs, policy, windowMs = 100 } = options;
  const clock = new VirtualClock();
  let downFrom = Number.POSITIVE_INFINITY;
  let downUntil = Number.NEGATIVE_INFINITY;
  const attempts: number[] = [];
  const recoveries: number[] = [];
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  const lost: Array<(error?: unknown) => void> = [];
  const reconnectors = Array.from({ length: clients }, (_, i) => {
    const r = new Reconnector<number>({
      clock,
      policy,
      minUptime: 1_000,
      connectTimeout: Number.POSITIVE_INFINITY,
      connect: async () => {
        const now = clock.now();
        if (now >= downFrom) attempts.push(now - downFrom);
        if (now >= downFrom && now < downUntil) throw refused;
        return i;
      },
      watch: (_conn, onLost) => {
        lost[i] = onLost;
      },
    });
    r.events.on('connected', ({ generation }) => {
      if (generation > 1) recoveries.push(clock.now() - downFrom);
    });
    return r;
  });
  for (const r of reconnectors) r.start();
  await clock.advance(2_000); // all connected and past minUptime
  downFrom = clock.now();
  downUntil = downFrom + outageMs;
  for (const onLost of lost) onLost(refused);
  const maxDelay = policy.max ?? 30_000;
  for (let t = 0; t < outageMs + 4 * maxDelay && recoveries.length < clients; t += 1_000) {
    await clock.advance(1_000);
  }
  await Promise.all(reconnectors.map((r) => r.close()));
  const afterRecovery = recoveries.filter((t) => t >= outageMs);
  return {
    clients,
    outageMs,
    attempts: attempts.length,
    peakAttemptShare: peak(attempts, windowMs) / Math.max(1, attempts.length),
    peakRecoveryShare: peak(afterRecovery, windowMs) / clients,
    allBackMs: recoveries.length === clients ? Math.max(...recoveries) : Number.NaN,
  };
}
