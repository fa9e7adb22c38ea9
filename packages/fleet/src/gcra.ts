/**
 * GCRA in process: the same arithmetic as the fleet's Lua script, for one replica — the
 * fallback at `limit / expectedReplicas` when Redis is unreachable, and a local limiter in its
 * own right.
 */
import { type Clock, describeValue, expectOptions, invalidArgument } from '@towerline/core';
import { Gcra } from '@towerline/policies';

export interface GcraOptions {
  /** Permits per period. */
  limit: number;
  /** Default 1 000 ms. */
  periodMs?: number;
  /** Permits that may be taken at once above the steady rate. Default `limit / 20`, at least 1. */
  burst?: number;
  clock?: Clock;
}

/** Emission interval and tolerance of a limit: ms per permit, and burst × interval. */
export function gcraParams(o: GcraOptions): { interval: number; tolerance: number; burst: number } {
  expectOptions(o, false);
  const { limit, periodMs = 1_000 } = o;
  if (!(typeof limit === 'number' && limit > 0))
    invalidArgument('limit', `expected a number > 0, got ${describeValue(limit)}`);
  if (!(typeof periodMs === 'number' && periodMs > 0))
    invalidArgument('periodMs', `expected a number > 0, got ${describeValue(periodMs)}`);
  const burst = o.burst ?? Math.max(1, Math.ceil(limit / 20));
  if (!(typeof burst === 'number' && burst >= 1))
    invalidArgument('burst', `expected a number >= 1, got ${describeValue(burst)}`);
  const interval = periodMs / limit;
  return { interval, tolerance: burst * interval, burst };
}

/**
 * A local GCRA limiter: `acquire(permits, key)` returns 0 when taken, else the ms until they
 * may be (taking nothing; `Infinity` for more permits than the burst). Keys are limited
 * independently, the least recently used forgotten past 10 000. The limits of the fleet's
 * options (`limit` per `periodMs`) over `@towerline/policies`' {@link Gcra}: one implementation.
 */
export class GcraLimiter {
  readonly #gcra: Gcra;

  constructor(options: GcraOptions) {
    const { interval, burst } = gcraParams(options);
    const limits = { rate: 1_000 / interval, burst };
    this.#gcra = new Gcra(limits, options.clock ? { clock: options.clock } : {});
  }

  acquire(permits = 1, key: string | undefined = undefined): number {
    return this.#gcra.acquire(permits, key);
  }
}
