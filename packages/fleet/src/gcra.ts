/**
 * GCRA in process: the same arithmetic as the fleet's Lua script, for one replica — the
 * fallback at `limit / expectedReplicas` when Redis is unreachable, and a local limiter in its
 * own right.
 */
import { type Clock, invalidArgument, systemClock } from '@towerline/core';

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
export function gcraParams(o: GcraOptions): { interval: number; tolerance: number } {
  const { limit, periodMs = 1_000 } = o;
  if (!(typeof limit === 'number' && limit > 0))
    invalidArgument('limit', `expected a number > 0, got ${String(limit)}`);
  if (!(typeof periodMs === 'number' && periodMs > 0))
    invalidArgument('periodMs', `expected a number > 0, got ${String(periodMs)}`);
  const burst = o.burst ?? Math.max(1, Math.ceil(limit / 20));
  if (!(typeof burst === 'number' && burst >= 1))
    invalidArgument('burst', `expected a number >= 1, got ${String(burst)}`);
  const interval = periodMs / limit;
  return { interval, tolerance: burst * interval };
}

/**
 * A local GCRA limiter: `acquire(permits, key)` returns 0 when taken, else the ms until they
 * may be (taking nothing). Keys are limited independently.
 */
export class GcraLimiter {
  readonly #interval: number;
  readonly #tolerance: number;
  readonly #clock: Clock;
  readonly #tat = new Map<string, number>();

  constructor(options: GcraOptions) {
    const { interval, tolerance } = gcraParams(options);
    this.#interval = interval;
    this.#tolerance = tolerance;
    this.#clock = options.clock ?? systemClock;
  }

  acquire(permits = 1, key: string | undefined = undefined): number {
    const now = this.#clock.now();
    const k = key ?? '';
    const tat = Math.max(this.#tat.get(k) ?? 0, now);
    const next = tat + permits * this.#interval;
    // Within a microsecond or so is on time: float sums (now + interval − tolerance) are not exact.
    const over = next - now - this.#tolerance;
    if (over > 1e-3) return Math.ceil(over);
    this.#tat.set(k, next);
    // Bounded: keys whose arrival time has passed hold no state worth keeping.
    if (this.#tat.size > 10_000) for (const [x, t] of this.#tat) if (t <= now) this.#tat.delete(x);
    return 0;
  }
}
