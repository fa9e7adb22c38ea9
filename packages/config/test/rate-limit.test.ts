import { Readable } from 'node:stream';
import {
  ConfigProvider,
  RateLimitLayer,
  rateLimitProblems,
  readBodyLimited,
} from '@towerline/config';
import { serviceFn, VirtualClock } from '@towerline/core';
import { RetryLayer } from '@towerline/retry';
import { describe, expect, it } from 'vitest';

describe('RateLimitLayer', () => {
  it('allows a burst, then refuses with ERR_RATE_LIMITED and a retryAfterMs', async () => {
    const clock = new VirtualClock();
    const svc = new RateLimitLayer({ requestsPerSecond: 10, burst: 3 }, { clock }).wrap(
      serviceFn(async (n: number) => n),
    );
    for (let i = 0; i < 3; i++) expect(await svc.call(i)).toBe(i);
    await expect(svc.call(4)).rejects.toMatchObject({
      code: 'ERR_RATE_LIMITED',
      retryAfterMs: 100,
    });
    await clock.advance(100);
    expect(await svc.call(5)).toBe(5);
  });

  it('reads its limits on every call, so a reload takes effect on the next request', async () => {
    const clock = new VirtualClock();
    const config = new ConfigProvider({
      initial: { rateLimit: { requestsPerSecond: 1, burst: 1 } },
      validate: (c) => rateLimitProblems(c.rateLimit),
    });
    const svc = new RateLimitLayer(() => config.get().rateLimit, { clock }).wrap(
      serviceFn(async () => 'ok'),
    );
    await svc.call(undefined);
    await expect(svc.call(undefined)).rejects.toMatchObject({ retryAfterMs: 1000 });
    await config.reload({ rateLimit: { requestsPerSecond: 1000, burst: 1 } });
    await clock.advance(1);
    expect(await svc.call(undefined)).toBe('ok');
    // An invalid reload is refused by validation; the limiter keeps the old limits.
    await expect(
      config.reload({ rateLimit: { requestsPerSecond: 0, burst: 1.5 } }),
    ).rejects.toMatchObject({
      problems: [
        'rateLimit.requestsPerSecond must be an integer > 0 (got 0)',
        'rateLimit.burst must be an integer > 0 (got 1.5)',
      ],
    });
  });

  it('composes with RetryLayer: delayFromError honours retryAfterMs', async () => {
    const limiter = new RateLimitLayer({ requestsPerSecond: 50, burst: 1 });
    const delays: number[] = [];
    const retry = new RetryLayer({
      maxAttempts: 3,
      delayFromError: (e) => (e as { retryAfterMs?: number }).retryAfterMs,
    });
    retry.events.on('retry', ({ delayMs }) => delays.push(delayMs));
    const svc = retry.wrap(limiter.wrap(serviceFn(async () => 'ok')));
    expect(await svc.call(undefined)).toBe('ok');
    expect(await svc.call(undefined)).toBe('ok');
    expect(delays).toHaveLength(1);
    expect(delays[0]).toBeGreaterThan(0);
    expect(delays[0]).toBeLessThanOrEqual(20);
  });

  it('validates static limits', () => {
    expect(() => new RateLimitLayer({ requestsPerSecond: 0, burst: 1 })).toThrow(
      /requestsPerSecond/,
    );
    expect(() => new RateLimitLayer({ requestsPerSecond: 1, burst: -1 })).toThrow(/burst/);
  });
});

describe('readBodyLimited', () => {
  it('reads a body within the limit', async () => {
    const body = await readBodyLimited(Readable.from([Buffer.from('ab'), 'cd']), 4);
    expect(body.toString()).toBe('abcd');
  });

  it('refuses a body past the limit, and a declared content-length at once', async () => {
    await expect(readBodyLimited(Readable.from(['abc', 'de']), 4)).rejects.toMatchObject({
      code: 'ERR_BODY_TOO_LARGE',
    });
    let read = false;
    const declared = Object.assign(
      (async function* () {
        read = true;
        yield 'x';
      })(),
      { headers: { 'content-length': '100' } },
    );
    await expect(readBodyLimited(declared, () => 10)).rejects.toMatchObject({
      code: 'ERR_BODY_TOO_LARGE',
    });
    expect(read).toBe(false);
  });
});
