import { type Service, TowerlineError, VirtualClock } from '@towerline/core';
import {
  AimdLimit,
  ConcurrencyLimitLayer,
  FallbackLayer,
  Gcra,
  Gradient2Limit,
  LoadShedLayer,
  RateLimitLayer,
  TokenBucket,
} from '@towerline/policies';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const tick = () => new Promise((r) => setImmediate(r));

describe('ConcurrencyLimitLayer', () => {
  it('never exceeds its limit or its queue under generated schedules; refusals are ERR_CONCURRENCY_LIMIT', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 6 }),
        fc.array(
          fc.record({
            gap: fc.integer({ min: 0, max: 20 }),
            work: fc.integer({ min: 1, max: 60 }),
          }),
          {
            minLength: 5,
            maxLength: 60,
          },
        ),
        async (limit, queue, schedule) => {
          const clock = new VirtualClock();
          const layer = new ConcurrencyLimitLayer({ limit, queue, maxWaitMs: 40, clock });
          let inflight = 0;
          let peak = 0;
          const svc = layer.wrap<number, string>({
            call: (work) => {
              inflight++;
              peak = Math.max(peak, inflight);
              return new Promise((resolve) =>
                clock.setTimeout(() => {
                  inflight--;
                  resolve('ok');
                }, work),
              );
            },
          });
          const outcomes: Array<Promise<unknown>> = [];
          for (const { gap, work } of schedule) {
            await clock.advance(gap);
            expect(layer.queued).toBeLessThanOrEqual(queue);
            outcomes.push(svc.call(work).catch((e: unknown) => e));
          }
          await clock.advance(10_000);
          const results = await Promise.all(outcomes);
          expect(peak).toBeLessThanOrEqual(limit);
          for (const r of results) {
            if (r !== 'ok') expect(r).toMatchObject({ code: 'ERR_CONCURRENCY_LIMIT' });
          }
          expect(layer.inflight).toBe(0);
          expect(clock.pending).toBe(0);
        },
      ),
      { numRuns: 80 },
    );
  });

  it('a queued call leaves the queue on abort, and the next one gets the slot', async () => {
    const layer = new ConcurrencyLimitLayer({ limit: 1, queue: 2 });
    const release: Array<() => void> = [];
    const svc = layer.wrap<number, number>({
      call: (n) => new Promise((resolve) => release.push(() => resolve(n))),
    });
    const first = svc.call(1);
    const ac = new AbortController();
    const second = svc.call(2, { signal: ac.signal }).catch((e: unknown) => e);
    const third = svc.call(3);
    expect(layer.saturated).toBe(true);
    ac.abort(new Error('gone'));
    expect(await second).toMatchObject({ message: 'gone' });
    release.shift()!();
    expect(await first).toBe(1);
    await tick();
    release.shift()!();
    expect(await third).toBe(3);
    expect(layer.queued).toBe(0);
  });

  it('AIMD grows while the limit is used and backs off on a drop; Gradient2 shrinks when latency rises', () => {
    const aimd = new AimdLimit({ initial: 10, max: 20 });
    for (let i = 0; i < 5; i++) aimd.sample(5, 8, false);
    expect(aimd.limit).toBe(15);
    aimd.sample(5, 8, true);
    expect(aimd.limit).toBe(13);
    const g = new Gradient2Limit({ initial: 50, max: 200 });
    for (let i = 0; i < 200; i++) g.sample(10, 50, false);
    const steady = g.limit;
    expect(steady).toBeGreaterThan(50);
    for (let i = 0; i < 20; i++) g.sample(40, g.limit, false);
    expect(g.limit).toBeLessThan(steady);
  });
});

describe('rate limiters', () => {
  it('TokenBucket and Gcra never admit more than burst + rate × elapsed, and answer alike', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 1, max: 10 }),
        fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 200 }),
        (rate, burst, gaps) => {
          let now = 0;
          const clock = { now: () => now, setTimeout: () => 0, clearTimeout: () => {} };
          const bucket = new TokenBucket({ rate, burst }, { clock });
          const gcra = new Gcra({ rate, burst }, { clock });
          let admitted = 0;
          let elapsed = 0;
          for (const gap of gaps) {
            now += gap;
            elapsed += gap;
            const a = bucket.acquire(1, undefined);
            const b = gcra.acquire(1, undefined);
            expect(a === 0).toBe(b === 0);
            if (a === 0) admitted++;
            else expect(a).toBeGreaterThan(0);
            expect(admitted).toBeLessThanOrEqual(burst + (rate * elapsed) / 1000 + 1e-9);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keys are limited apart; more permits than the burst never pass', () => {
    const clock = new VirtualClock();
    const gcra = new Gcra({ rate: 1, burst: 1 }, { clock });
    expect(gcra.acquire(1, 'a')).toBe(0);
    expect(gcra.acquire(1, 'b')).toBe(0);
    expect(gcra.acquire(1, 'a')).toBe(1000);
    expect(gcra.acquire(2, 'c')).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('RateLimitLayer', () => {
  it('a synchronous admission adds no promise hop: the inner promise is returned as it is', () => {
    const inner = Promise.resolve('x');
    const svc = new RateLimitLayer({ limiter: { acquire: () => 0 } }).wrap({ call: () => inner });
    expect(svc.call(1)).toBe(inner);
  });

  it('waits up to maxWaitMs, then refuses with ERR_RATE_LIMITED and retryAfterMs', async () => {
    const clock = new VirtualClock();
    const limiter = new TokenBucket({ rate: 10, burst: 1 }, { clock });
    const svc = new RateLimitLayer({ limiter, maxWaitMs: 150, clock }).wrap({
      call: async (n: number) => n,
    });
    expect(await svc.call(1)).toBe(1);
    const waited = svc.call(2);
    await clock.advance(100);
    expect(await waited).toBe(2);
    const refusing = new RateLimitLayer({ limiter, maxWaitMs: 50, clock }).wrap({
      call: async (n: number) => n,
    });
    const error = await refusing.call(3).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_RATE_LIMITED', retryAfterMs: 100 });
  });

  it('an asynchronous (fleet) limiter, per-key and per-request permits', async () => {
    const asked: Array<[number, string | undefined]> = [];
    const svc = new RateLimitLayer<{ tenant: string; size: number }>({
      limiter: {
        acquire: async (permits, key) => {
          asked.push([permits, key]);
          return key === 'noisy' ? 5_000 : 0;
        },
      },
      key: (r) => r.tenant,
      permits: (r) => r.size,
    }).wrap({ call: async (r: { tenant: string; size: number }) => r.tenant });
    expect(await svc.call({ tenant: 'calm', size: 2 })).toBe('calm');
    await expect(svc.call({ tenant: 'noisy', size: 1 })).rejects.toMatchObject({
      code: 'ERR_RATE_LIMITED',
      retryAfterMs: 5_000,
    });
    expect(asked).toEqual([
      [2, 'calm'],
      [1, 'noisy'],
    ]);
  });
});

describe('LoadShedLayer and FallbackLayer', () => {
  it('sheds at once with ERR_OVERLOADED while the concurrency layer below is saturated', async () => {
    const release: Array<() => void> = [];
    const limited = new ConcurrencyLimitLayer({ limit: 2, queue: 10 }).wrap<number, number>({
      call: (n) => new Promise((resolve) => release.push(() => resolve(n))),
    });
    const svc = new LoadShedLayer().wrap(limited);
    const a = svc.call(1);
    const b = svc.call(2);
    await expect(svc.call(3)).rejects.toMatchObject({ code: 'ERR_OVERLOADED' });
    for (const r of release) r();
    expect(await Promise.all([a, b])).toEqual([1, 2]);
    release.length = 0;
    const c = svc.call(4);
    release.shift()!();
    expect(await c).toBe(4);
    expect(() => new LoadShedLayer().wrap({ call: async () => 1 })).toThrow(/saturated/);
  });

  it('fallback answers a failure, not the caller’s own abort, and is skipped on success', async () => {
    const fallback = new FallbackLayer<number, string>({
      fallback: (e) => `fallback:${(e as Error).message}`,
    });
    const failing: Service<number, string> = {
      call: async (_n, ctx) => {
        if (ctx?.signal?.aborted) throw ctx.signal.reason;
        throw new TowerlineError('ERR_TIMEOUT', 'boom');
      },
    };
    expect(await fallback.wrap(failing).call(1)).toBe('fallback:boom');
    expect(await fallback.wrap({ call: async () => 'fine' }).call(1)).toBe('fine');
    const ac = new AbortController();
    ac.abort(new Error('mine'));
    await expect(fallback.wrap(failing).call(1, { signal: ac.signal })).rejects.toThrow('mine');
  });
});
