/**
 * @towerline/fleet driving the real layers of @towerline/policies (the two were built against a
 * shared contract; this checks the contract holds): a FleetRateLimiter as a RateLimitLayer's
 * limiter, and a SharedBreaker attached to two CircuitBreakerLayers of two "replicas".
 */
import { backoff, isTowerlineError, serviceFn } from '@towerline/core';
import { FleetRateLimiter, SharedBreaker } from '@towerline/fleet';
import { ResilientRedis } from '@towerline/ioredis';
import { CircuitBreakerLayer, RateLimitLayer } from '@towerline/policies';
import { RedisServer } from '@towerline/testing';
import { afterEach, describe, expect, it } from 'vitest';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
});

async function redisClient(port: number): Promise<ResilientRedis> {
  const redis = new ResilientRedis({
    port,
    policy: backoff.exponentialRandom({ initial: 20, max: 100, jitter: 'full' }),
    queueTimeout: 500,
  });
  redis.reconnector.start();
  cleanups.push(() => redis.close());
  await redis.reconnector.whenReady();
  return redis;
}

async function server(): Promise<RedisServer> {
  const s = await RedisServer.start({ durable: false });
  cleanups.push(() => s.close());
  return s;
}

describe('fleet state under the policies layers', () => {
  it('RateLimitLayer over a FleetRateLimiter: two replicas share one burst, the rest refused ERR_RATE_LIMITED', async () => {
    const s = await server();
    let served = 0;
    const backend = serviceFn(async (n: number) => {
      served++;
      return n;
    });
    const replicas = await Promise.all(
      [0, 1].map(async () => {
        const redis = await redisClient(s.port);
        const limiter = new FleetRateLimiter({
          redis,
          name: 'shared',
          limit: 1,
          burst: 4,
          expectedReplicas: 2,
        });
        return new RateLimitLayer({ limiter, maxWaitMs: 0 }).wrap(backend);
      }),
    );
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, k) => replicas[k % 2]!.call(k)),
    );
    const refused = outcomes.filter(
      (o) => o.status === 'rejected' && isTowerlineError(o.reason, 'ERR_RATE_LIMITED'),
    );
    expect(served).toBe(4);
    expect(refused).toHaveLength(6);
  });

  it('SharedBreaker: failures seen by one replica open the fleet; the other replica refuses without calling the backend', async () => {
    const s = await server();
    let calls = 0;
    let failing = true;
    const backend = serviceFn(async () => {
      calls++;
      if (failing) throw new Error('backend down');
      return 'ok';
    });
    const make = async () => {
      const redis = await redisClient(s.port);
      const shared = new SharedBreaker({
        redis,
        name: 'backend',
        minimumRequests: 10,
        failureRateThreshold: 0.5,
        windowMs: 60_000,
        flushMs: 60_000,
      });
      cleanups.push(() => shared.close());
      const breaker = new CircuitBreakerLayer({
        policy: { kind: 'consecutive', threshold: 1_000 },
        probeGate: shared.probeGate,
      });
      shared.attach(breaker);
      return { shared, breaker, svc: breaker.wrap(backend) };
    };
    const a = await make();
    const b = await make();
    for (let k = 0; k < 12; k++) await a.svc.call(undefined).catch(() => {});
    expect(a.breaker.state).toBe('closed'); // its own threshold is far away
    await a.shared.flush();
    await b.shared.flush();
    expect(b.shared.fleetOpen).toBe(true);
    expect(b.breaker.state).toBe('isolated');
    const before = calls;
    await expect(b.svc.call(undefined)).rejects.toMatchObject({ code: 'ERR_CIRCUIT_OPEN' });
    expect(calls).toBe(before);
    failing = false;
  });
});
