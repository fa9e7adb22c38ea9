import { systemClock } from '@towerline/core';
import { GcraLimiter } from '@towerline/fleet';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/** A clock moved by hand (only `now` matters to the limiter). */
function handClock() {
  let t = 1_000_000;
  return {
    ...systemClock,
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

describe('GcraLimiter', () => {
  it('never admits more than limit × window / period + burst in any window', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000 }),
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 3 })), {
          maxLength: 300,
        }),
        (limit, burst, steps) => {
          const clock = handClock();
          const g = new GcraLimiter({ limit, periodMs: 1_000, burst, clock });
          const taken: Array<[number, number]> = [];
          for (const [dt, n] of steps) {
            clock.advance(dt);
            if (g.acquire(n, undefined) === 0) taken.push([clock.now(), n]);
          }
          for (let i = 0; i < taken.length; i++) {
            let sum = 0;
            for (let j = i; j < taken.length; j++) {
              sum += taken[j]![1];
              const span = taken[j]![0] - taken[i]![0];
              expect(sum).toBeLessThanOrEqual((limit * (span + 1e-3)) / 1_000 + burst + 1e-9);
            }
          }
        },
      ),
    );
  });

  it('a refusal names the wait after which the permit is taken', () => {
    const clock = handClock();
    const g = new GcraLimiter({ limit: 10, burst: 1, clock });
    expect(g.acquire(1, undefined)).toBe(0);
    const wait = g.acquire(1, undefined);
    expect(wait).toBe(100);
    clock.advance(wait - 1);
    expect(g.acquire(1, undefined)).toBeGreaterThan(0);
    clock.advance(1);
    expect(g.acquire(1, undefined)).toBe(0);
    // Keys are limited apart.
    expect(g.acquire(1, 'other')).toBe(0);
  });
});
