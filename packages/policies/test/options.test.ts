/**
 * Every option of every policy is checked when the policy is made, by kind and range: a
 * numeric string (`'200'`), a boolean, NaN, a negative number, `null`, an object where a number
 * or a function belongs is `ERR_INVALID_ARGUMENT` naming the option — never accepted to fail
 * later at call time, never a raw TypeError, and never with the refused string in the message.
 * Also: an adaptive limit's or a drop classifier's throw is reported, not swallowed, and never
 * costs a slot.
 */
import { isTowerlineError, type Service, VirtualClock } from '@towerline/core';
import {
  AimdLimit,
  CircuitBreakerLayer,
  ConcurrencyLimitLayer,
  FallbackLayer,
  Gcra,
  Gradient2Limit,
  HedgeLayer,
  type LimitAlgorithm,
  LoadShedLayer,
  RateLimitLayer,
  TimeoutLayer,
  TokenBucket,
  VegasLimit,
} from '@towerline/policies';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';

/**
 * Which values an option refuses: `number`, every non-number (and NaN, and negatives);
 * `finite`, those and ±Infinity too (`number` options take Infinity for "no bound"); `function`,
 * every non-function.
 */
type Kind = 'number' | 'finite' | 'function' | 'clock' | 'name';

/** [option, kind, make the policy with that option set to the value]. */
type Case = [string, Kind, (value: unknown) => unknown];

const v = (x: unknown) => x as never;
const limiter = new TokenBucket({ rate: 1, burst: 1 });

const policies: Record<string, Case[]> = {
  TimeoutLayer: [
    ['ms', 'finite', (x) => new TimeoutLayer({ ms: v(x) })],
    ['clock', 'clock', (x) => new TimeoutLayer({ ms: 5, clock: v(x) })],
    ['name', 'name', (x) => new TimeoutLayer({ ms: 5, name: v(x) })],
  ],
  ConcurrencyLimitLayer: [
    ['limit', 'finite', (x) => new ConcurrencyLimitLayer({ limit: v(x) })],
    ['queue', 'finite', (x) => new ConcurrencyLimitLayer({ limit: 1, queue: v(x) })],
    ['maxWaitMs', 'number', (x) => new ConcurrencyLimitLayer({ limit: 1, maxWaitMs: v(x) })],
    ['isDrop', 'function', (x) => new ConcurrencyLimitLayer({ limit: 1, isDrop: v(x) })],
    ['clock', 'clock', (x) => new ConcurrencyLimitLayer({ limit: 1, clock: v(x) })],
    ['name', 'name', (x) => new ConcurrencyLimitLayer({ limit: 1, name: v(x) })],
  ],
  AimdLimit: [
    ['initial', 'finite', (x) => new AimdLimit({ initial: v(x) })],
    ['min', 'finite', (x) => new AimdLimit({ min: v(x) })],
    ['max', 'finite', (x) => new AimdLimit({ max: v(x) })],
    ['backoffRatio', 'finite', (x) => new AimdLimit({ backoffRatio: v(x) })],
    ['timeoutMs', 'number', (x) => new AimdLimit({ timeoutMs: v(x) })],
  ],
  Gradient2Limit: [
    ['initial', 'finite', (x) => new Gradient2Limit({ initial: v(x) })],
    ['min', 'finite', (x) => new Gradient2Limit({ min: v(x) })],
    ['max', 'finite', (x) => new Gradient2Limit({ max: v(x) })],
    ['rttTolerance', 'finite', (x) => new Gradient2Limit({ rttTolerance: v(x) })],
    ['smoothing', 'finite', (x) => new Gradient2Limit({ smoothing: v(x) })],
    ['longWindow', 'finite', (x) => new Gradient2Limit({ longWindow: v(x) })],
    ['queueSize', 'function', (x) => new Gradient2Limit({ queueSize: v(x) })],
  ],
  VegasLimit: [
    ['initial', 'finite', (x) => new VegasLimit({ initial: v(x) })],
    ['min', 'finite', (x) => new VegasLimit({ min: v(x) })],
    ['max', 'finite', (x) => new VegasLimit({ max: v(x) })],
    ['probeMultiplier', 'number', (x) => new VegasLimit({ probeMultiplier: v(x) })],
    ['alpha', 'function', (x) => new VegasLimit({ alpha: v(x) })],
    ['beta', 'function', (x) => new VegasLimit({ beta: v(x) })],
  ],
  HedgeLayer: [
    ['delayMs', 'finite', (x) => new HedgeLayer({ delayMs: v(x) })],
    ['percentile', 'finite', (x) => new HedgeLayer({ percentile: v(x) })],
    ['minSamples', 'finite', (x) => new HedgeLayer({ percentile: 0.9, minSamples: v(x) })],
    ['budget', 'function', (x) => new HedgeLayer({ delayMs: 5, budget: v(x) })],
    ['clock', 'clock', (x) => new HedgeLayer({ delayMs: 5, clock: v(x) })],
    ['name', 'name', (x) => new HedgeLayer({ delayMs: 5, name: v(x) })],
  ],
  CircuitBreakerLayer: [
    ['halfOpenProbes', 'finite', (x) => new CircuitBreakerLayer({ halfOpenProbes: v(x) })],
    ['openMs', 'finite', (x) => new CircuitBreakerLayer({ openMs: v(x) })],
    ['isFailure', 'function', (x) => new CircuitBreakerLayer({ isFailure: v(x) })],
    ['probeGate', 'function', (x) => new CircuitBreakerLayer({ probeGate: v(x) })],
    ['clock', 'clock', (x) => new CircuitBreakerLayer({ clock: v(x) })],
    ['name', 'name', (x) => new CircuitBreakerLayer({ name: v(x) })],
    [
      'threshold',
      'finite',
      (x) => new CircuitBreakerLayer({ policy: { kind: 'consecutive', threshold: v(x) } }),
    ],
    ['size', 'finite', (x) => new CircuitBreakerLayer({ policy: { kind: 'count', size: v(x) } })],
    [
      'windowMs',
      'finite',
      (x) => new CircuitBreakerLayer({ policy: { kind: 'time', windowMs: v(x) } }),
    ],
    ...(
      [
        'failureRateThreshold',
        'slowCallRateThreshold',
        'slowCallDurationMs',
        'minimumCalls',
      ] as const
    ).map(
      (field): Case => [
        field,
        field === 'slowCallDurationMs' ? 'number' : 'finite',
        (x) => new CircuitBreakerLayer({ policy: { kind: 'count', size: 10, [field]: v(x) } }),
      ],
    ),
  ],
  RateLimitLayer: [
    ['maxWaitMs', 'number', (x) => new RateLimitLayer({ limiter, maxWaitMs: v(x) })],
    ['key', 'function', (x) => new RateLimitLayer({ limiter, key: v(x) })],
    ['permits', 'function', (x) => new RateLimitLayer({ limiter, permits: v(x) })],
    ['clock', 'clock', (x) => new RateLimitLayer({ limiter, clock: v(x) })],
    ['name', 'name', (x) => new RateLimitLayer({ limiter, name: v(x) })],
  ],
  'TokenBucket and Gcra': [
    ['limits', 'finite', (x) => new TokenBucket({ rate: v(x), burst: 1 })],
    ['limits', 'finite', (x) => new TokenBucket({ rate: 1, burst: v(x) })],
    ['limits', 'finite', (x) => new Gcra({ rate: v(x), burst: 1 })],
    ['limits', 'finite', (x) => new Gcra({ rate: 1, burst: v(x) })],
    ['clock', 'clock', (x) => new TokenBucket({ rate: 1, burst: 1 }, { clock: v(x) })],
    ['clock', 'clock', (x) => new Gcra({ rate: 1, burst: 1 }, { clock: v(x) })],
  ],
  LoadShedLayer: [
    ['saturated', 'function', (x) => new LoadShedLayer({ saturated: v(x) })],
    ['name', 'name', (x) => new LoadShedLayer({ saturated: () => false, name: v(x) })],
  ],
  FallbackLayer: [
    ['fallback', 'function', (x) => new FallbackLayer({ fallback: v(x) })],
    ['handle', 'function', (x) => new FallbackLayer({ fallback: () => 0, handle: v(x) })],
    ['name', 'name', (x) => new FallbackLayer({ fallback: () => 0, name: v(x) })],
  ],
};

const clock = new VirtualClock();
/** A clock with only `now`: enough for the policies that never wait (breaker, limiters). */
const nowOnly = { now: () => 0 } as never;

/** Each policy with every option given a value in range: still accepted. */
const valid: Record<string, () => unknown> = {
  TimeoutLayer: () => new TimeoutLayer({ ms: 1, clock, name: 't' }),
  ConcurrencyLimitLayer: () => [
    new ConcurrencyLimitLayer({ limit: 1, queue: 0, maxWaitMs: 0, isDrop: () => true, clock }),
    new ConcurrencyLimitLayer({ limit: new AimdLimit(), maxWaitMs: Number.POSITIVE_INFINITY }),
  ],
  AimdLimit: () => new AimdLimit({ initial: 1, min: 1, max: 1, backoffRatio: 0.5, timeoutMs: 1 }),
  Gradient2Limit: () =>
    new Gradient2Limit({ rttTolerance: 1, smoothing: 1, longWindow: 1, queueSize: () => 0 }),
  VegasLimit: () =>
    new VegasLimit({ probeMultiplier: Number.POSITIVE_INFINITY, alpha: () => 1, beta: () => 2 }),
  HedgeLayer: () =>
    new HedgeLayer({
      delayMs: 0,
      percentile: 0.5,
      minSamples: 1,
      budget: { withdraw: () => true },
    }),
  CircuitBreakerLayer: () =>
    new CircuitBreakerLayer({
      halfOpenProbes: 1,
      openMs: 0,
      isFailure: () => true,
      probeGate: () => true,
      clock: nowOnly,
      policy: {
        kind: 'count',
        size: 1,
        failureRateThreshold: 1,
        slowCallRateThreshold: 0.1,
        slowCallDurationMs: 0,
        minimumCalls: 1,
      },
    }),
  RateLimitLayer: () =>
    new RateLimitLayer({ limiter, maxWaitMs: 0, key: () => 'k', permits: () => 1, clock }),
  'TokenBucket and Gcra': () => [
    new TokenBucket({ rate: 0.5, burst: 1 }, { clock: nowOnly }),
    new Gcra({ rate: 1000, burst: 3 }, { clock }),
  ],
  LoadShedLayer: () => new LoadShedLayer({ saturated: () => false, name: 'l' }),
  FallbackLayer: () => new FallbackLayer({ fallback: () => 0, handle: () => true, name: 'f' }),
};

/** Strings marked so that a message quoting one is caught; numeric ones too (`'200'`). */
const secret = fc.string({ maxLength: 12 }).map((s) => `secret-${s}`);
const numericString = fc
  .oneof(fc.integer({ min: 0, max: 10_000 }), fc.double({ min: 0, max: 1, noNaN: true }))
  .map(String);
const notNumber = fc.oneof(
  secret,
  numericString,
  fc.boolean(),
  fc.constant(null),
  fc.constant({}),
  fc.constant([5]),
  fc.constant(() => 5),
  fc.constant(Number.NaN),
  fc.double({ max: -Number.MIN_VALUE, noNaN: true }),
  fc.integer({ min: -1_000_000, max: -1 }),
);
const notFunction = fc.oneof(
  secret,
  numericString,
  fc.boolean(),
  fc.constant(null),
  fc.double(),
  fc.constant([() => true]),
);
const notClock = fc.oneof(
  secret,
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant({}),
  fc.constant({ now: 5, setTimeout: () => 0, clearTimeout: () => {} }),
  fc.constant(() => 0),
);
const notName = fc.oneof(
  fc.constant(''),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant({}),
);
const wrong: Record<Kind, fc.Arbitrary<unknown>> = {
  number: notNumber,
  finite: fc.oneof(notNumber, fc.constantFrom(Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY)),
  function: notFunction,
  clock: notClock,
  name: notName,
};

/** The adaptive limits' shared bounds (1 <= min <= initial <= max) refuse under `limit`. */
const alsoNamed: Record<string, string> = { initial: 'limit', min: 'limit', max: 'limit' };

describe('every option of every policy is checked at construction', () => {
  it.each(Object.keys(policies))(
    '%s: a value of the wrong kind or range is ERR_INVALID_ARGUMENT naming the option, never quoted (values in range still pass)',
    (policy) => {
      expect(valid[policy]).not.toThrow();
      const cases = policies[policy]!;
      const arbitrary = fc.oneof(
        ...cases.map(([option, kind, make]) =>
          wrong[kind].map((value) => ({ option, make, value })),
        ),
      );
      fc.assert(
        fc.property(arbitrary, ({ option, make, value }) => {
          let thrown: unknown;
          try {
            make(value);
          } catch (error) {
            thrown = error;
          }
          const got = thrown === undefined ? 'accepted' : String(thrown);
          expect(isTowerlineError(thrown, 'ERR_INVALID_ARGUMENT'), `${option}: ${got}`).toBe(true);
          const e = thrown as { parameter: string; message: string };
          expect([option, alsoNamed[option]]).toContain(e.parameter);
          if (typeof value === 'string' && value.startsWith('secret-'))
            expect(e.message).not.toContain(value);
        }),
        { numRuns: 400 },
      );
    },
  );
});

/** The process warnings of throwing callbacks emitted while `run` runs (captured, not printed). */
async function warningsDuring(run: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const spy = vi.spyOn(process, 'emitWarning').mockImplementation(((
    warning: string | Error,
    options?: { code?: string },
  ) => {
    if (options?.code === 'TOWERLINE_LISTENER_ERROR') seen.push(String(warning));
  }) as typeof process.emitWarning);
  try {
    await run();
  } finally {
    spy.mockRestore();
  }
  return seen;
}

/** Answers after a macrotask, failing the requests that start with `fail`. */
const later: Service<string, string> = {
  call: (req) =>
    new Promise((resolve, reject) =>
      setImmediate(() => (req.startsWith('fail') ? reject(new Error(req)) : resolve(`ok:${req}`))),
    ),
};

describe('a throwing adaptive limit or drop classifier', () => {
  it('N concurrent calls through a limit of 1 whose sample throws all resolve; the throw is reported, not the outcome', async () => {
    const algorithm: LimitAlgorithm = {
      limit: 1,
      sample() {
        throw new Error('sample bug');
      },
    };
    const layer = new ConcurrencyLimitLayer({ limit: algorithm, queue: 50 });
    const svc = layer.wrap(later);
    const reqs = Array.from({ length: 30 }, (_, i) => `r${i}`);
    let results: string[] = [];
    const warnings = await warningsDuring(async () => {
      results = await Promise.all(reqs.map((r) => svc.call(r)));
    });
    expect(results).toEqual(reqs.map((r) => `ok:${r}`));
    expect(layer.inflight).toBe(0);
    expect(layer.queued).toBe(0);
    expect(warnings.length).toBe(reqs.length);
    expect(warnings[0]).toContain('"sample"');
  });

  it('a throwing isDrop still samples the call (as no drop) and reports the throw; the caller gets its own error', async () => {
    const seen: boolean[] = [];
    const layer = new ConcurrencyLimitLayer({
      limit: { limit: 1, sample: (_rtt, _inflight, dropped) => void seen.push(dropped) },
      queue: 10,
      isDrop: () => {
        throw new Error('classifier bug');
      },
    });
    const svc = layer.wrap(later);
    let outcomes: string[] = [];
    const warnings = await warningsDuring(async () => {
      outcomes = await Promise.all(
        ['fail1', 'r2', 'fail3'].map((r) =>
          svc.call(r).then(String, (e: Error) => `rejected:${e.message}`),
        ),
      );
    });
    expect(outcomes).toEqual(['rejected:fail1', 'ok:r2', 'rejected:fail3']);
    expect(seen).toEqual([false, false, false]);
    expect(warnings.map((w) => w.includes('"isDrop"'))).toEqual([true, true]);
    expect(layer.inflight).toBe(0);
  });

  it('a clock that throws fails the calls it times, and frees their slots: no queued call hangs', async () => {
    const clock = {
      now: (): number => {
        throw new Error('clock bug');
      },
      setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
      clearTimeout: (h: unknown) => clearTimeout(h as ReturnType<typeof setTimeout>),
    };
    const layer = new ConcurrencyLimitLayer({
      limit: new AimdLimit({ initial: 1 }),
      queue: 10,
      clock,
    });
    const svc = layer.wrap(later);
    let outcomes: string[] = [];
    await warningsDuring(async () => {
      outcomes = await Promise.all(
        ['a', 'b', 'c'].map((r) => svc.call(r).then(String, (e: Error) => e.message)),
      );
    });
    expect(outcomes).toEqual(['clock bug', 'clock bug', 'clock bug']);
    expect(layer.inflight).toBe(0);
    expect(layer.queued).toBe(0);
  });

  it('a Gradient2 headroom that is not a number leaves the limit as it was, never NaN', () => {
    const g = new Gradient2Limit({ initial: 10, queueSize: () => Number.NaN });
    for (let i = 0; i < 50; i++) g.sample(10, 10, false);
    expect(g.limit).toBe(10);
    const s = new Gradient2Limit({ initial: 10, queueSize: () => 'x' as never });
    for (let i = 0; i < 50; i++) s.sample(10, 10, false);
    expect(s.limit).toBe(10);
  });
});
