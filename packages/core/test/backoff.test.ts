import {
  backoff,
  ExponentialBackoff,
  ExponentialRandomBackoff,
  FixedInterval,
  type IntervalFunction,
  type Jitter,
  LinearBackoff,
  type RandomSource,
  seededRandom,
  TowerlineError,
} from '@towerline/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const HUGE = 1_000_000;
const attempt = fc.integer({ min: 1, max: 5_000 });
const ms = fc.double({ min: 0, max: 1e7, noNaN: true });
const multiplier = fc.double({ min: 1, max: 10, noNaN: true });
const factor = fc.double({ min: 0, max: 1, noNaN: true });
const jitter: fc.Arbitrary<Jitter> = fc.oneof(
  fc.constantFrom<Jitter>('full', 'equal', 'decorrelated'),
  factor,
);
const JUST_BELOW_ONE = 0.999_999_999_999;
/** Random sources at the edges of [0, 1) as well as ordinary seeded ones. */
const random: fc.Arbitrary<RandomSource> = fc.oneof(
  fc.constant(() => 0),
  fc.constant(() => JUST_BELOW_ONE),
  fc.constant(() => 1 - Number.EPSILON / 2),
  fc.integer().map((seed) => seededRandom(seed)),
);
/** `initial <= max`, 0 included. */
const range = fc.tuple(ms, ms).map(([a, b]) => ({ initial: Math.min(a, b), max: Math.max(a, b) }));

/** Finite, in [0, max]; returns the delay. */
function expectValidDelay(fn: IntervalFunction, n: number, max: number): number {
  const d = fn.next(n);
  expect(Number.isFinite(d)).toBe(true);
  expect(d).toBeGreaterThanOrEqual(0);
  expect(d).toBeLessThanOrEqual(max);
  return d;
}

function thrownBy(make: () => unknown): unknown {
  try {
    make();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

function expectInvalid(make: () => unknown, parameter: string): void {
  const error = thrownBy(make);
  expect(error).toBeInstanceOf(TowerlineError);
  expect(error).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', parameter });
  expect((error as Error).message).toContain(parameter);
}

describe('FixedInterval', () => {
  it('is always the interval: finite, in [0, max], constant', () => {
    fc.assert(
      fc.property(ms, attempt, (interval, n) => {
        const f = new FixedInterval(interval);
        expect(f.max).toBe(interval);
        expect(expectValidDelay(f, n, interval)).toBe(interval);
        expect(f.next(n + 1)).toBe(f.next(n));
        expect(f.next(HUGE)).toBe(interval);
      }),
    );
  });
});

describe('LinearBackoff', () => {
  it('is finite, in [0, max], non-decreasing, min(max, initial + increment × (n − 1))', () => {
    fc.assert(
      fc.property(range, ms, attempt, ({ initial, max }, increment, n) => {
        const f = new LinearBackoff({ initial, increment, max });
        const d = expectValidDelay(f, n, max);
        expect(d).toBe(Math.min(max, initial + increment * (n - 1)));
        expect(f.next(n + 1)).toBeGreaterThanOrEqual(d);
        expectValidDelay(f, HUGE, max);
      }),
    );
  });

  it('increments by initial unless told otherwise, and defaults max to 30 s', () => {
    const f = new LinearBackoff({ initial: 100 });
    expect([1, 2, 3].map((n) => f.next(n))).toEqual([100, 200, 300]);
    expect(f.next(HUGE)).toBe(30_000);
    expect(new LinearBackoff({ initial: 0 }).next(HUGE)).toBe(0);
  });
});

describe('ExponentialBackoff', () => {
  it('is finite, in [0, max] and non-decreasing, even for huge attempts', () => {
    fc.assert(
      fc.property(range, multiplier, attempt, ({ initial, max }, m, n) => {
        const f = new ExponentialBackoff({ initial, multiplier: m, max });
        const d = expectValidDelay(f, n, max);
        expect(f.next(n + 1)).toBeGreaterThanOrEqual(d);
        expectValidDelay(f, HUGE, max);
        expectValidDelay(f, Number.MAX_SAFE_INTEGER, max);
      }),
    );
  });

  it('is initial × multiplier^(n − 1) below the cap', () => {
    const f = new ExponentialBackoff({ initial: 100, multiplier: 3, max: 10_000 });
    expect([1, 2, 3, 4, 5, 6].map((n) => f.next(n))).toEqual([100, 300, 900, 2_700, 8_100, 10_000]);
    const defaults = new ExponentialBackoff({ initial: 1 });
    expect(defaults.multiplier).toBe(2);
    expect(defaults.next(HUGE)).toBe(30_000);
  });

  it('stays 0 (not NaN) with initial 0, whatever the attempt', () => {
    fc.assert(
      fc.property(multiplier, fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (m, n) => {
        expect(new ExponentialBackoff({ initial: 0, multiplier: m, max: 1_000 }).next(n)).toBe(0);
      }),
    );
  });
});

describe('ExponentialRandomBackoff', () => {
  const params = fc.record({ range, multiplier, jitter, random });
  const make =
    (p: { range: { initial: number; max: number }; multiplier: number; jitter: Jitter }) =>
    (r: RandomSource) =>
      new ExponentialRandomBackoff({
        ...p.range,
        multiplier: p.multiplier,
        jitter: p.jitter,
        random: r,
      });

  it('every delay is finite, in [0, max] and inside its declared bounds (cap after jitter)', () => {
    fc.assert(
      fc.property(params, attempt, (p, n) => {
        const f = make(p)(p.random);
        for (const k of [n, HUGE, Number.MAX_SAFE_INTEGER]) {
          const d = expectValidDelay(f, k, p.range.max);
          const bounds = f.bounds(k);
          expect(bounds.min).toBeGreaterThanOrEqual(0);
          expect(bounds.min).toBeLessThanOrEqual(bounds.max);
          expect(bounds.max).toBeLessThanOrEqual(p.range.max);
          expect(d).toBeGreaterThanOrEqual(bounds.min);
          expect(d).toBeLessThanOrEqual(bounds.max);
        }
      }),
    );
  });

  it('is non-decreasing before jitter: base(n + 1) >= base(n), and base is capped', () => {
    fc.assert(
      fc.property(params, attempt, (p, n) => {
        const f = make(p)(p.random);
        expect(f.base(n + 1)).toBeGreaterThanOrEqual(f.base(n));
        expect(f.base(n)).toBeLessThanOrEqual(p.range.max);
        expect(f.base(HUGE)).toBeGreaterThanOrEqual(f.base(n));
        expect(f.base(HUGE)).toBeLessThanOrEqual(p.range.max);
      }),
    );
  });

  it('spans its bounds: random 0 gives the lower bound, random just below 1 the upper', () => {
    fc.assert(
      fc.property(params, attempt, (p, n) => {
        const low = make(p)(() => 0);
        const high = make(p)(() => JUST_BELOW_ONE);
        const { min, max } = low.bounds(n);
        expect(low.next(n)).toBe(min);
        const top = high.next(n);
        expect(top).toBeLessThanOrEqual(max);
        expect(top).toBeGreaterThanOrEqual(min + (max - min) * 0.999_999);
      }),
    );
  });

  it('declares the range of each jitter kind', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1, max: 1e5, noNaN: true }),
        multiplier,
        fc.integer({ min: 1, max: 40 }),
        factor,
        (initial, m, n, j) => {
          const max = initial * 1e4;
          const kind = (jitter: Jitter) =>
            new ExponentialRandomBackoff({ initial, multiplier: m, max, jitter });
          const d = kind('full').base(n);
          expect(d).toBe(Math.min(max, initial * m ** (n - 1)));
          expect(kind('full').bounds(n)).toEqual({ min: 0, max: d });
          expect(kind('equal').bounds(n)).toEqual({ min: d / 2, max: d });
          expect(kind('decorrelated').bounds(n)).toEqual({
            min: initial,
            max: Math.min(max, 3 * d),
          });
          expect(kind(j).bounds(n)).toEqual({ min: d * (1 - j), max: Math.min(max, d * (1 + j)) });
        },
      ),
    );
  });

  it('decorrelated jitter reaches spread × d, capped', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1, max: 1e5, noNaN: true }),
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 1, max: 100, noNaN: true }),
        (initial, n, spread) => {
          const max = initial * 1e4;
          const f = new ExponentialRandomBackoff({ initial, max, jitter: 'decorrelated', spread });
          expect(f.bounds(n)).toEqual({ min: initial, max: Math.min(max, spread * f.base(n)) });
          const draw = f.next(n);
          expect(draw).toBeGreaterThanOrEqual(initial);
          expect(draw).toBeLessThanOrEqual(Math.min(max, spread * f.base(n)));
        },
      ),
    );
  });

  it('draws spread over the whole declared range, never outside it', () => {
    for (const jitter of ['full', 'equal', 'decorrelated', 0.2, 1] as const) {
      const f = new ExponentialRandomBackoff({
        initial: 100,
        max: 1e9,
        jitter,
        random: seededRandom(42),
      });
      const { min, max } = f.bounds(5);
      const draws = Array.from({ length: 2_000 }, () => f.next(5));
      const lo = Math.min(...draws);
      const hi = Math.max(...draws);
      expect(lo).toBeGreaterThanOrEqual(min);
      expect(hi).toBeLessThanOrEqual(max);
      expect(lo).toBeLessThan(min + (max - min) * 0.02);
      expect(hi).toBeGreaterThan(max - (max - min) * 0.02);
    }
  });

  it('is deterministic with a seeded random', () => {
    fc.assert(
      fc.property(fc.integer(), params, (seed, p) => {
        const run = () => {
          const f = make(p)(seededRandom(seed));
          return Array.from({ length: 30 }, (_, i) => f.next(i + 1));
        };
        expect(run()).toEqual(run());
      }),
    );
  });

  it('keeps a random source that strays outside [0, 1) (or returns NaN) inside the bounds', () => {
    const at = (random: RandomSource, jitter: Jitter = 'full') =>
      new ExponentialRandomBackoff({ initial: 100, max: 1_000, jitter, random }).next(3);
    expect(at(() => 7)).toBe(400);
    expect(at(() => 1)).toBe(400);
    expect(at(() => -3, 'equal')).toBe(200);
    expect(at(() => Number.NaN, 'equal')).toBe(200);
  });

  it('stays 0 with initial 0 for every jitter kind', () => {
    for (const j of ['full', 'equal', 'decorrelated', 0.5] as const) {
      const f = new ExponentialRandomBackoff({ initial: 0, max: 1_000, jitter: j });
      expect(f.next(1)).toBe(0);
      expect(f.next(HUGE)).toBe(0);
      expect(f.bounds(HUGE)).toEqual({ min: 0, max: 0 });
    }
  });

  it('defaults to full jitter, ×2, 30 s cap', () => {
    const f = new ExponentialRandomBackoff({ initial: 100 });
    expect(f.jitter).toBe('full');
    expect(f.multiplier).toBe(2);
    expect(f.max).toBe(30_000);
  });
});

describe('presets', () => {
  const presets: Array<[string, (r: RandomSource) => IntervalFunction, number]> = [
    ['grpc', (r) => backoff.grpc({ random: r }), 120_000],
    ['ioredis', () => backoff.ioredis(), 2_000],
    ['awsFullJitter', (r) => backoff.awsFullJitter({ random: r }), 20_000],
  ];

  it.each(presets)(
    '%s: finite, in [0, cap], inside its bounds, even for huge attempts',
    (_n, make, cap) => {
      fc.assert(
        fc.property(random, attempt, (r, n) => {
          const f = make(r);
          expect(f.max).toBe(cap);
          for (const k of [n, HUGE]) {
            const d = expectValidDelay(f, k, cap);
            if (f instanceof ExponentialRandomBackoff) {
              expect(d).toBeGreaterThanOrEqual(f.bounds(k).min);
              expect(d).toBeLessThanOrEqual(f.bounds(k).max);
            }
          }
        }),
      );
    },
  );

  it.each(presets)('%s: non-decreasing before jitter', (_n, make) => {
    fc.assert(
      fc.property(attempt, (n) => {
        const f = make(Math.random);
        const base = (k: number) => (f instanceof ExponentialRandomBackoff ? f.base(k) : f.next(k));
        expect(base(n + 1)).toBeGreaterThanOrEqual(base(n));
      }),
    );
  });

  it.each(presets)('%s: deterministic with a seeded random', (_n, make) => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const run = () => {
          const f = make(seededRandom(seed));
          return Array.from({ length: 25 }, (_, i) => f.next(i + 1));
        };
        expect(run()).toEqual(run());
      }),
    );
  });

  it('grpc: 1 s, ×1.6, ±20 %, capped at 120 s after jitter', () => {
    const grpc = backoff.grpc({ random: () => JUST_BELOW_ONE });
    expect(grpc.base(1)).toBe(1_000);
    expect(grpc.base(2)).toBe(1_600);
    expect(grpc.base(3)).toBeCloseTo(2_560, 9);
    expect(grpc.max).toBe(120_000);
    expect(grpc.jitter).toBe(0.2);
    expect(grpc.bounds(1)).toEqual({ min: 800, max: 1_200 });
    // At the cap the +20 % side of the jitter is cut off, never added after the cap.
    expect(grpc.bounds(100)).toEqual({ min: 96_000, max: 120_000 });
    expect(grpc.next(100)).toBeLessThanOrEqual(120_000);
    expect(grpc.next(100)).toBeGreaterThan(119_999);
  });

  it('ioredis: min(times × 50, 2000)', () => {
    const f = backoff.ioredis();
    expect([1, 2, 10, 40, 41, HUGE].map((n) => f.next(n))).toEqual([
      50, 100, 500, 2_000, 2_000, 2_000,
    ]);
  });

  it('awsFullJitter: uniform in [0, min(cap, base × 2^(n − 1))], 100 ms / 20 s by default', () => {
    const f = backoff.awsFullJitter({ random: () => 0.5 });
    expect(f.jitter).toBe('full');
    expect(f.bounds(1)).toEqual({ min: 0, max: 100 });
    expect(f.next(3)).toBe(200);
    expect(f.bounds(30)).toEqual({ min: 0, max: 20_000 });
    expect(backoff.awsFullJitter({ base: 10, cap: 50 }).bounds(10)).toEqual({ min: 0, max: 50 });
  });

  it('the factory helpers build the classes', () => {
    expect(backoff.fixed(5)).toBeInstanceOf(FixedInterval);
    expect(backoff.linear({ initial: 5 })).toBeInstanceOf(LinearBackoff);
    expect(backoff.exponential({ initial: 5 })).toBeInstanceOf(ExponentialBackoff);
    expect(backoff.exponentialRandom({ initial: 5 })).toBeInstanceOf(ExponentialRandomBackoff);
  });
});

describe('invalid parameters throw ERR_INVALID_ARGUMENT naming the parameter', () => {
  const badDelay = fc.oneof(
    fc.double({ max: -Number.MIN_VALUE, noNaN: true }),
    fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY),
    // (null and undefined mean "the default" for the optional ones, so they are not here)
    fc.constantFrom<unknown>('5', {}, 10n, true),
  );
  const badAttempt = fc.oneof(
    fc.integer({ max: 0 }),
    fc.double({ noNaN: true }).filter((x) => !Number.isInteger(x)),
    fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, 1.5),
  );
  const fns: Array<[string, IntervalFunction]> = [
    ['FixedInterval', new FixedInterval(1)],
    ['LinearBackoff', new LinearBackoff({ initial: 1 })],
    ['ExponentialBackoff', new ExponentialBackoff({ initial: 1 })],
    ['ExponentialRandomBackoff', new ExponentialRandomBackoff({ initial: 1 })],
    ['grpc', backoff.grpc()],
  ];

  it('negative, NaN, infinite or non-number delays', () => {
    fc.assert(
      fc.property(badDelay, (bad) => {
        const v = bad as number;
        expectInvalid(() => new FixedInterval(v), 'interval');
        expectInvalid(() => new LinearBackoff({ initial: v }), 'initial');
        expectInvalid(() => new LinearBackoff({ initial: 1, increment: v }), 'increment');
        expectInvalid(() => new LinearBackoff({ initial: 1, max: v }), 'max');
        expectInvalid(() => new ExponentialBackoff({ initial: v }), 'initial');
        expectInvalid(() => new ExponentialBackoff({ initial: 1, max: v }), 'max');
        expectInvalid(() => new ExponentialRandomBackoff({ initial: v }), 'initial');
        expectInvalid(() => new ExponentialRandomBackoff({ initial: 1, max: v }), 'max');
        expectInvalid(() => backoff.awsFullJitter({ cap: v }), 'max');
      }),
    );
  });

  it('initial > max', () => {
    fc.assert(
      fc.property(ms, fc.double({ min: 1e-3, max: 1e7, noNaN: true }), (max, extra) => {
        const initial = max + extra;
        fc.pre(initial > max);
        expectInvalid(() => new LinearBackoff({ initial, max }), 'initial');
        expectInvalid(() => new ExponentialBackoff({ initial, max }), 'initial');
        expectInvalid(() => new ExponentialRandomBackoff({ initial, max }), 'initial');
      }),
    );
    expectInvalid(() => backoff.awsFullJitter({ base: 100, cap: 10 }), 'initial');
  });

  it('multiplier < 1, NaN or infinite', () => {
    const bad = fc.oneof(
      fc.double({ min: -1e9, max: 1 - 1e-9, noNaN: true }),
      fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY),
    );
    fc.assert(
      fc.property(bad, (m) => {
        expectInvalid(() => new ExponentialBackoff({ initial: 1, multiplier: m }), 'multiplier');
        expectInvalid(
          () => new ExponentialRandomBackoff({ initial: 1, multiplier: m }),
          'multiplier',
        );
      }),
    );
  });

  it('a bad spread, or a spread without decorrelated jitter', () => {
    for (const bad of [0.5, 0, -1, Number.NaN, Number.POSITIVE_INFINITY, '3']) {
      expectInvalid(
        () =>
          new ExponentialRandomBackoff({
            initial: 1,
            jitter: 'decorrelated',
            spread: bad as number,
          }),
        'spread',
      );
    }
    for (const jitter of ['full', 'equal', 0.2] as const)
      expectInvalid(
        () => new ExponentialRandomBackoff({ initial: 1, jitter, spread: 3 }),
        'spread',
      );
  });

  it('a bad jitter or random source', () => {
    for (const j of [1.5, -0.1, Number.NaN, Number.POSITIVE_INFINITY, 'most', 'Full', true]) {
      expectInvalid(
        () => new ExponentialRandomBackoff({ initial: 1, jitter: j as Jitter }),
        'jitter',
      );
    }
    for (const r of [4, 'Math.random', {}]) {
      expectInvalid(
        () => new ExponentialRandomBackoff({ initial: 1, random: r as unknown as RandomSource }),
        'random',
      );
    }
  });

  it.each(fns)('%s: attempt 0, negative, fractional (1.5), NaN or infinite', (_name, f) => {
    fc.assert(
      fc.property(badAttempt, (n) => {
        expectInvalid(() => f.next(n), 'attempt');
        if (f instanceof ExponentialRandomBackoff) {
          expectInvalid(() => f.base(n), 'attempt');
          expectInvalid(() => f.bounds(n), 'attempt');
        }
      }),
    );
  });
});
