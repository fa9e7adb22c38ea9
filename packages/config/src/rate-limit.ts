import {
  type Clock,
  describeValue,
  invalidArgument,
  type Service,
  type ServiceLayer,
  TowerlineError,
} from '@towerline/core';
import {
  RateLimitLayer as PolicyRateLimitLayer,
  type RateLimits,
  TokenBucket,
} from '@towerline/policies';

/** Seed 003's `RateLimitConfig`. Both fields are integers > 0. */
export interface RateLimitConfig {
  requestsPerSecond: number;
  burst: number;
}

/** The problems with a rate limit config, for a `validate` function; empty when it is fine. */
export function rateLimitProblems(
  config: RateLimitConfig | undefined,
  path = 'rateLimit',
): string[] {
  if (config === null || typeof config !== 'object') return [`${path} is required`];
  const problems: string[] = [];
  for (const key of ['requestsPerSecond', 'burst'] as const) {
    const v = config[key];
    if (!Number.isInteger(v) || v <= 0)
      problems.push(`${path}.${key} must be an integer > 0 (got ${describeValue(v)})`);
  }
  return problems;
}

/**
 * Seed 003's limits as a source for `@towerline/policies`' limiters: `{ rate, burst }` read
 * from `limits` on every acquisition, so that `() => config.get().rateLimit` follows reloads.
 * An invalid value read at call time fails the call with `ERR_CONFIG_INVALID`.
 *
 * @example
 * ```ts
 * const limit = new RateLimitLayer({
 *   limiter: new TokenBucket(rateLimitSource(() => config.get().rateLimit)),
 *   maxWaitMs: 100,
 * });
 * ```
 */
export function rateLimitSource(
  limits: RateLimitConfig | (() => RateLimitConfig),
): () => RateLimits {
  if (typeof limits !== 'function') {
    const problems = rateLimitProblems(limits);
    if (problems.length) invalidArgument('limits', problems.join('; '));
  }
  const read = typeof limits === 'function' ? limits : () => limits;
  return () => {
    const config = read();
    const { requestsPerSecond, burst } = config ?? ({} as RateLimitConfig);
    if (
      typeof requestsPerSecond !== 'number' ||
      typeof burst !== 'number' ||
      !(requestsPerSecond > 0) ||
      !(burst > 0)
    ) {
      throw new TowerlineError(
        'ERR_CONFIG_INVALID',
        'rate limit needs requestsPerSecond > 0 and burst > 0',
        { problems: rateLimitProblems({ requestsPerSecond, burst }) },
      );
    }
    return { rate: requestsPerSecond, burst };
  };
}

/**
 * The config-driven rate limit of seed 003: `@towerline/policies`' `RateLimitLayer` over a
 * `TokenBucket` reading seed 003's limits (see {@link rateLimitSource}). Refusals are
 * `ERR_RATE_LIMITED` with `retryAfterMs`, which a `RetryLayer`'s `delayFromError` can return as
 * it is.
 *
 * @deprecated Use `RateLimitLayer` from `@towerline/policies` with
 * `new TokenBucket(rateLimitSource(() => config.get().rateLimit))`: the same limiter, plus
 * waiting (`maxWaitMs`), keys, permits per request and fleet-wide limiters. Kept as a thin
 * alias; it will go in the next major version.
 */
export class RateLimitLayer implements ServiceLayer {
  readonly #bucket: TokenBucket;
  readonly #layer: PolicyRateLimitLayer;

  constructor(limits: RateLimitConfig | (() => RateLimitConfig), options: { clock?: Clock } = {}) {
    this.#bucket = new TokenBucket(rateLimitSource(limits), options);
    this.#layer = new PolicyRateLimitLayer({ limiter: this.#bucket });
  }

  /**
   * Takes one token. Returns 0 when granted, else how long until a token is due (ms).
   * Shared by every service this layer wraps.
   */
  tryAcquire(): number {
    return this.#bucket.acquire(1, undefined);
  }

  wrap<Req, Res>(inner: Service<Req, Res>): Service<Req, Res> {
    return this.#layer.wrap(inner);
  }
}

/**
 * Reads a request body, refusing it with `ERR_BODY_TOO_LARGE` as soon as it passes the limit
 * (or at once when a declared `content-length` does). `limit` may be a function, so that
 * `() => config.get().bodyLimitBytes` follows reloads.
 */
export async function readBodyLimited(
  body: AsyncIterable<Uint8Array | string> & {
    headers?: Record<string, string | string[] | undefined>;
  },
  limit: number | (() => number),
): Promise<Buffer> {
  const max = typeof limit === 'function' ? limit() : limit;
  if (typeof max !== 'number' || !(max >= 0))
    invalidArgument('limit', `expected bytes >= 0, got ${describeValue(max)}`);
  const declared = Number(body.headers?.['content-length']);
  const tooLarge = (n: number) =>
    new TowerlineError(
      'ERR_BODY_TOO_LARGE',
      `request body of ${n} bytes exceeds the limit of ${max} bytes`,
    );
  if (Number.isFinite(declared) && declared > max) throw tooLarge(declared);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf =
      typeof chunk === 'string'
        ? Buffer.from(chunk)
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    size += buf.byteLength;
    if (size > max) throw tooLarge(size);
    chunks.push(buf);
  }
  return Buffer.concat(chunks, size);
}
