import {
  type Clock,
  describeValue,
  expectClock,
  expectOptions,
  invalidArgument,
  systemClock,
  TowerlineError,
} from '@towerline/core';
import type { RateLimiter } from './rate-limit.js';

/** A rate and a burst: `rate` permits per second on average, at most `burst` at once. */
export interface RateLimits {
  /** Permits per second; > 0. */
  rate: number;
  /** The most permits available at once; >= 1. */
  burst: number;
}

/** Limits given as values or read on every acquisition (`() => config.get().limits` follows reloads). */
export type RateLimitSource = RateLimits | (() => RateLimits);

function check(limits: RateLimits): void {
  if (!(limits.rate > 0) || !Number.isFinite(limits.rate) || !(limits.burst >= 1)) {
    throw new TowerlineError('ERR_CONFIG_INVALID', 'a rate limit needs rate > 0 and burst >= 1', {
      problems: [
        ...(limits.rate > 0 ? [] : [`rate must be > 0 (got ${describeValue(limits.rate)})`]),
        ...(limits.burst >= 1 ? [] : [`burst must be >= 1 (got ${describeValue(limits.burst)})`]),
      ],
    });
  }
}

function source(limits: RateLimitSource): () => RateLimits {
  if (typeof limits === 'function') return limits;
  expectOptions(limits, false, 'limits');
  const { rate, burst } = limits;
  if (
    typeof rate !== 'number' ||
    !(rate > 0 && rate < Number.POSITIVE_INFINITY) ||
    typeof burst !== 'number' ||
    !(burst >= 1 && burst < Number.POSITIVE_INFINITY)
  ) {
    invalidArgument(
      'limits',
      `expected finite numbers rate > 0 and burst >= 1, got ${describeValue(rate)}/${describeValue(burst)}`,
    );
  }
  return () => limits;
}

/** Keys kept at most; the least recently used is forgotten (it is then full again). */
const MAX_KEYS = 10_000;

function touch<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_KEYS) map.delete(map.keys().next().value!);
}

interface Bucket {
  tokens: number;
  last: number;
}

/**
 * A token bucket (tower's `RateLimit`, resilience4j's refill limiter): `burst` tokens, refilled
 * at `rate` per second; a call takes `permits` tokens or none. One bucket per key (the
 * unkeyed calls share one), the least recently used forgotten past 10 000 keys. Limits may be
 * a function read on every call, so a reload takes effect at once (a shrunken burst caps the
 * bucket on the next call).
 */
export class TokenBucket implements RateLimiter {
  readonly #limits: () => RateLimits;
  readonly #clock: Clock;
  readonly #buckets = new Map<string, Bucket>();
  #shared: Bucket | undefined;

  constructor(limits: RateLimitSource, options: { clock?: Clock } = {}) {
    this.#limits = source(limits);
    expectOptions(options, true);
    expectClock(options.clock, 'clock', true);
    this.#clock = options.clock ?? systemClock;
  }

  acquire(permits: number, key: string | undefined): number {
    const limits = this.#limits();
    check(limits);
    const { rate, burst } = limits;
    if (permits > burst) return Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    let bucket = key === undefined ? this.#shared : this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: burst, last: now };
      if (key === undefined) this.#shared = bucket;
    }
    if (key !== undefined) touch(this.#buckets, key, bucket);
    const tokens = Math.min(burst, bucket.tokens + ((now - bucket.last) * rate) / 1000);
    bucket.last = now;
    // Within a millionth of a token is enough: the refill sum is not exact in floating point.
    if (tokens >= permits - 1e-6) {
      bucket.tokens = Math.max(0, tokens - permits);
      return 0;
    }
    bucket.tokens = tokens;
    return Math.max(1, Math.ceil(((permits - tokens) * 1000) / rate));
  }
}

/**
 * The generic cell rate algorithm (GCRA, the algorithm of the fleet's Redis limiter): one
 * number per key, the theoretical arrival time; a call of `permits` is admitted when it would
 * not put that time more than `burst` emission intervals ahead of now. Same limits and keys as
 * {@link TokenBucket}, and the same answers for one permit at a time.
 */
export class Gcra implements RateLimiter {
  readonly #limits: () => RateLimits;
  readonly #clock: Clock;
  readonly #tat = new Map<string, number>();
  #sharedTat = Number.NEGATIVE_INFINITY;

  constructor(limits: RateLimitSource, options: { clock?: Clock } = {}) {
    this.#limits = source(limits);
    expectOptions(options, true);
    expectClock(options.clock, 'clock', true);
    this.#clock = options.clock ?? systemClock;
  }

  acquire(permits: number, key: string | undefined): number {
    const limits = this.#limits();
    check(limits);
    if (permits > limits.burst) return Number.POSITIVE_INFINITY;
    const interval = 1000 / limits.rate;
    const now = this.#clock.now();
    const stored =
      key === undefined ? this.#sharedTat : (this.#tat.get(key) ?? Number.NEGATIVE_INFINITY);
    const tat = Math.max(stored, now);
    const next = tat + permits * interval;
    const allowAt = next - limits.burst * interval;
    // Within a microsecond is on time: float sums (tat + interval − burst × interval) are not exact.
    if (allowAt > now + 1e-3) return Math.max(1, Math.ceil(allowAt - now));
    if (key === undefined) this.#sharedTat = next;
    else touch(this.#tat, key, next);
    return 0;
  }
}
