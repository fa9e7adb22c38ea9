import {
  abortedBeforeStart,
  type CallContext,
  type Clock,
  describeValue,
  expectClock,
  expectOptions,
  invalidArgument,
  type Service,
  type ServiceLayer,
  sleep,
  systemClock,
  TowerlineError,
  TypedEmitter,
} from '@towerline/core';
import { expectName } from './check.js';

/**
 * Where a {@link RateLimitLayer} gets its permits: a local {@link TokenBucket} or {@link Gcra},
 * or a fleet-wide limiter on Redis. One method, answered synchronously when it can be.
 */
export interface RateLimiter {
  /**
   * Takes `permits` for `key` (undefined: the layer's one shared limit). Returns 0 when they
   * were taken, else the ms until they may be available (and takes nothing).
   */
  acquire(permits: number, key: string | undefined): number | Promise<number>;
}

export type RateLimitEvents = {
  /** A call waited for its permits. */
  waited: { key: string | undefined; waitedMs: number };
  /** A call was refused with `ERR_RATE_LIMITED`. */
  limited: { key: string | undefined; retryAfterMs: number };
};

export interface RateLimitOptions<Req> {
  limiter: RateLimiter;
  /** The key a request is limited under (per tenant, per route); default one shared limit. */
  key?: (req: Req) => string;
  /** Permits a request costs; default 1. */
  permits?: (req: Req) => number;
  /**
   * The longest a call waits for its permits before it is refused, in ms; default 0 (refuse at
   * once). The wait ends early on `ctx.signal`, and is never longer than `ctx.deadline` allows.
   */
  maxWaitMs?: number;
  clock?: Clock;
  name?: string;
}

function limited(retryAfterMs: number): TowerlineError {
  const when = Number.isFinite(retryAfterMs)
    ? `retry in ${Math.ceil(retryAfterMs)} ms`
    : 'too many permits asked';
  return new TowerlineError('ERR_RATE_LIMITED', `rate limited; ${when}`, {
    retryAfterMs,
    mayHaveExecuted: false,
  });
}

/** Waits between acquisitions stop after this many tries (each waits the limiter's hint). */
const MAX_TRIES = 32;

/**
 * Admits calls at a rate (tower's `RateLimit`, Polly's rate limiter): each takes its permits
 * from a {@link RateLimiter} before it reaches the inner service, waits up to `maxWaitMs` for
 * them, then fails with `ERR_RATE_LIMITED` and `retryAfterMs` (which a `RetryLayer`'s
 * `delayFromError` can return as it is). A limiter that answers synchronously costs no promise
 * hop beyond the inner call.
 *
 * @example
 * ```ts
 * const limit = new RateLimitLayer({
 *   limiter: new TokenBucket(() => config.get().limits),
 *   key: (req: HttpRequest) => req.tenant,
 *   maxWaitMs: 250,
 * });
 * ```
 */
export class RateLimitLayer<Req = unknown> implements ServiceLayer {
  readonly events = new TypedEmitter<RateLimitEvents>({ channel: 'towerline:rate-limit' });
  readonly #options: RateLimitOptions<Req>;
  readonly #maxWait: number;
  readonly #clock: Clock;

  constructor(options: RateLimitOptions<Req>) {
    expectOptions(options, false);
    const maxWait = options.maxWaitMs === undefined ? 0 : options.maxWaitMs;
    if (typeof maxWait !== 'number' || !(maxWait >= 0))
      invalidArgument('maxWaitMs', `expected >= 0, got ${describeValue(maxWait)}`);
    if (typeof options.limiter?.acquire !== 'function')
      invalidArgument('limiter', 'expected a RateLimiter');
    for (const name of ['key', 'permits'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function')
        invalidArgument(name, 'expected a function of the request');
    }
    expectClock(options.clock);
    this.#options = options;
    this.#maxWait = maxWait;
    this.#clock = options.clock ?? systemClock;
    expectName(options.name);
    this.events.source = options.name ?? 'rate-limit';
  }

  wrap<R, Res>(inner: Service<R, Res>): Service<R, Res> {
    const {
      limiter,
      key: keyOf,
      permits: permitsOf,
    } = this.#options as unknown as RateLimitOptions<R>;
    return {
      call: (req: R, ctx?: CallContext) => {
        const aborted = abortedBeforeStart(ctx);
        if (aborted !== undefined) return aborted;
        let key: string | undefined;
        let permits = 1;
        let wait: number | Promise<number>;
        try {
          // The user's functions: a throw rejects this call, never escapes `call`.
          key = keyOf?.(req);
          if (permitsOf !== undefined) permits = permitsOf(req);
          wait = limiter.acquire(permits, key);
        } catch (error) {
          return Promise.reject(error);
        }
        if (wait === 0) return callInner(inner, req, ctx);
        return this.#slow(inner, req, ctx, key, permits, wait);
      },
      close: () => inner.close?.() ?? Promise.resolve(),
    };
  }

  async #slow<R, Res>(
    inner: Service<R, Res>,
    req: R,
    ctx: CallContext | undefined,
    key: string | undefined,
    permits: number,
    first: number | Promise<number>,
  ): Promise<Res> {
    const clock = this.#clock;
    const start = clock.now();
    let wait = await first;
    for (let tries = 0; wait !== 0; tries++) {
      const now = clock.now();
      const left = Math.min(start + this.#maxWait, ctx?.deadline ?? Number.POSITIVE_INFINITY) - now;
      if (!(wait <= left) || tries >= MAX_TRIES) {
        this.events.emit('limited', { key, retryAfterMs: wait });
        throw limited(wait);
      }
      await sleep(wait, { signal: ctx?.signal, clock });
      wait = await this.#options.limiter.acquire(permits, key);
    }
    this.events.emit('waited', { key, waitedMs: clock.now() - start });
    return callInner(inner, req, ctx);
  }
}

function callInner<R, Res>(
  inner: Service<R, Res>,
  req: R,
  ctx: CallContext | undefined,
): Promise<Res> {
  try {
    return inner.call(req, ctx);
  } catch (error) {
    return Promise.reject(error);
  }
}
