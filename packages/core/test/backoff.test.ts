import {
  backoff,
  ExponentialBackoff,
  ExponentialRandomBackoff,
  FixedInterval,
  type IntervalFunction,
  type Jitter,
  LinearBackoff,
  seededRandom,
  TowerlineError,
} from '@towerline/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const attempt = fc.integer({ min: 1, max: 2_000 });
const ms = fc.double({ min: 0, max: 1e7, noNaN: true });
const multiplier = fc.double({ min: 1, max: 10, noNaN: true });
const jitter: fc.Arbitrary<Jitter> = fc.oneof(
  fc.constantFrom<Jitter>('full', 'equal', 'decorrelated'),
  fc.double({ min: 0, max: 1, noNaN: true }),
);
/** Random sources that return edge values as well as ordinary ones. */
const randomSource = fc.oneof(
  fc.constant(() => 0),
  fc.constant(() => 0.999_999_999),
  fc.integer().map((seed) => seededRandom(seed)),
);

const params = fc
  .record({ initial: ms, max: ms, multiplier, jitter, random: randomSource })
  .map((p) => ({ ...p, initial: Math.min(p.initial, p.max), max: Math.max(p.initial, p.max) }));

function expectValidDelay(fn: IntervalFunction, n: number, max: number) {
  const d = fn.next(n);
  expect(Number.isFinite(d)).toBe(true);
  expect(d).toBeGreaterThanOrEqual(0);
  expect(d).toBeLessThanOrEqual(max);
  return d;
}

describe('interval functions: properties', () => {
  it('FixedInterval: always the interval', () => {
    fc.assert(
      fc.property(ms, attempt, (interval, n) => {
        expect(new FixedInterval(interval).next(n)).toBe(interval);
      }),
    );
  });

  it('LinearBackoff: finite, within [0, max], non-decreasing', () => {
    fc.assert(
      fc.property(ms, ms, ms, attempt, (initial, increment, cap, n) => {
        const max = Math.max(initial, cap);
        const f = new LinearBackoff({ initial, increment, max });
        const d = expectValidDelay(f, n, max);
        expect(f.next(n + 1)).toBeGreaterThanOrEqual(d);
      }),
    );
  });

  it('ExponentialBackoff: finite, within [0, max], non-decreasing, even for huge attempts', () => {
    fc.assert(
      fc.property(params, attempt, ({ initial, max, multiplier }, n) => {
        const f = new ExponentialBackoff({ initial, max, multiplier });
        const d = expectValidDelay(f, n, max);
        expect(f.next(n + 1)).toBeGreaterThanOrEqual(d);
        expectValidDelay(f, 1_000_000, max);
      }),
    );
  });

  it('ExponentialRandomBackoff: finite, within its declared bounds and [0, max] (cap after jitter)', () => {
    fc.assert(
      fc.property(params, attempt, ({ initial, max, multiplier, jitter, random }, n) => {
        const f = new ExponentialRandomBackoff({ initial, max, multiplier, jitter, random });
        const d = expectValidDelay(f, n, max);
        const bounds = f.bounds(n);
        expect(d).toBeGreaterThanOrEqual(bounds.min);
        expect(d).toBeLessThanOrEqual(bounds.max);
        expect(bounds.max).toBeLessThanOrEqual(max);
        expectValidDelay(f, 1_000_000, max);
      }),
    );
  });

  it('ExponentialRandomBackoff: non-decreasing before jitter', () => {
    fc.assert(
      fc.property(params, attempt, ({ initial, max, multiplier, jitter }, n) => {
        const f = new ExponentialRandomBackoff({ initial, max, multiplier, jitter });
        expect(f.base(n + 1)).toBeGreaterThanOrEqual(f.base(n));
        expect(f.base(n)).toBeLessThanOrEqual(max);
      }),
    );
  });

  it('jitter spreads inside the declared range for each kind', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1, max: 1e5, noNaN: true }),
        fc.integer({ min: 1, max: 30 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (initial, n, f) => {
          const max = initial * 1e4;
          const make = (jitter: Jitter) => new ExponentialRandomBackoff({ initial, max, jitter });
          const d = make('full').base(n);
          expect(make('full').bounds(n)).toEqual({ min: 0, max: d });
          expect(make('equal').bounds(n)).toEqual({ min: d / 2, max: d });
          expect(make('decorrelated').bounds(n)).toEqual({
            min: initial,
            max: Math.min(max, 3 * d),
          });
          const factor = make(f).bounds(n);
          expect(factor.min).toBeCloseTo(d * (1 - f), 6);
          expect(factor.max).toBeCloseTo(Math.min(max, d * (1 + f)), 6);
        },
      ),
    );
  });

  it('is deterministic with a seeded random', () => {
    fc.assert(
      fc.property(fc.integer(), jitter, (seed, j) => {
        const a = new ExponentialRandomBackoff({
          initial: 100,
          max: 60_000,
          jitter: j,
          random: seededRandom(seed),
        });
        const b = new ExponentialRandomBackoff({
          initial: 100,
          max: 60_000,
          jitter: j,
          random: seededRandom(seed),
        });
        const runA = Array.from({ length: 20 }, (_, i) => a.next(i + 1));
        const runB = Array.from({ length: 20 }, (_, i) => b.next(i + 1));
        expect(runA).toEqual(runB);
      }),
    );
  });

  it('keeps a random source that strays outside [0, 1) inside the bounds', () => {
    const f = new ExponentialRandomBackoff({
      initial: 100,
      max: 1_000,
      jitter: 'full',
      random: () => 7,
    });
    expect(f.next(3)).toBe(400);
    const g = new ExponentialRandomBackoff({
      initial: 100,
      max: 1_000,
      jitter: 'equal',
      random: () => -3,
    });
    expect(g.next(3)).toBe(200);
  });

  it('handles initial 0 without NaN', () => {
    for (const j of ['full', 'equal', 'decorrelated', 0.5] as const) {
      const f = new ExponentialRandomBackoff({ initial: 0, max: 1_000, jitter: j });
      expect(f.next(1_000_000)).toBe(0);
    }
  });
});

describe('presets', () => {
  it('grpc: 1 s, x1.6, ±20 %, capped at 120 s (after jitter)', () => {
    const grpc = backoff.grpc({ random: () => 0.999_999 });
    expect(grpc.base(1)).toBe(1_000);
    expect(grpc.base(2)).toBeCloseTo(1_600, 6);
    expect(grpc.bounds(1)).toEqual({ min: 800, max: 1_200 });
    expect(grpc.next(100)).toBeLessThanOrEqual(120_000);
    expect(grpc.bounds(100)).toEqual({ min: 96_000, max: 120_000 });
    expect(grpc.jitter).toBe(0.2);
  });

  it('ioredis: min(times × 50, 2000)', () => {
    const f = backoff.ioredis();
    expect([1, 2, 10, 40, 41, 1000].map((n) => f.next(n))).toEqual([
      50, 100, 500, 2_000, 2_000, 2_000,
    ]);
  });

  it('awsFullJitter: uniform in [0, min(cap, base × 2^(n−1))], defaults 100 ms / 20 s', () => {
    const f = backoff.awsFullJitter({ random: () => 0.5 });
    expect(f.bounds(1)).toEqual({ min: 0, max: 100 });
    expect(f.next(3)).toBe(200);
    expect(f.bounds(30)).toEqual({ min: 0, max: 20_000 });
    expect(backoff.awsFullJitter({ base: 10, cap: 50 }).bounds(10).max).toBe(50);
  });
});

describe('invalid parameters', () => {
  const cases: Array<[string, () => unknown, string]> = [
    ['negative interval', () => new FixedInterval(-1), 'interval'],
    ['NaN interval', () => new FixedInterval(Number.NaN), 'interval'],
    ['infinite interval', () => new FixedInterval(Number.POSITIVE_INFINITY), 'interval'],
    ['negative initial', () => new ExponentialBackoff({ initial: -5 }), 'initial'],
    ['NaN max', () => new ExponentialBackoff({ initial: 1, max: Number.NaN }), 'max'],
    ['initial > max', () => new ExponentialBackoff({ initial: 10, max: 5 }), 'initial'],
    ['multiplier < 1', () => new ExponentialBackoff({ initial: 1, multiplier: 0.5 }), 'multiplier'],
    [
      'NaN multiplier',
      () => new ExponentialRandomBackoff({ initial: 1, multiplier: Number.NaN }),
      'multiplier',
    ],
    ['jitter > 1', () => new ExponentialRandomBackoff({ initial: 1, jitter: 1.5 }), 'jitter'],
    [
      'unknown jitter',
      () => new ExponentialRandomBackoff({ initial: 1, jitter: 'most' as never }),
      'jitter',
    ],
    [
      'random not a function',
      () => new ExponentialRandomBackoff({ initial: 1, random: 4 as never }),
      'random',
    ],
    ['linear initial > max', () => new LinearBackoff({ initial: 10, max: 1 }), 'initial'],
    ['attempt 0', () => new FixedInterval(1).next(0), 'attempt'],
    ['attempt 1.5', () => new ExponentialBackoff({ initial: 1 }).next(1.5), 'attempt'],
    ['attempt NaN', () => backoff.grpc().next(Number.NaN), 'attempt'],
  ];
  it.each(cases)('%s → ERR_INVALID_ARGUMENT naming %s', (_name, make, parameter) => {
    let thrown: unknown;
    try {
      make();
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(TowerlineError);
    expect(thrown).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', parameter });
    expect((thrown as Error).message).toContain(parameter);
  });
});
