import {
  type CallContext,
  type Clock,
  invalidArgument,
  type Service,
  type ServiceLayer,
  systemClock,
  TowerlineError,
} from '@towerline/core';

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
      problems.push(`${path}.${key} must be an integer > 0 (got ${String(v)})`);
  }
  return problems;
}

/**
 * A token bucket whose rate and burst are read on every call — pass `() => config.get().rateLimit`
 * and a reload takes effect on the next request. Refusals are `ERR_RATE_LIMITED` with
 * `retryAfterMs`, which a `RetryLayer`'s `delayFromError` can return as it is.
 *
 * @example
 * ```ts
 * const limit = new RateLimitLayer(() => config.get().rateLimit);
 * const svc = new ServiceBuilder()
 *   .layer(new RetryLayer({ delayFromError: (e) => (e as TowerlineError).retryAfterMs }))
 *   .layer(limit)
 *   .service(handler);
 * ```
 */
export class RateLimitLayer implements ServiceLayer {
  readonly #limits: () => RateLimitConfig;
  readonly #clock: Clock;
  #tokens: number | undefined;
  #last = 0;

  constructor(limits: RateLimitConfig | (() => RateLimitConfig), options: { clock?: Clock } = {}) {
    if (typeof limits !== 'function') {
      const problems = rateLimitProblems(limits);
      if (problems.length) invalidArgument('limits', problems.join('; '));
    }
    this.#limits = typeof limits === 'function' ? limits : () => limits;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Takes one token. Returns 0 when granted, else how long until a token is due (ms).
   * Shared by every service this layer wraps.
   */
  tryAcquire(): number {
    const { requestsPerSecond: rps, burst } = this.#limits();
    if (!(rps > 0) || !(burst > 0)) {
      throw new TowerlineError(
        'ERR_CONFIG_INVALID',
        'rate limit needs requestsPerSecond > 0 and burst > 0',
        {
          problems: rateLimitProblems({ requestsPerSecond: rps, burst }),
        },
      );
    }
    const now = this.#clock.now();
    // A shrunken burst after a reload caps the bucket at once.
    const tokens = Math.min(
      burst,
      this.#tokens === undefined ? burst : this.#tokens + ((now - this.#last) * rps) / 1000,
    );
    this.#last = now;
    if (tokens >= 1) {
      this.#tokens = tokens - 1;
      return 0;
    }
    this.#tokens = tokens;
    return Math.ceil(((1 - tokens) * 1000) / rps);
  }

  wrap<Req, Res>(inner: Service<Req, Res>): Service<Req, Res> {
    return {
      call: (req: Req, ctx?: CallContext) => {
        const wait = this.tryAcquire();
        if (wait === 0) return inner.call(req, ctx);
        return Promise.reject(
          new TowerlineError('ERR_RATE_LIMITED', `rate limited; retry in ${wait} ms`, {
            retryAfterMs: wait,
          }),
        );
      },
      close: () => inner.close?.() ?? Promise.resolve(),
    };
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
  if (!(max >= 0)) invalidArgument('limit', `expected bytes >= 0, got ${max}`);
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
