import { type CallContext, RequestContext, type Service, VirtualClock } from '@towerline/core';
import { HedgeLayer } from '@towerline/policies';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/** Answers after `ms[attempt]` virtual ms (attempt counted per call); records each attempt's signal. */
function delayed(clock: VirtualClock, ms: number[], seen: CallContext[]): Service<number, string> {
  return {
    call: (_req, ctx) => {
      const attempt = seen.length;
      seen.push(ctx ?? {});
      return new Promise((resolve, reject) => {
        const t = clock.setTimeout(() => resolve(`attempt${attempt}`), ms[attempt] ?? 0);
        ctx?.signal?.addEventListener('abort', () => {
          clock.clearTimeout(t);
          reject(ctx.signal!.reason);
        });
      });
    },
  };
}

const budget = { withdraw: () => true };

describe('HedgeLayer', () => {
  it('never hedges a request that is not idempotent, whatever the latencies', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 20 }),
        fc.constantFrom(undefined, false),
        async (latencies, idempotent) => {
          const clock = new VirtualClock();
          const seen: CallContext[] = [];
          const layer = new HedgeLayer({ delayMs: 10, budget, clock });
          const svc = layer.wrap(delayed(clock, latencies, seen));
          const pending = svc.call(1, idempotent === undefined ? undefined : { idempotent });
          await clock.advance(1_000);
          expect(await pending).toBe('attempt0');
          expect(seen).toHaveLength(1);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('hedges a slow idempotent request after the delay; the first answer wins, the loser is aborted', async () => {
    const clock = new VirtualClock();
    const seen: CallContext[] = [];
    const layer = new HedgeLayer({ delayMs: 20, budget, clock });
    const hedged: unknown[] = [];
    layer.events.on('hedged', (e) => hedged.push(e));
    const svc = layer.wrap(delayed(clock, [500, 30], seen));
    const ctx = new RequestContext({ idempotent: true });
    const pending = svc.call(1, ctx);
    await clock.advance(60);
    expect(await pending).toBe('attempt1');
    expect(seen[0]!.signal!.aborted).toBe(true);
    expect(hedged).toEqual([{ delayMs: 20 }]);
    expect(ctx.attempts).toBe(2);
    await clock.advance(1_000);
    expect(clock.pending).toBe(0);
  });

  it('a fast answer makes no hedge; the budget and maxAttempts bound the extra load', async () => {
    const clock = new VirtualClock();
    const seen: CallContext[] = [];
    const svc = new HedgeLayer({ delayMs: 20, clock }).wrap(delayed(clock, [5], seen));
    const fast = svc.call(1, { idempotent: true });
    await clock.advance(10);
    expect(await fast).toBe('attempt0');
    // The default budget: a hedge per ten calls at most.
    const slowSeen: CallContext[] = [];
    const slow = new HedgeLayer({ delayMs: 1, clock }).wrap(
      delayed(
        clock,
        Array.from({ length: 200 }, () => 50),
        slowSeen,
      ),
    );
    const calls = Array.from({ length: 100 }, () => slow.call(1, { idempotent: true }));
    await clock.advance(200);
    await Promise.all(calls);
    expect(slowSeen.length - 100).toBeLessThanOrEqual(10);
    const capped = new RequestContext({ idempotent: true });
    capped.maxAttempts = 1;
    const one: CallContext[] = [];
    const single = new HedgeLayer({ delayMs: 1, budget, clock }).wrap(delayed(clock, [50, 1], one));
    const p = single.call(1, capped);
    await clock.advance(100);
    expect(await p).toBe('attempt0');
    expect(one).toHaveLength(1);
  });

  it('a percentile delay follows the latencies seen', async () => {
    const clock = new VirtualClock();
    const layer = new HedgeLayer({ percentile: 0.9, minSamples: 20, budget, clock });
    expect(layer.delayMs).toBeUndefined();
    const seen: CallContext[] = [];
    const svc = layer.wrap(
      delayed(
        clock,
        Array.from({ length: 40 }, (_, i) => (i % 10) + 1),
        seen,
      ),
    );
    for (let i = 0; i < 40; i++) {
      const p = svc.call(1, { idempotent: true });
      await clock.advance(20);
      await p;
    }
    expect(layer.delayMs).toBeGreaterThanOrEqual(9);
    expect(layer.delayMs).toBeLessThanOrEqual(10);
  });
});
