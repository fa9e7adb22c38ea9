/**
 * Every layer and limit constructor, given what is not an options object (or a field of the
 * wrong kind), throws `ERR_INVALID_ARGUMENT` naming the parameter: never a TypeError from deep
 * inside, never silently accepted, and never quoting the value it got.
 */
import { ConfigProvider, fileSource, lineColumn } from '@towerline/config';
import {
  ExponentialBackoff,
  ExponentialRandomBackoff,
  isTowerlineError,
  LinearBackoff,
  sleep,
} from '@towerline/core';
import { clientOrigin, jsonLogger, loadConfig, StreamHandler } from '@towerline/durable-streams';
import { FleetRateLimiter, FleetRetryBudget, GcraLimiter, SharedBreaker } from '@towerline/fleet';
import { grpcChannelOptions, grpcConnector, grpcRetry } from '@towerline/grpc';
import { isIdempotentRequest, redisConnector, resilientRedis } from '@towerline/ioredis';
import { instrument } from '@towerline/otel';
import { isIdempotentPgRequest, pgConnector, ResilientPgPool, resilientPg } from '@towerline/pg';
import {
  AimdLimit,
  CircuitBreakerLayer,
  ConcurrencyLimitLayer,
  FallbackLayer,
  Gcra,
  Gradient2Limit,
  HedgeLayer,
  LoadShedLayer,
  RateLimitLayer,
  TimeoutLayer,
  TokenBucket,
  VegasLimit,
} from '@towerline/policies';
import { canTransition, fromConnector, heartbeat, Reconnector, step } from '@towerline/reconnect';
import { parseRetryAfter, RetryBudget, RetryLayer } from '@towerline/retry';
import {
  displayPath,
  parseCaBundle,
  parseTlsConfig,
  secureContextOptions,
  serverConfigFromFiles,
  TlsState,
} from '@towerline/tls';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

type Make = (options: unknown) => unknown;

/** Constructors whose options may be left out, and those that need them. */
const optional: Record<string, Make> = {
  RetryLayer: (o) => new RetryLayer(o as never),
  CircuitBreakerLayer: (o) => new CircuitBreakerLayer(o as never),
  HedgeLayer: (o) => new HedgeLayer(o as never),
  LoadShedLayer: (o) => new LoadShedLayer(o as never),
  AimdLimit: (o) => new AimdLimit(o as never),
  Gradient2Limit: (o) => new Gradient2Limit(o as never),
  VegasLimit: (o) => new VegasLimit(o as never),
  RetryBudget: (o) => new RetryBudget(o as never),
  sleep: (o) => sleep(0, o as never),
};
const required: Record<string, Make> = {
  TimeoutLayer: (o) => new TimeoutLayer(o as never),
  ConcurrencyLimitLayer: (o) => new ConcurrencyLimitLayer(o as never),
  FallbackLayer: (o) => new FallbackLayer(o as never),
  RateLimitLayer: (o) => new RateLimitLayer(o as never),
  TokenBucket: (o) => new TokenBucket(o as never),
  Gcra: (o) => new Gcra(o as never),
  LinearBackoff: (o) => new LinearBackoff(o as never),
  ExponentialBackoff: (o) => new ExponentialBackoff(o as never),
  ExponentialRandomBackoff: (o) => new ExponentialRandomBackoff(o as never),
};

/** Adapters and the other packages' entry points (not called without options: they connect). */
const entryPoints: Record<string, Make> = {
  resilientRedis: (o) => resilientRedis(o as never),
  redisConnector: (o) => redisConnector(o as never),
  resilientPg: (o) => resilientPg(o as never),
  pgConnector: (o) => pgConnector(o as never),
  ResilientPgPool: (o) => new ResilientPgPool(o as never),
  fromConnector: (o) => fromConnector(o as never),
  grpcRetry: (o) => grpcRetry(o as never),
  grpcChannelOptions: (o) => grpcChannelOptions(o as never),
  ConfigProvider: (o) => new ConfigProvider(o as never),
  fileSource: (o) => fileSource('config.json', o as never),
  loadConfig: (o) => loadConfig(o as never),
  StreamHandler: (o) => new StreamHandler(o as never),
  FleetRateLimiter: (o) => new FleetRateLimiter(o as never),
  FleetRetryBudget: (o) => new FleetRetryBudget(o as never),
  SharedBreaker: (o) => new SharedBreaker(o as never),
  GcraLimiter: (o) => new GcraLimiter(o as never),
  instrument: (o) => instrument(new RetryLayer(), o as never),
  parseTlsConfig: (o) => parseTlsConfig(o as never),
  TlsState: (o) => new TlsState(o as never),
  serverConfigFromFiles: (o) => serverConfigFromFiles(o as never),
};

/** What `make(value)` threw; fails the test if it returned or threw anything but our error. */
function refusal(make: Make, value: unknown) {
  let thrown: unknown;
  try {
    make(value);
  } catch (error) {
    thrown = error;
  }
  expect(isTowerlineError(thrown), `threw ${String(thrown)}`).toBe(true);
  const error = thrown as { code: string; parameter?: string; message: string };
  expect(error.code).toBe('ERR_INVALID_ARGUMENT');
  return error;
}

const notAnObject = fc.oneof(
  fc.constant(null),
  fc.string({ minLength: 6 }).map((s) => `secret-${s}`),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.bigInt(),
  fc.array(fc.anything(), { maxLength: 3 }),
);

describe('constructors refuse what is not an options object', () => {
  it('for every constructor and any such value: ERR_INVALID_ARGUMENT, the value not quoted', () => {
    const all = Object.entries({ ...optional, ...required, ...entryPoints });
    fc.assert(
      fc.property(fc.constantFrom(...all), notAnObject, ([, make], value) => {
        const error = refusal(make, value);
        if (typeof value === 'string') expect(error.message).not.toContain(value);
      }),
      { numRuns: 300 },
    );
  });

  it('options that are required may not be left out; optional ones may', () => {
    for (const make of Object.values(required)) refusal(make, undefined);
    for (const make of Object.values(optional)) {
      if (make === optional.HedgeLayer) continue; // needs delayMs or percentile
      expect(() => make(undefined)).not.toThrow();
    }
  });
});

describe('fields of the wrong kind', () => {
  const cases: Array<[string, Make, string]> = [
    ['timeout mode', () => new TimeoutLayer({ ms: 10, mode: 'fast' as never }), 'mode'],
    ['fallback not a function', () => new FallbackLayer({ fallback: 42 as never }), 'fallback'],
    ['fallback left out', () => new FallbackLayer({} as never), 'fallback'],
    [
      'fallback handle not a function',
      () => new FallbackLayer({ fallback: () => 1, handle: true as never }),
      'handle',
    ],
    ['breaker openMs', () => new CircuitBreakerLayer({ openMs: 'soon' as never }), 'openMs'],
    ['breaker openMs object', () => new CircuitBreakerLayer({ openMs: {} as never }), 'openMs'],
    ['breaker policy', () => new CircuitBreakerLayer({ policy: 'count' as never }), 'policy'],
    [
      'count window beyond a million calls',
      () =>
        new CircuitBreakerLayer({
          policy: { kind: 'count', size: 1e20, failureRateThreshold: 0.5 },
        }),
      'size',
    ],
    [
      'time window of infinite length',
      () =>
        new CircuitBreakerLayer({
          policy: { kind: 'time', windowMs: Number.POSITIVE_INFINITY, failureRateThreshold: 0.5 },
        }),
      'windowMs',
    ],
    ['hedge delay null', () => new HedgeLayer({ delayMs: null as never }), 'delayMs'],
    ['load-shed test', () => new LoadShedLayer({ saturated: true as never }), 'saturated'],
    [
      'infinite rate',
      () => new TokenBucket({ rate: Number.POSITIVE_INFINITY, burst: 1 }),
      'limits',
    ],
  ];
  it.each(cases)('%s', (_name, make, parameter) => {
    expect(refusal(make, undefined).parameter).toBe(parameter);
  });
});

describe('a refused field is named, its value shown only if it is a number', () => {
  it('strings (a secret pasted in the wrong place) are never quoted', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 6 }).map((s) => `secret-${s}`),
        fc.constantFrom<Make>(
          (v) => new TimeoutLayer({ ms: v as never }),
          (v) => new RetryLayer({ maxAttempts: v as never }),
          (v) => new ConcurrencyLimitLayer({ limit: 1, queue: v as never }),
          (v) => new HedgeLayer({ delayMs: v as never }),
          (v) => new TokenBucket({ rate: v as never, burst: 1 }),
          (v) =>
            new CircuitBreakerLayer({ policy: { kind: 'consecutive', threshold: v as never } }),
          (v) => new AimdLimit({ backoffRatio: v as never }),
          (v) => new GcraLimiter({ limit: v as never }),
          (v) => redisConnector({ port: v as never }),
        ),
        (secret, make) => {
          expect(refusal(make, secret).message).not.toContain(secret);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('a symbol or a bigint in a numeric field is refused by name, not with a TypeError', () => {
    const makers: Array<[string, (v: unknown) => unknown]> = [
      ['ms', (v) => new TimeoutLayer({ ms: v as never })],
      ['maxAttempts', (v) => new RetryLayer({ maxAttempts: v as never })],
      ['limit', (v) => new ConcurrencyLimitLayer({ limit: v as never })],
      ['delayMs', (v) => new HedgeLayer({ delayMs: v as never })],
      ['rate', (v) => new TokenBucket({ rate: v as never, burst: 1 })],
      ['burst', (v) => new Gcra({ rate: 1, burst: v as never })],
      [
        'threshold',
        (v) => new CircuitBreakerLayer({ policy: { kind: 'consecutive', threshold: v as never } }),
      ],
      ['openMs', (v) => new CircuitBreakerLayer({ openMs: v as never })],
      ['backoffRatio', (v) => new AimdLimit({ backoffRatio: v as never })],
      ['limit', (v) => new GcraLimiter({ limit: v as never })],
      ['port', (v) => redisConnector({ port: v as never })],
    ];
    for (const value of [Symbol('secret-symbol'), 10n]) {
      for (const [field, make] of makers) {
        const error = refusal(() => make(value), undefined);
        expect(error.parameter, field).toBe(field);
        expect(error.message).not.toContain('secret-symbol');
      }
    }
  });

  it('the server helpers refuse what is not theirs: clientOrigin, the deprecated jsonLogger', () => {
    for (const bad of [null, undefined, 42, 'secret-value', {}]) {
      const origin = refusal(() => clientOrigin(bad as never, {} as never, {} as never), undefined);
      expect(origin.parameter).toBe('req');
      // Any string is a log filter; anything else is refused.
      if (typeof bad !== 'string') {
        const logger = refusal(() => jsonLogger(bad as never), undefined);
        expect(logger.parameter).toBe('rustLog');
      }
    }
    expect(refusal(() => jsonLogger('info', 'x' as never), undefined).parameter).toBe('write');
  });

  it('numbers are shown: they say what was wrong', () => {
    expect(refusal(() => new TimeoutLayer({ ms: -5 }), undefined).message).toContain('-5');
  });
});

describe('exported helpers given what is not theirs', () => {
  it('answer safely or refuse with a code, never a TypeError', () => {
    fc.assert(
      fc.property(notAnObject, (value) => {
        expect(canTransition(value as never, 'connected')).toBe(false);
        expect(isIdempotentRequest(value as never)).toBe(false);
        expect(isIdempotentPgRequest(value as never)).toBe(false);
        if (typeof value !== 'string') {
          expect(displayPath(value as never)).toMatch(/^\(not shown: /);
          expect(() => parseCaBundle(value as never)).toThrow(
            expect.objectContaining({ code: 'ERR_TLS_INVALID' }),
          );
          refusal((v) => lineColumn(v as never, 0), value);
        }
        refusal((v) => step(v as never, { type: 'connect' } as never, {} as never), value);
        refusal((v) => secureContextOptions(v as never), value);
      }),
      { numRuns: 200 },
    );
  });
});

describe('numbers given as strings, clocks and codes of the wrong shape', () => {
  const connect = async () => ({});
  const cases: Array<[string, Make, string]> = [
    [
      'connectTimeout',
      () => new Reconnector({ connect, connectTimeout: '200' as never }),
      'connectTimeout',
    ],
    ['minUptime', () => new Reconnector({ connect, minUptime: '0' as never }), 'minUptime'],
    ['maxAttempts', () => new Reconnector({ connect, maxAttempts: '3' as never }), 'maxAttempts'],
    [
      'queueTimeout',
      () => fromConnector({ connect, send: async () => 1 }, { queueTimeout: '50' as never }),
      'queueTimeout',
    ],
    [
      'maxQueuedBytes',
      () => fromConnector({ connect, send: async () => 1 }, { maxQueuedBytes: '5' as never }),
      'maxQueuedBytes',
    ],
    [
      'heartbeat interval',
      () => heartbeat(async () => {}, { intervalMs: '5' as never }),
      'intervalMs',
    ],
    ['connector send', () => fromConnector({ connect, send: 5 } as never), 'send'],
    [
      'connector classify',
      () => fromConnector({ connect, send: connect, classify: 1 } as never),
      'classify',
    ],
    ['retry maxDelay', () => new RetryLayer({ maxDelay: '5' as never }), 'maxDelay'],
    ['retry clock', () => new RetryLayer({ clock: {} as never }), 'clock'],
    ['timeout clock', () => new TimeoutLayer({ ms: 5, clock: {} as never }), 'clock'],
    ['timeout ms string', () => new TimeoutLayer({ ms: '200' as never }), 'ms'],
    [
      'hedge clock',
      () => new HedgeLayer({ delayMs: 5, clock: { now: () => 0 } as never }),
      'clock',
    ],
    ['breaker clock', () => new CircuitBreakerLayer({ clock: {} as never }), 'clock'],
    [
      'rate-limit key',
      () =>
        new RateLimitLayer({ limiter: new TokenBucket({ rate: 1, burst: 1 }), key: 5 as never }),
      'key',
    ],
    [
      'rate-limit maxWaitMs string',
      () =>
        new RateLimitLayer({
          limiter: new TokenBucket({ rate: 1, burst: 1 }),
          maxWaitMs: '5' as never,
        }),
      'maxWaitMs',
    ],
    [
      'grpc deadlineMs',
      () => grpcConnector({ client: class {} as never, target: 'x:1', deadlineMs: '5' as never }),
      'deadlineMs',
    ],
    [
      'fleet breaker window of infinite length (a Redis script loop)',
      () =>
        new SharedBreaker({ redis: {} as never, name: 'b', windowMs: Number.POSITIVE_INFINITY }),
      'windowMs',
    ],
    [
      'fleet breaker probe interval 0',
      () => new SharedBreaker({ redis: {} as never, name: 'b', probeIntervalMs: 0 }),
      'probeIntervalMs',
    ],
    [
      'fleet breaker minimumRequests NaN',
      () => new SharedBreaker({ redis: {} as never, name: 'b', minimumRequests: Number.NaN }),
      'minimumRequests',
    ],
    [
      'fleet rate limit whenUnavailable',
      () =>
        new FleetRateLimiter({
          redis: {} as never,
          name: 'r',
          limit: 10,
          expectedReplicas: 1,
          whenUnavailable: 'bogus' as never,
        }),
      'whenUnavailable',
    ],
    [
      'fleet ready',
      () => new SharedBreaker({ redis: {} as never, name: 'b', ready: 5 as never }),
      'ready',
    ],
    [
      'fleet timeoutMs NaN',
      () => new SharedBreaker({ redis: {} as never, name: 'b', timeoutMs: Number.NaN }),
      'timeoutMs',
    ],
    ['fleet redis null', () => new SharedBreaker({ redis: null as never, name: 'b' }), 'redis'],
    ['otel target null', () => instrument(null as never, { meter: {} as never }), 'target'],
    ['otel meter null', () => instrument(new RetryLayer(), { meter: null as never }), 'meter'],
    [
      'otel attributes string',
      () =>
        instrument(new RetryLayer(), {
          meter: { createCounter() {}, createHistogram() {} } as never,
          attributes: 'x' as never,
        }),
      'attributes',
    ],
    ['grpcRetry codes', () => grpcRetry({ codes: 14 as never }), 'codes'],
    ['grpcRetry code', () => grpcRetry({ codes: ['UNAVAILABLE'] as never }), 'codes'],
    ['parseRetryAfter number', () => parseRetryAfter(120 as never), 'value'],
    ['parseRetryAfter now', () => parseRetryAfter('5', 'now' as never), 'now'],
  ];
  it.each(cases)('%s', (_name, make, parameter) => {
    expect(refusal(make, undefined).parameter).toBe(parameter);
  });
});

describe('a fleet rate limit asked for more than its burst', () => {
  it('answers Infinity (never possible), as the local GcraLimiter does, without asking Redis', () => {
    const redis = {
      call: () => {
        throw new Error('Redis must not be asked');
      },
    };
    const limiter = new FleetRateLimiter({
      redis: redis as never,
      name: 'over-burst',
      limit: 10,
      burst: 5,
      expectedReplicas: 1,
    });
    expect(limiter.acquire(6, undefined)).toBe(Number.POSITIVE_INFINITY);
    expect(refusal(() => limiter.acquire(-1, undefined), undefined).parameter).toBe('permits');
    expect(refusal(() => limiter.acquire(1, {} as never), undefined).parameter).toBe('key');
  });
});
