/**
 * The names other code relies on (issue 10, "keep these public names working"), used as that
 * code uses them, against real servers.
 */
import { RateLimitLayer as ConfigRateLimitLayer, rateLimitSource } from '@towerline/config';
import {
  CallTracer,
  callTracer,
  ExponentialBackoff,
  isTowerlineError,
  ServiceBuilder,
  serviceFn,
  TowerlineError,
  untilAborted,
} from '@towerline/core';
import { FleetRateLimiter, FleetRetryBudget, GcraLimiter, SharedBreaker } from '@towerline/fleet';
import { ResilientRedis, resilientRedis } from '@towerline/ioredis';
import { callChannelName, channelName, SOURCES } from '@towerline/otel';
import { ResilientPg, resilientPg } from '@towerline/pg';
import {
  AimdLimit,
  breakerStep,
  CircuitBreakerLayer,
  ConcurrencyLimitLayer,
  closedState,
  FallbackLayer,
  Gcra,
  Gradient2Limit,
  HedgeLayer,
  LoadShedLayer,
  type RateLimiter,
  RateLimitLayer,
  TimeoutLayer,
  TokenBucket,
  VegasLimit,
} from '@towerline/policies';
import { RetryLayer } from '@towerline/retry';
import { RedisServer } from '@towerline/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let server: RedisServer;
beforeAll(async () => {
  server = await RedisServer.start({ durable: false });
});
afterAll(async () => {
  await server.close();
});

const pgClient = {
  host: '127.0.0.1',
  port: 5432,
  database: 'test',
  user: process.env.PGUSER ?? 'postgres',
};

describe('public names', () => {
  it('ServiceBuilder, RetryLayer (with and without retryOn), ExponentialBackoff, resilientRedis().call/close', async () => {
    const policy = new ExponentialBackoff({ initial: 50, multiplier: 2, max: 1_000 });
    const redis = resilientRedis({ host: '127.0.0.1', port: server.port, policy });
    expect(redis).toBeInstanceOf(ResilientRedis);
    const stack = new ServiceBuilder()
      .layer(new RetryLayer())
      .layer(new RetryLayer({ retryOn: () => true }))
      .service(redis);
    const ac = new AbortController();
    expect(await stack.call({ name: 'SET', args: ['k', 'v'] }, { signal: ac.signal })).toBe('OK');
    expect(await redis.call({ name: 'GET', args: ['k'] }, { signal: ac.signal })).toBe('v');
    await redis.close();
    const error = await redis.call({ name: 'GET', args: ['k'] }).catch((e: unknown) => e);
    expect(isTowerlineError(error, 'ERR_CLOSED')).toBe(true);
    expect(error).toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('resilientPg({ client, policy }) and new ResilientPg(...) with .call({ text, values }, { signal })', async () => {
    const policy = new ExponentialBackoff({ initial: 50, multiplier: 2, max: 1_000 });
    for (const db of [
      resilientPg({ client: pgClient, policy }),
      new ResilientPg({ client: pgClient, policy }),
    ]) {
      const result = (await db.call(
        { text: 'SELECT $1::int AS n', values: [7] },
        { signal: new AbortController().signal },
      )) as { rows: Array<{ n: number }> };
      expect(result.rows[0]!.n).toBe(7);
      await db.close();
    }
  });

  it('errors carry code, cause and mayHaveExecuted; ERR_CONNECTION_LOST is one of the codes', async () => {
    const redis = resilientRedis({ port: server.port });
    await redis.set('n', 0);
    const pending = redis.call({ name: 'INCR', args: ['n'] }).catch((e: unknown) => e);
    redis.reconnector.current!.stream.destroy(new Error('cut'));
    // Cut in the same turn as the write: the reply can never arrive; the INCR may have run.
    expect(await pending).toMatchObject({
      code: 'ERR_CONNECTION_LOST',
      mayHaveExecuted: true,
      cause: expect.anything(),
    });
    await redis.close();
  });

  it('issue 13 adds: untilAborted, callTracer / CallTracer, SOURCES, channelName / callChannelName, redis commands with a trailing context', async () => {
    const reason = new Error('gone');
    await expect(untilAborted(new Promise(() => {}), AbortSignal.abort(reason))).rejects.toBe(
      reason,
    );
    expect(callTracer('retry')).toBeInstanceOf(CallTracer);
    expect(callTracer('retry').name).toBe(callChannelName('retry'));
    expect(channelName('durable-streams', 'shed')).toBe('towerline:durable-streams:shed');
    expect(SOURCES.map((s) => s.component)).toContain('tls');
    expect(new TowerlineError('ERR_DEPENDENCY_MISSING', 'x').code).toBe('ERR_DEPENDENCY_MISSING');
    const redis = resilientRedis({ port: server.port });
    expect(await redis.set('ctx', 'v', { signal: new AbortController().signal })).toBe('OK');
    expect(await redis.get('ctx', { signal: new AbortController().signal })).toBe('v');
    await redis.close();
  });

  it('the policies (issue 14) and the config rate limit they took over, used as a pipeline', async () => {
    const breaker = new CircuitBreakerLayer({ halfOpenProbes: 1, probeGate: () => true });
    const seen: string[] = [];
    breaker.on('stateChange', ({ from, to }) => seen.push(`${from}>${to}`));
    breaker.on('outcome', ({ ok, durationMs }) => seen.push(`${ok}:${durationMs >= 0}`));
    const limiter: RateLimiter = new TokenBucket({ rate: 1_000, burst: 10 });
    const stack = new ServiceBuilder()
      .layer(new FallbackLayer<number, number>({ fallback: () => -1 }))
      .layer(new TimeoutLayer({ ms: 1_000 }))
      .layer(new RetryLayer({ maxAttempts: 2 }))
      .layer(breaker)
      .layer(new TimeoutLayer({ ms: 500, mode: 'optimistic' }))
      .layer(new HedgeLayer({ delayMs: 100 }))
      .layer(new RateLimitLayer({ limiter, maxWaitMs: 10 }))
      .layer(new LoadShedLayer())
      .layer(new ConcurrencyLimitLayer({ limit: new VegasLimit(), queue: 4 }))
      .service(serviceFn(async (n: number) => n * 2));
    expect(await stack.call(21)).toBe(42);
    expect(seen).toEqual(['true:true']);
    expect(breaker.state).toBe('closed');
    breaker.isolate();
    expect(await stack.call(1)).toBe(-1);
    breaker.reset();
    expect(new Gcra({ rate: 1, burst: 1 }).acquire(1, 'k')).toBe(0);
    expect(new AimdLimit().limit).toBe(20);
    expect(new Gradient2Limit().limit).toBe(20);
    expect(
      breakerStep(closedState, { type: 'isolate' }, { now: 0, halfOpenProbes: 1, openMs: () => 0 })
        .state.kind,
    ).toBe('isolated');
    // Seed 003's config-driven limit: the same token bucket, its limits read from the config.
    const old = new ConfigRateLimitLayer({ requestsPerSecond: 1, burst: 1 });
    expect(old.tryAcquire()).toBe(0);
    expect(old.tryAcquire()).toBeGreaterThan(0);
    expect(rateLimitSource({ requestsPerSecond: 5, burst: 2 })()).toEqual({ rate: 5, burst: 2 });
  });

  it('@towerline/fleet: FleetRateLimiter, FleetRetryBudget as RetryLayer({ budget }), SharedBreaker, GcraLimiter', async () => {
    const redis = resilientRedis({ port: server.port });
    redis.reconnector.start();
    await redis.reconnector.whenReady();
    const limiter = new FleetRateLimiter({ redis, name: 'names', limit: 100, expectedReplicas: 2 });
    expect(await limiter.acquire(1, undefined)).toBe(0);
    const budget = new FleetRetryBudget({ redis, name: 'names', expectedReplicas: 2 });
    await budget.flush();
    let calls = 0;
    const flaky = new RetryLayer({ maxAttempts: 2, budget, retryOn: () => true }).wrap(
      serviceFn(async () => {
        if (++calls === 1) throw new Error('once');
        return 'ok';
      }),
    );
    expect(await flaky.call(undefined)).toBe('ok');
    expect(calls).toBe(2);
    const shared = new SharedBreaker({ redis, name: 'names' });
    expect(typeof shared.probeGate).toBe('function');
    expect(new GcraLimiter({ limit: 1 }).acquire(1, undefined)).toBe(0);
    budget.close();
    shared.close();
    await redis.close();
  });
});
