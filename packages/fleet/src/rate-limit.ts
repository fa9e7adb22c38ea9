/**
 * A rate limit shared by every replica: GCRA in one Lua script on Redis, one key per limit
 * (and per `key` within it). A refusal is remembered locally until the time Redis named (the
 * over-limit cache of Envoy's global rate limit), so an overloaded caller costs Redis nothing.
 * Redis unreachable: the decision is local, at `limit / expectedReplicas` (or fail-open, or
 * fail-closed), and a `fallback` event says so.
 */
import { describeValue, expectOptions, invalidArgument, type TypedEmitter } from '@towerline/core';
import { GcraLimiter, type GcraOptions, gcraParams } from './gcra.js';
import { type FleetEvents, type FleetRedisOptions, RedisLink } from './link.js';
import { GCRA } from './scripts.js';

/** What `RateLimitLayer` takes as a source: 0 when taken, else ms until a permit may be. */
export interface RateLimiter {
  acquire(permits: number, key: string | undefined): number | Promise<number>;
}

export interface FleetRateLimiterOptions extends FleetRedisOptions, Omit<GcraOptions, 'clock'> {
  /** The limit's name: its Redis key is `towerline:rl:{name}` (`:key` per key). */
  name: string;
  /** Replicas sharing the limit: each one's share when Redis is unreachable. */
  expectedReplicas: number;
  /**
   * Redis unreachable: `local` (default) limits this replica to its share, `open` admits
   * everything, `closed` refuses everything.
   */
  whenUnavailable?: 'local' | 'open' | 'closed';
}

/**
 * A fleet-wide rate limit on Redis (GCRA, `EVALSHA`), with a local fallback.
 *
 * @example
 * ```ts
 * const redis = resilientRedis({ redis: { port: 6379 } });
 * const limiter = new FleetRateLimiter({ redis, name: 'api', limit: 500, expectedReplicas: 3 });
 * limiter.events.on('fallback', (e) => log.warn(e, 'rate limit is local'));
 * const wait = await limiter.acquire(1, undefined); // 0: go; else ms to wait
 * ```
 */
export class FleetRateLimiter implements RateLimiter {
  readonly name: string;
  readonly #link: RedisLink;
  readonly #interval: string;
  readonly #tolerance: string;
  readonly #local: GcraLimiter;
  readonly #mode: 'local' | 'open' | 'closed';
  readonly #blocked = new Map<string, number>();
  readonly #periodMs: number;
  readonly #burst: number;

  constructor(options: FleetRateLimiterOptions) {
    expectOptions(options, false);
    const { name, expectedReplicas, limit, periodMs = 1_000 } = options;
    if (typeof name !== 'string' || name === '') invalidArgument('name', 'expected a name');
    if (!(Number.isInteger(expectedReplicas) && expectedReplicas >= 1))
      invalidArgument(
        'expectedReplicas',
        `expected an integer >= 1, got ${describeValue(expectedReplicas)}`,
      );
    const { interval, tolerance, burst } = gcraParams(options);
    this.name = name;
    this.#interval = String(interval);
    this.#tolerance = String(tolerance);
    this.#periodMs = periodMs;
    this.#burst = burst;
    this.#link = new RedisLink(name, options, 'towerline:fleet:rate-limit');
    this.#local = new GcraLimiter({
      limit: limit / expectedReplicas,
      periodMs,
      burst: Math.max(1, burst / expectedReplicas),
      clock: this.#link.clock,
    });
    const mode = options.whenUnavailable ?? 'local';
    if (mode !== 'local' && mode !== 'open' && mode !== 'closed')
      invalidArgument('whenUnavailable', "expected 'local', 'open' or 'closed'");
    this.#mode = mode;
  }

  /** `fallback` and `recovered`. */
  get events(): TypedEmitter<FleetEvents> {
    return this.#link.events;
  }

  /** Decisions are local (Redis unreachable). */
  get degraded(): boolean {
    return this.#link.down;
  }

  /** Takes `permits` (default 1) for `key`; 0 when taken, else ms until they may be. */
  acquire(permits = 1, key: string | undefined = undefined): number | Promise<number> {
    if (typeof permits !== 'number' || !(permits > 0) || !Number.isFinite(permits))
      invalidArgument('permits', `expected a finite number > 0, got ${describeValue(permits)}`);
    if (key !== undefined && typeof key !== 'string')
      invalidArgument('key', `expected a string or undefined, got ${describeValue(key)}`);
    // More than the burst is never granted: no wait makes it possible (as GcraLimiter says).
    if (permits > this.#burst) return Number.POSITIVE_INFINITY;
    const k = key ?? '';
    const until = this.#blocked.get(k);
    if (until !== undefined) {
      const left = until - this.#link.clock.now();
      if (left > 0) return left;
      this.#blocked.delete(k);
    }
    if (!this.#link.usable) return this.#fallback(permits, key);
    return this.#remote(permits, key, k);
  }

  async #remote(permits: number, key: string | undefined, k: string): Promise<number> {
    const redisKey =
      key === undefined ? `towerline:rl:{${this.name}}` : `towerline:rl:{${this.name}}:${key}`;
    const out = await this.#link.run(GCRA, [redisKey], [this.#interval, this.#tolerance, permits]);
    if (out === undefined) return this.#fallback(permits, key);
    if (out[0] === 1) return 0;
    const wait = Math.max(1, Number(out[1]));
    if (this.#blocked.size > 10_000) this.#blocked.clear();
    this.#blocked.set(k, this.#link.clock.now() + wait);
    return wait;
  }

  #fallback(permits: number, key: string | undefined): number {
    if (this.#mode === 'open') return 0;
    if (this.#mode === 'closed') return this.#periodMs;
    return this.#local.acquire(permits, key);
  }
}
