/**
 * The names other code relies on (issue 10, "keep these public names working"), used as that
 * code uses them, against real servers.
 */
import { ExponentialBackoff, isTowerlineError, ServiceBuilder, serviceFn } from '@towerline/core';
import { FleetRateLimiter, FleetRetryBudget, GcraLimiter, SharedBreaker } from '@towerline/fleet';
import { ResilientRedis, resilientRedis } from '@towerline/ioredis';
import { ResilientPg, resilientPg } from '@towerline/pg';
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
