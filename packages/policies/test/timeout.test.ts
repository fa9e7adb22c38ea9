import { getEventListeners } from 'node:events';
import {
  type CallContext,
  type Clock,
  RequestContext,
  type Service,
  ServiceBuilder,
  VirtualClock,
} from '@towerline/core';
import { TimeoutLayer } from '@towerline/policies';
import { RetryLayer } from '@towerline/retry';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/** A clock that counts the timers made on it. */
function counting(clock: VirtualClock): Clock & { timers: number } {
  const c = {
    timers: 0,
    now: () => clock.now(),
    setTimeout: (fn: () => void, ms: number) => {
      c.timers++;
      return clock.setTimeout(fn, ms);
    },
    clearTimeout: (h: unknown) => clock.clearTimeout(h),
  };
  return c;
}

/** Never settles, and ignores its signal. */
const stuck: Service<number, number> = { call: () => new Promise<number>(() => {}) };

/** Settles when its signal aborts, with the signal's reason; records what it saw. */
function honouring(seen: CallContext[] = []): Service<number, number> {
  return {
    call: (_req, ctx) => {
      seen.push({ deadline: ctx?.deadline, signal: ctx?.signal });
      return new Promise((_resolve, reject) => {
        ctx!.signal!.addEventListener('abort', () => reject(ctx!.signal!.reason), { once: true });
      });
    },
  };
}

describe('TimeoutLayer', () => {
  it('rejects ERR_TIMEOUT at the deadline even when the inner call ignores its signal', async () => {
    const clock = new VirtualClock(1_000);
    const layer = new TimeoutLayer({ ms: 100, clock });
    const events: unknown[] = [];
    layer.events.on('timeout', (e) => events.push(e));
    const outcome = layer
      .wrap(stuck)
      .call(1)
      .catch((e: unknown) => e);
    let settled = false;
    void outcome.then(() => {
      settled = true;
    });
    await clock.advance(99);
    expect(settled).toBe(false);
    await clock.advance(2);
    expect(await outcome).toMatchObject({ code: 'ERR_TIMEOUT', mayHaveExecuted: true });
    expect(events).toEqual([{ timeoutMs: 100, calls: 1 }]);
  });

  it('makes no timer per call: a thousand calls, sequential and concurrent, share a handful', async () => {
    const virtual = new VirtualClock();
    const clock = counting(virtual);
    const svc = new TimeoutLayer({ ms: 1_000, clock }).wrap({ call: async (x: number) => x });
    for (let i = 0; i < 500; i++) expect(await svc.call(i)).toBe(i);
    await Promise.all(Array.from({ length: 500 }, (_, i) => svc.call(i)));
    expect(clock.timers).toBeLessThanOrEqual(2);
    await virtual.advance(2_000);
    expect(virtual.pending).toBe(0);
  });

  it('exact mode lets go of a window once its calls settled, signal read or not', async () => {
    const clock = new VirtualClock();
    const svc = new TimeoutLayer({ ms: 10_000, clock }).wrap<number, boolean>({
      call: async (_n, ctx) => ctx!.signal!.aborted,
    });
    const ctxs = Array.from({ length: 100 }, () => new RequestContext());
    expect(await Promise.all(ctxs.map((c, i) => svc.call(i, c)))).toEqual(ctxs.map(() => false));
    await clock.advance(5);
    // No window waits for its deadline 10 s away: the timer is gone.
    expect(clock.pending).toBe(0);
  });

  it('a long-lived caller signal does not collect a listener per call', async () => {
    const clock = new VirtualClock();
    const svc = new TimeoutLayer({ ms: 10_000, clock }).wrap<number, number>({
      call: async (n, ctx) => (ctx!.signal!.aborted ? -1 : n),
    });
    const app = new AbortController();
    for (let i = 0; i < 1_000; i++) expect(await svc.call(i, { signal: app.signal })).toBe(i);
    expect(getEventListeners(app.signal, 'abort').length).toBeLessThanOrEqual(1);
    await clock.advance(20_000);
    expect(getEventListeners(app.signal, 'abort')).toHaveLength(0);
  });

  it('optimistic mode aborts the signal at the deadline and lets the inner service reject', async () => {
    const clock = new VirtualClock();
    const seen: CallContext[] = [];
    const svc = new TimeoutLayer({ ms: 50, mode: 'optimistic', clock }).wrap(honouring(seen));
    const outcome = svc.call(1).catch((e: unknown) => e);
    expect(seen[0]!.deadline).toBe(50);
    await clock.advance(50);
    expect(await outcome).toMatchObject({ code: 'ERR_TIMEOUT' });
    expect(seen[0]!.signal!.aborted).toBe(true);
  });

  it('the earliest deadline wins: nested layers and a caller deadline, in any order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 500 }),
        fc.integer({ min: 1, max: 500 }),
        fc.option(fc.integer({ min: 1, max: 500 }), { nil: undefined }),
        fc.boolean(),
        async (outerMs, innerMs, callerMs, shared) => {
          const clock = new VirtualClock();
          const seen: CallContext[] = [];
          const svc = new ServiceBuilder()
            .layer(new TimeoutLayer({ ms: outerMs, clock }))
            .layer(new TimeoutLayer({ ms: innerMs, clock }))
            .service(honouring(seen));
          const init = { deadline: callerMs };
          const outcome = svc
            .call(1, shared ? new RequestContext(init) : init)
            .catch((e: unknown) => e);
          const expected = Math.min(outerMs, innerMs, callerMs ?? Number.POSITIVE_INFINITY);
          expect(seen[0]!.deadline).toBe(expected);
          let settled = false;
          void outcome.then(() => {
            settled = true;
          });
          await clock.advance(expected - 1);
          expect(settled).toBe(false);
          await clock.advance(1);
          expect(await outcome).toMatchObject({ code: 'ERR_TIMEOUT' });
          await clock.advance(1_000);
          expect(clock.pending).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('every call ends at its own deadline or its own answer, whichever is first (generated schedules)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            at: fc.integer({ min: 0, max: 50 }),
            deadline: fc.option(fc.integer({ min: 1, max: 200 }), { nil: undefined }),
            answer: fc.integer({ min: 0, max: 250 }),
            withContext: fc.boolean(),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        async (calls) => {
          const clock = new VirtualClock();
          const layer = new TimeoutLayer({ ms: 100, clock });
          let timedOut = 0;
          layer.events.on('timeout', (e) => {
            timedOut += e.calls;
          });
          const svc = layer.wrap<number, string>({
            call: (ms) => new Promise((resolve) => clock.setTimeout(() => resolve('answer'), ms)),
          });
          const ended: Array<{ at: number; how: string }> = [];
          const sorted = [...calls].sort((a, b) => a.at - b.at);
          const runs: Promise<void>[] = [];
          for (const [i, c] of sorted.entries()) {
            await clock.advance(c.at - clock.now());
            const deadline = c.deadline === undefined ? undefined : clock.now() + c.deadline;
            runs.push(
              (c.withContext || deadline !== undefined
                ? svc.call(c.answer, { deadline })
                : svc.call(c.answer)
              ).then(
                (how) => {
                  ended[i] = { at: clock.now(), how };
                },
                (e: { code: string }) => {
                  ended[i] = { at: clock.now(), how: e.code };
                },
              ),
            );
          }
          await clock.advance(1_000);
          await Promise.all(runs);
          for (const [i, c] of sorted.entries()) {
            const limit = Math.min(100, c.deadline ?? 100);
            const expected =
              c.answer < limit
                ? { at: c.at + c.answer, how: 'answer' }
                : { at: c.at + limit, how: 'ERR_TIMEOUT' };
            if (c.answer === limit) expect(ended[i]!.at).toBe(c.at + limit);
            else expect(ended[i]).toEqual(expected);
          }
          // Each call settled once, and the events counted exactly the calls the deadline ended.
          expect(timedOut).toBe(ended.filter((e) => e.how === 'ERR_TIMEOUT').length);
          expect(clock.pending).toBe(0);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('a caller signal still aborts the call, and a deadline already past rejects at once', async () => {
    const clock = new VirtualClock(10);
    const svc = new TimeoutLayer({ ms: 1_000, clock }).wrap(honouring());
    const ac = new AbortController();
    const outcome = svc.call(1, { signal: ac.signal }).catch((e: unknown) => e);
    ac.abort(new Error('caller gave up'));
    expect(await outcome).toMatchObject({ message: 'caller gave up' });
    const late = await svc.call(1, { deadline: 5 }).catch((e: unknown) => e);
    expect(late).toMatchObject({ code: 'ERR_TIMEOUT' });
  });

  it('an attempt timeout under a retry: each attempt gets its own deadline and signal', async () => {
    const clock = new VirtualClock();
    let calls = 0;
    const seen: CallContext[] = [];
    const inner: Service<number, string> = {
      call: (_req, ctx) => {
        calls++;
        seen.push({ deadline: ctx?.deadline, signal: ctx?.signal });
        if (calls === 1) return new Promise<string>(() => {});
        return Promise.resolve('second');
      },
    };
    const svc = new ServiceBuilder()
      .layer(new TimeoutLayer({ ms: 1_000, clock }))
      .layer(
        new RetryLayer({ maxAttempts: 3, backoff: { next: () => 0 }, clock, idempotent: true }),
      )
      .layer(new TimeoutLayer({ ms: 100, clock }))
      .service(inner);
    const outcome = svc.call(1);
    await clock.advance(101);
    expect(await outcome).toBe('second');
    expect(seen[0]!.deadline).toBe(100);
    expect(seen[1]!.deadline).toBe(200);
    expect(seen[0]!.signal!.aborted).toBe(true);
    expect(seen[1]!.signal!.aborted).toBe(false);
    await clock.advance(2_000);
    expect(clock.pending).toBe(0);
  });

  it('rejects a bad duration', () => {
    expect(() => new TimeoutLayer({ ms: 0 })).toThrow(/ms/);
    expect(() => new TimeoutLayer({ ms: Number.NaN })).toThrow(/ms/);
  });

  it('on the real clock, a deadline fires, and no timer is left behind', async () => {
    const svc = new TimeoutLayer({ ms: 20 }).wrap(stuck);
    const error = await svc.call(1).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_TIMEOUT' });
  });
});
